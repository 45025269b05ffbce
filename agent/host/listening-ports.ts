/**
 * The TCP ports a process listens on, read from /proc (Linux). The host checks each tenant's report of its
 * outbound tunnel listeners against it: a compromised tenant could otherwise claim ports it does not hold
 * and so make the other tenants refuse inbound tunnels to those local services. Synchronous on purpose:
 * reports are rare (a listener opened or closed), and checking them in arrival order keeps the registry
 * simple.
 */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

const TCP_LISTEN = '0A';

/**
 * The ports `pid` holds a listening TCP socket on (IPv4 and IPv6), or undefined where that cannot be
 * known (not Linux, or /proc hidden from us): the caller then takes the report as it is.
 */
export function listeningPorts(pid: number, proc = '/proc'): Set<number> | undefined {
  if (proc === '/proc' && process.platform !== 'linux') return undefined;
  const inodes = new Set<string>();
  try {
    const fdDir = join(proc, String(pid), 'fd');
    for (const fd of readdirSync(fdDir)) {
      let target: string;
      try {
        target = readlinkSync(join(fdDir, fd));
      } catch {
        continue;
      } // closed meanwhile
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m) inodes.add(m[1]);
    }
  } catch {
    return undefined;
  }
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(join(proc, 'net', table), 'utf8');
    } catch {
      continue;
    } // no IPv6 here
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== TCP_LISTEN || !inodes.has(f[9])) continue;
      const port = parseInt(f[1].slice(f[1].lastIndexOf(':') + 1), 16);
      if (port > 0) ports.add(port);
    }
  }
  return ports;
}
