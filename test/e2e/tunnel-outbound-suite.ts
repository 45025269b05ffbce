/**
 * Outbound tunnels of the tunnel suite (tunnel-suite.ts sets up the deployment and registers these): a
 * client reaches an allow-listed service only through the tenant's engine, a destination off the allow-list
 * is refused and audited, the bytes are ciphertext wherever main, the host or the wire sees them, the
 * listeners can be listed and closed; and, with two engines, one dying ends only its own streams.
 * Not inbound tunnels (tunnel-inbound-suite.ts) or engine commands (tunnel-engine-commands-suite.ts).
 */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { connect, createServer as createTcpServer } from 'node:net';
import { readFile } from 'node:fs/promises';
import { freePort, until } from '../harness/processes.js';
import { filesContaining } from '../harness/data-scan.js';
import { directRecords } from '../harness/tcp-tap.js';
import { rawHttpGet } from '../harness/raw-http-get.js';
import type { AuditRow, TunnelWorld } from './tunnel-suite.js';

export function outboundTunnelTests(w: TunnelWorld): void {
  describe('outbound tunnel', () => {
    it('a client reaches an allow-listed service only through the tunnel (tunnel open → HTTP through it)', async () => {
      const listen = await freePort();
      const r = await w.d.cli([
        'tunnel',
        'open',
        '--tenant',
        'cust',
        '--to',
        `127.0.0.1:${w.targetPort}`,
        '--listen',
        `127.0.0.1:${listen}`,
        '--json',
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json).toMatchObject({ to: `127.0.0.1:${w.targetPort}`, direction: 'outbound', engineCount: 1 });
      const res = await rawHttpGet(listen);
      expect(res.status).toBe(200);
      expect(res.body).toBe(w.secretBody);
      // 8 MiB through the tunnel, intact.
      const big = await new Promise<Buffer>((resolve, reject) => {
        const s = connect(listen, '127.0.0.1', () =>
          s.write('GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
        );
        const chunks: Buffer[] = [];
        s.on('data', (c: Buffer) => chunks.push(c));
        s.on('end', () => resolve(Buffer.concat(chunks)));
        s.on('error', reject);
      });
      const body = big.subarray(big.indexOf('\r\n\r\n') + 4);
      expect(createHash('sha256').update(body).digest('hex')).toBe(
        createHash('sha256')
          .update(Buffer.alloc(8 * 1024 * 1024, 7))
          .digest('hex'),
      );
    });

    it("a destination outside the allow-list is refused at the engine, and the refusal is in main's audit log", async () => {
      const probe = createTcpServer((s) => s.end('should never be reached'));
      await new Promise<void>((r) => probe.listen(w.forbiddenPort, '127.0.0.1', r));
      try {
        const listen = await freePort();
        const r = await w.d.cli([
          'tunnel',
          'open',
          '--tenant',
          'cust',
          '--to',
          `127.0.0.1:${w.forbiddenPort}`,
          '--listen',
          `127.0.0.1:${listen}`,
          '--json',
        ]);
        expect(r.code).toBe(0);
        const res = await rawHttpGet(listen).catch(() => ({ status: 0, body: '' }));
        expect(res.body).not.toContain('should never be reached');
        const log = await until(
          'refusal logged',
          async () => {
            const text = await readFile(w.d.agentLog('te1'), 'utf8');
            return text.includes('ERR_TUNNEL_NOT_ALLOWED') ? text : undefined;
          },
          10_000,
        );
        expect(log).toContain(`127.0.0.1:${w.forbiddenPort}`);
        const audit = await until(
          'refusal audited on main',
          async () => {
            const a = await w.d.cli(['audit', '--json']);
            return (a.json as AuditRow[]).find(
              (e) => e.action === 'engine.tunnel.dial' && e.target === `127.0.0.1:${w.forbiddenPort}`,
            );
          },
          10_000,
        );
        expect(audit).toMatchObject({
          actor: 'engine:te1',
          outcome: 'denied',
          detail: { tenant: 'cust', code: 'ERR_TUNNEL_NOT_ALLOWED' },
        });
      } finally {
        probe.close();
      }
    });

    it("main and the host never hold the tunnelled bytes in the clear: not in main's data dir or the host's", async () => {
      expect(await filesContaining(w.d.mainDir, w.secretBody)).toEqual([]);
      expect(await filesContaining(w.d.agents.get('th')!.dir, w.secretBody)).toEqual([]);
    });

    it(`what crosses the wire between engine and host (${w.path === 'relay' ? 'captured at main' : 'captured on the direct TCP connection'}) is ciphertext: records flowed, none readable`, async () => {
      const tap = await readFile(w.tapFile);
      // What main relayed: [direction][length][record]…
      let toHost = 0,
        toEngine = 0,
        records = 0;
      const mainRecords: Buffer[] = [];
      for (let at = 0; at + 5 <= tap.length; records++) {
        const len = tap.readUInt32BE(at + 1);
        if (tap[at] === 0) toHost += len;
        else toEngine += len;
        mainRecords.push(tap.subarray(at + 5, at + 5 + len));
        at += 5 + len;
      }
      let wire: Buffer;
      if (w.path === 'relay') {
        expect(records).toBeGreaterThan(10);
        expect(toHost).toBeGreaterThan(8 * 1024 * 1024);
        expect(toEngine).toBeGreaterThan(0);
        wire = tap;
      } else {
        // Main saw only the engine's hello (answered with the direct offer); the bytes went engine ⇄ host directly.
        expect(toHost + toEngine).toBeLessThan(4096);
        expect(mainRecords.every((r) => r[0] === 1)).toBe(true);
        const up = w.wireTap!.connections.map((c) => Buffer.concat(c.toHost));
        const down = w.wireTap!.connections.map((c) => Buffer.concat(c.toEngine));
        expect(up.every((b) => b.subarray(0, 4).toString() === 'PLSD')).toBe(true);
        const upRecords = up.flatMap((b) => directRecords(b, true));
        const downRecords = down.flatMap((b) => directRecords(b, false));
        expect(upRecords.length).toBeGreaterThan(10);
        expect(upRecords.reduce((n, r) => n + r.length, 0)).toBeGreaterThan(8 * 1024 * 1024);
        expect(downRecords.length).toBeGreaterThan(0);
        // After each hello (type 1) only sealed records (type 2) travel.
        expect([...upRecords, ...downRecords].every((r) => r[0] === 1 || r[0] === 2)).toBe(true);
        wire = Buffer.concat([...up, ...down]);
      }
      expect(wire.includes(Buffer.from(w.secretBody))).toBe(false);
      expect(wire.includes(Buffer.from('GET /big HTTP/1.1'))).toBe(false);
      // The 8 MiB body was one repeated byte: in the clear it would show long runs of it.
      expect(wire.includes(Buffer.alloc(64, 7))).toBe(false);
    });

    it('tunnel list shows the listeners; close stops one', async () => {
      const list = await w.d.cli(['tunnel', 'list', '--tenant', 'cust', '--json']);
      const tunnels = (list.json as { tunnels: { id: string; connections: number }[] }).tunnels;
      expect(tunnels.length).toBeGreaterThanOrEqual(2);
      expect(tunnels[0].connections).toBeGreaterThanOrEqual(2);
      const closed = await w.d.cli(['tunnel', 'close', tunnels[0].id, '--tenant', 'cust', '--json']);
      expect(closed.code).toBe(0);
      const after = (await w.d.cli(['tunnel', 'list', '--tenant', 'cust', '--json'])).json as {
        tunnels: { id: string }[];
      };
      expect(after.tunnels.map((t) => t.id)).not.toContain(tunnels[0].id);
    });
  });
}

export function engineGroupTests(w: TunnelWorld): void {
  describe('engine group', () => {
    it('with two engines, killing one ends its streams with an error and new streams go through the other', async () => {
      await w.startEngine('te2');
      await until('two engine sessions', async () => (await w.d.engineSessions('cust')).length === 2, 30_000);
      const web = await freePort(),
        held = await freePort();
      expect(
        (
          await w.d.cli([
            'tunnel',
            'open',
            '--tenant',
            'cust',
            '--to',
            `127.0.0.1:${w.targetPort}`,
            '--listen',
            `127.0.0.1:${web}`,
            '--json',
          ])
        ).code,
      ).toBe(0);
      expect(
        (
          await w.d.cli([
            'tunnel',
            'open',
            '--tenant',
            'cust',
            '--to',
            `127.0.0.1:${w.holdPort}`,
            '--listen',
            `127.0.0.1:${held}`,
            '--json',
          ])
        ).code,
      ).toBe(0);
      // Streams are spread over both engines: hold a few open, then kill one engine.
      const open = await Promise.all(
        [0, 1, 2, 3].map(
          () =>
            new Promise<{ closed: Promise<void> }>((resolve) => {
              const s = connect(held, '127.0.0.1', () =>
                resolve({ closed: new Promise((r) => s.once('close', () => r())) }),
              );
              s.on('error', () => undefined);
            }),
        ),
      );
      await new Promise((r) => setTimeout(r, 300)); // let the streams reach their engines before the kill
      await w.d.agents.get('te1')!.proc!.stop('SIGKILL');
      await Promise.race([
        Promise.any(open.map((o) => o.closed)),
        new Promise((_, rej) => setTimeout(() => rej(new Error('no stream of the dead engine ended')), 20_000)),
      ]);
      await until('one engine session left', async () => (await w.d.engineSessions('cust')).length === 1, 30_000);
      for (let i = 0; i < 6; i++) expect((await rawHttpGet(web)).body).toBe(w.secretBody);
    });
  });
}
