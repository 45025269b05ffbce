/**
 * The host's check of a tenant's tunnel-listener report (agent/host/listening-ports.ts): only ports on
 * which that process holds a listening socket count, over IPv4 and IPv6; connected sockets, other
 * processes' listeners and unreadable /proc do not. A fake /proc tree in a temp directory, plus this
 * process's own real listeners on Linux.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listeningPorts } from '../../agent/host/listening-ports.js';

const HEAD = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
const row = (local: string, st: string, inode: number) =>
  `   0: ${local} 00000000:0000 ${st} 00000000:00000000 00:00000000 00000000     0        0 ${inode} 1 0000000000000000 100 0 0 10 0\n`;

describe('listening ports of a process', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('counts the listening sockets the process holds, IPv4 and IPv6, and nothing else', async () => {
    const proc = await mkdtemp(join(tmpdir(), 'palisade-proc-'));
    dirs.push(proc);
    await mkdir(join(proc, '4242', 'fd'), { recursive: true });
    await mkdir(join(proc, 'net'));
    await symlink('socket:[5555]', join(proc, '4242', 'fd', '3')); // its IPv4 listener
    await symlink('socket:[7777]', join(proc, '4242', 'fd', '4')); // its IPv6 listener
    await symlink('socket:[8888]', join(proc, '4242', 'fd', '5')); // a connection it holds
    await symlink('/dev/null', join(proc, '4242', 'fd', '6'));
    await writeFile(
      join(proc, 'net', 'tcp'),
      HEAD +
        row('0100007F:4E21', '0A', 5555) + // 127.0.0.1:20001 LISTEN, ours
        row('00000000:4E22', '0A', 6666) + // 0.0.0.0:20002 LISTEN, another process's
        row('0100007F:4E24', '01', 8888),
    ); // 127.0.0.1:20004 ESTABLISHED, ours but not a listener
    await writeFile(join(proc, 'net', 'tcp6'), HEAD + row('00000000000000000000000001000000:4E23', '0A', 7777)); // [::1]:20003
    expect([...listeningPorts(4242, proc)!].sort()).toEqual([20001, 20003]);
    // A process whose fds cannot be read: unknown, not "none" (the report is then taken as it is).
    expect(listeningPorts(999, proc)).toBeUndefined();
  });

  it.skipIf(process.platform !== 'linux')(
    "finds this process's real listeners and not a port it only dials",
    async () => {
      const servers: Server[] = [];
      const listen = (host: string) =>
        new Promise<number>((res) => {
          const s = createServer().listen(0, host, () => res((s.address() as { port: number }).port));
          servers.push(s);
        });
      const [v4, other] = [await listen('127.0.0.1'), await listen('127.0.0.1')];
      servers.pop()!.close(); // `other` is closed again: no longer ours
      const sock = connect(v4, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      const ports = listeningPorts(process.pid)!;
      expect(ports.has(v4)).toBe(true);
      expect(ports.has(other)).toBe(false);
      expect(ports.has((sock.address() as { port: number }).port)).toBe(false);
      sock.destroy();
      for (const s of servers) s.close();
    },
  );
});
