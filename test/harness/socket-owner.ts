/**
 * Which of some processes holds a loopback TCP connection, by the connection's local port (Linux /proc):
 * how a test tells which engine made a request a local service received, without trusting what any
 * Palisade process says about it. Not portable beyond Linux, which is what the agents run on.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/**
 * The socket inodes of the IPv4 and IPv6 TCP connections whose local port is `localPort`. There can be several:
 * the kernel gives one ephemeral port to connections towards different peers, from any process.
 */
function inodesOf(localPort: number): Set<string> {
  const port = localPort.toString(16).toUpperCase().padStart(4, '0');
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1]?.endsWith(`:${port}`) && f[9] && f[9] !== '0') inodes.add(f[9]);
    }
  }
  return inodes;
}

/** The name (a key of `pids`) of the first process holding one of `inodes`, if one does. */
function holderOf(inodes: Set<string>, pids: Record<string, number>): string | undefined {
  for (const [name, pid] of Object.entries(pids)) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone
    }
    for (const fd of fds) {
      try {
        const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (link.startsWith('socket:[') && inodes.has(link.slice(8, -1))) return name;
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}

/**
 * The name (a key of `pids`) of the process holding the connection with local port `localPort`, if one does.
 *
 * A miss is looked up again: the kernel serves /proc/net/tcp a chunk per read and resumes by position, so a
 * connection can be skipped while other processes (parallel test files) open and close sockets between chunks.
 */
export function socketOwner(localPort: number, pids: Record<string, number>): string | undefined {
  for (let attempt = 0; attempt < 5; attempt++) {
    const owner = holderOf(inodesOf(localPort), pids);
    if (owner) return owner;
  }
  return undefined;
}
