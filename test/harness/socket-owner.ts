/**
 * Which of some processes holds a loopback TCP connection, by the connection's local port (Linux /proc):
 * how a test tells which engine made a request a local service received, without trusting what any
 * Palisade process says about it. Not portable beyond Linux, which is what the agents run on.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** The socket inode of the IPv4 or IPv6 TCP connection whose local port is `localPort`, if any. */
function inodeOf(localPort: number): string | undefined {
  const port = localPort.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[1]?.endsWith(`:${port}`) && f[9] && f[9] !== '0') return f[9];
    }
  }
  return undefined;
}

/** The name (a key of `pids`) of the process holding the connection with local port `localPort`, if one does. */
export function socketOwner(localPort: number, pids: Record<string, number>): string | undefined {
  const inode = inodeOf(localPort);
  if (!inode) return undefined;
  for (const [name, pid] of Object.entries(pids)) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`) return name;
      } catch {
        // closed meanwhile
      }
    }
  }
  return undefined;
}
