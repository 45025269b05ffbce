/**
 * Outbound tunnels end to end with real processes: a client on the MSSP side reaches a service inside
 * the "customer network" only through the tenant's engine, only for allow-listed destinations, with the
 * engine ⇄ tenant session encrypted so main and the host relay only ciphertext. Run once per path
 * (tunnels.test.ts: direct engine ⇄ host connection, tunnels-relay.test.ts: relayed through main), with
 * the wire captured where that path's bytes travel: at main (relay) or on the engine ⇄ host TCP
 * connection itself (direct, through a forwarding tap the host advertises).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { readFile, rm } from 'node:fs/promises';
import { Deployment, type EngineSession } from '../harness/deployment.js';
import { freePort, tempDir, until } from '../harness/processes.js';
import { filesContaining } from '../harness/data-scan.js';
import { TcpTap, directRecords } from '../harness/tcp-tap.js';

export type TunnelPath = 'direct' | 'relay';

export function tunnelSuite(path: TunnelPath): void {
  let d: Deployment;
  let target: Server;
  let targetPort = 0;
  let forbiddenPort = 0;
  let holdPort = 0;
  let hold: ReturnType<typeof createTcpServer>;
  let tapDir = '';
  let tapFile = '';
  let wireTap: TcpTap | undefined;
  const SECRET_BODY = `customer-internal-${randomBytes(8).toString('hex')}`;

  function get(port: number, path = '/'): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = connect(port, '127.0.0.1', () =>
        req.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
      );
      let raw = '';
      req.on('data', (c: Buffer) => {
        raw += c.toString();
      });
      req.on('end', () =>
        resolve({
          status: Number(/^HTTP\/1\.1 (\d+)/.exec(raw)?.[1] ?? 0),
          body: raw.split('\r\n\r\n').slice(1).join('\r\n\r\n'),
        }),
      );
      req.on('error', reject);
      req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    });
  }

  beforeAll(async () => {
    target = createServer((req, res) => {
      if (req.url === '/big') {
        res.end(Buffer.alloc(8 * 1024 * 1024, 7));
        return;
      }
      res.end(SECRET_BODY);
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    targetPort = (target.address() as { port: number }).port;
    forbiddenPort = await freePort();
    // A service that accepts and holds connections open: for streams that must end when their engine dies.
    hold = createTcpServer((sock) => sock.on('error', () => undefined));
    await new Promise<void>((r) => hold.listen(0, '127.0.0.1', r));
    holdPort = (hold.address() as { port: number }).port;
    tapDir = await tempDir();
    tapFile = join(tapDir, 'tunnel-tap.bin');
    d = await Deployment.create({ mainEnv: { PALISADE_TUNNEL_TAP: tapFile } });
    // Set at install, as an operator would (`agent install --engine-listen/--engine-advertise`).
    if (path === 'relay') await d.install('host', 'th', ['--engine-listen', 'off']);
    else {
      // The host listens on a known port and tells engines to dial the tap in front of it: a wire capture.
      const hostPort = await freePort();
      wireTap = new TcpTap(hostPort);
      await d.install('host', 'th', [
        '--engine-listen',
        `127.0.0.1:${hostPort}`,
        '--engine-advertise',
        `127.0.0.1:${await wireTap.start()}`,
      ]);
    }
    await d.startAgent('th');
    await d.createTenant('cust', 'th');
    const te1 = await installEngine('te1');
    // The session runs on the path under test.
    expect(te1.transport).toBe(path);
  });
  afterAll(async () => {
    await d?.stop();
    target?.close();
    hold?.close();
    wireTap?.close();
    if (tapDir) await rm(tapDir, { recursive: true, force: true });
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(d.logs());
  });

  interface AuditRow {
    actor: string;
    action: string;
    target?: string;
    outcome: string;
    detail?: Record<string, unknown>;
  }

  async function installEngine(name: string): Promise<EngineSession> {
    return d.startEngine(name, 'cust', { allow: [`127.0.0.1:${targetPort}`, `127.0.0.1:${holdPort}`] });
  }

  describe('outbound tunnel', () => {
    it('a client reaches an allow-listed service only through the tunnel (tunnel open → HTTP through it)', async () => {
      const listen = await freePort();
      const r = await d.cli([
        'tunnel',
        'open',
        '--tenant',
        'cust',
        '--to',
        `127.0.0.1:${targetPort}`,
        '--listen',
        `127.0.0.1:${listen}`,
        '--json',
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json).toMatchObject({ to: `127.0.0.1:${targetPort}`, direction: 'outbound', engineCount: 1 });
      const res = await get(listen);
      expect(res.status).toBe(200);
      expect(res.body).toBe(SECRET_BODY);
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
      await new Promise<void>((r) => probe.listen(forbiddenPort, '127.0.0.1', r));
      try {
        const listen = await freePort();
        const r = await d.cli([
          'tunnel',
          'open',
          '--tenant',
          'cust',
          '--to',
          `127.0.0.1:${forbiddenPort}`,
          '--listen',
          `127.0.0.1:${listen}`,
          '--json',
        ]);
        expect(r.code).toBe(0);
        const res = await get(listen).catch(() => ({ status: 0, body: '' }));
        expect(res.body).not.toContain('should never be reached');
        const log = await until(
          'refusal logged',
          async () => {
            const text = await readFile(d.agentLog('te1'), 'utf8');
            return text.includes('ERR_TUNNEL_NOT_ALLOWED') ? text : undefined;
          },
          10_000,
        );
        expect(log).toContain(`127.0.0.1:${forbiddenPort}`);
        const audit = await until(
          'refusal audited on main',
          async () => {
            const a = await d.cli(['audit', '--json']);
            return (a.json as AuditRow[]).find(
              (e) => e.action === 'engine.tunnel.dial' && e.target === `127.0.0.1:${forbiddenPort}`,
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
      expect(await filesContaining(d.mainDir, SECRET_BODY)).toEqual([]);
      expect(await filesContaining(d.agents.get('th')!.dir, SECRET_BODY)).toEqual([]);
    });

    it(`what crosses the wire between engine and host (${path === 'relay' ? 'captured at main' : 'captured on the direct TCP connection'}) is ciphertext: records flowed, none readable`, async () => {
      const tap = await readFile(tapFile);
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
      if (path === 'relay') {
        expect(records).toBeGreaterThan(10);
        expect(toHost).toBeGreaterThan(8 * 1024 * 1024);
        expect(toEngine).toBeGreaterThan(0);
        wire = tap;
      } else {
        // Main saw only the engine's hello (answered with the direct offer); the bytes went engine ⇄ host directly.
        expect(toHost + toEngine).toBeLessThan(4096);
        expect(mainRecords.every((r) => r[0] === 1)).toBe(true);
        const up = wireTap!.connections.map((c) => Buffer.concat(c.toHost));
        const down = wireTap!.connections.map((c) => Buffer.concat(c.toEngine));
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
      expect(wire.includes(Buffer.from(SECRET_BODY))).toBe(false);
      expect(wire.includes(Buffer.from('GET /big HTTP/1.1'))).toBe(false);
      // The 8 MiB body was one repeated byte: in the clear it would show long runs of it.
      expect(wire.includes(Buffer.alloc(64, 7))).toBe(false);
    });

    it('tunnel list shows the listeners; close stops one', async () => {
      const list = await d.cli(['tunnel', 'list', '--tenant', 'cust', '--json']);
      const tunnels = (list.json as { tunnels: { id: string; connections: number }[] }).tunnels;
      expect(tunnels.length).toBeGreaterThanOrEqual(2);
      expect(tunnels[0].connections).toBeGreaterThanOrEqual(2);
      const closed = await d.cli(['tunnel', 'close', tunnels[0].id, '--tenant', 'cust', '--json']);
      expect(closed.code).toBe(0);
      const after = (await d.cli(['tunnel', 'list', '--tenant', 'cust', '--json'])).json as {
        tunnels: { id: string }[];
      };
      expect(after.tunnels.map((t) => t.id)).not.toContain(tunnels[0].id);
    });
  });

  describe('inbound tunnel', () => {
    it("an engine-side listener's connections reach a service on the tenant side, both ways", async () => {
      // The tenant-side service: answers each line in upper case.
      const svc = createTcpServer((sock) => sock.on('data', (c: Buffer) => sock.write(c.toString().toUpperCase())));
      await new Promise<void>((r) => svc.listen(0, '127.0.0.1', r));
      try {
        const r = await d.cli([
          'tunnel',
          'open',
          '--inbound',
          '--tenant',
          'cust',
          '--listen',
          '127.0.0.1:0',
          '--to',
          `127.0.0.1:${(svc.address() as { port: number }).port}`,
          '--json',
        ]);
        expect(r.code, r.stdout + r.stderr).toBe(0);
        const view = r.json as { id: string; direction: string; engines: Record<string, string> };
        expect(view.direction).toBe('inbound');
        const at = view.engines.te1;
        expect(at).toMatch(/^127\.0\.0\.1:\d+$/);
        const reply = await new Promise<string>((resolve, reject) => {
          const s = connect(Number(at.split(':')[1]), '127.0.0.1', () => s.write('syslog line from a customer device'));
          s.on('data', (c: Buffer) => {
            resolve(c.toString());
            s.end();
          });
          s.on('error', reject);
          s.setTimeout(10_000, () => reject(new Error('no answer through the inbound tunnel')));
        });
        expect(reply).toBe('SYSLOG LINE FROM A CUSTOMER DEVICE');
        const closed = await d.cli(['tunnel', 'close', view.id, '--tenant', 'cust', '--json']);
        expect(closed.code).toBe(0);
        // The engine stops listening once the tunnel is closed.
        await until(
          'engine listener closed',
          () =>
            new Promise<boolean>((resolve) => {
              const s = connect(Number(at.split(':')[1]), '127.0.0.1');
              s.on('connect', () => {
                s.destroy();
                resolve(false);
              });
              s.on('error', () => resolve(true));
            }),
          10_000,
        );
      } finally {
        svc.close();
      }
    });

    it('refuses a bad direction, an outbound listener off loopback, and an inbound destination at metadata addresses', async () => {
      const r = await d.api<{ error: { code: string } }>('POST', '/tenants/cust/api/tunnels', {
        direction: 'sideways',
        to: '127.0.0.1:1',
        listen: '127.0.0.1:0',
      });
      expect(r.status).toBe(400);
      expect(r.raw).toContain('direction');
      const wide = await d.api<{ error: { code: string; message: string } }>('POST', '/tenants/cust/api/tunnels', {
        to: `127.0.0.1:${targetPort}`,
        listen: '0.0.0.0:0',
      });
      expect(wide.status).toBe(400);
      expect(wide.body.error.message).toContain('listen');
      const meta = await d.api<{ error: { code: string; message: string } }>('POST', '/tenants/cust/api/tunnels', {
        direction: 'inbound',
        to: '169.254.169.254:80',
        listen: '127.0.0.1:0',
      });
      expect(meta.status).toBe(400);
      expect(meta.body.error.message).toContain('to');
    });
  });

  describe('integration commands on the engine', () => {
    it('http.request runs on the engine against an allow-listed service and returns status and body', async () => {
      const r = await d.cli([
        'engine',
        'run',
        'http.request',
        '--tenant',
        'cust',
        '--args',
        JSON.stringify({ url: `http://127.0.0.1:${targetPort}/x`, headers: { 'x-probe': '1' } }),
        '--json',
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.json).toMatchObject({
        command: 'http.request',
        result: { status: 200, body: SECRET_BODY, bodyEncoding: 'utf8', truncated: false },
      });
      expect((r.json as { engine: string }).engine).toMatch(/^te[12]$/);
    });

    it('tcp.check reports reachable and unreachable allow-listed ports', async () => {
      const up = await d.cli([
        'engine',
        'run',
        'tcp.check',
        '--tenant',
        'cust',
        '--args',
        JSON.stringify({ host: '127.0.0.1', port: holdPort }),
        '--json',
      ]);
      expect(up.code, up.stdout + up.stderr).toBe(0);
      expect(up.json).toMatchObject({ result: { reachable: true, port: holdPort } });
    });

    it('a command towards a destination outside the allow-list is refused (403, exit 2) and audited on main', async () => {
      const r = await d.cli([
        'engine',
        'run',
        'tcp.check',
        '--tenant',
        'cust',
        '--args',
        JSON.stringify({ host: '127.0.0.1', port: forbiddenPort }),
        '--json',
      ]);
      expect(r.code).toBe(2);
      expect(r.json).toMatchObject({ error: { code: 'ERR_TUNNEL_NOT_ALLOWED' } });
      const h = await d.api<{ error: { code: string } }>('POST', '/tenants/cust/api/engine-commands', {
        command: 'http.request',
        args: { url: `http://169.254.169.254/latest/meta-data/?token=SECRETTOKEN` },
      });
      expect(h.status).toBe(403);
      const audit = await until(
        'audited',
        async () =>
          ((await d.cli(['audit', '--json'])).json as AuditRow[]).filter(
            (e) => e.action === 'engine.tcp.check' || e.action === 'engine.http.request',
          ),
        10_000,
      );
      expect(audit.map((a) => a.action).sort()).toEqual(['engine.http.request', 'engine.tcp.check']);
      // Only the origin of a refused URL is recorded: a query could hold credentials.
      expect(JSON.stringify(audit)).not.toContain('SECRETTOKEN');
    });

    it('bad arguments get a 400 naming the field; an unknown command is refused before reaching an engine', async () => {
      const bad = await d.api<{ error: { code: string; message: string } }>(
        'POST',
        '/tenants/cust/api/engine-commands',
        { command: 'tcp.check', args: { host: '127.0.0.1', port: 'eighty' } },
      );
      expect(bad.status).toBe(400);
      expect(bad.body.error.message).toContain('args.port');
      const unknown = await d.cli(['engine', 'run', 'rm.rf', '--tenant', 'cust', '--json']);
      expect(unknown.code).toBe(2);
      expect(unknown.stdout).toContain('command');
      const notJson = await d.cli(['engine', 'run', 'tcp.check', '--tenant', 'cust', '--args', '{nope']);
      expect(notJson.code).toBe(2);
      expect(notJson.stderr.trim().split('\n')).toHaveLength(1);
    });
  });

  describe('engine group', () => {
    it('with two engines, killing one ends its streams with an error and new streams go through the other', async () => {
      await installEngine('te2');
      await until('two engine sessions', async () => (await d.engineSessions('cust')).length === 2, 30_000);
      const web = await freePort(),
        held = await freePort();
      expect(
        (
          await d.cli([
            'tunnel',
            'open',
            '--tenant',
            'cust',
            '--to',
            `127.0.0.1:${targetPort}`,
            '--listen',
            `127.0.0.1:${web}`,
            '--json',
          ])
        ).code,
      ).toBe(0);
      expect(
        (
          await d.cli([
            'tunnel',
            'open',
            '--tenant',
            'cust',
            '--to',
            `127.0.0.1:${holdPort}`,
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
      await d.agents.get('te1')!.proc!.stop('SIGKILL');
      await Promise.race([
        Promise.any(open.map((o) => o.closed)),
        new Promise((_, rej) => setTimeout(() => rej(new Error('no stream of the dead engine ended')), 20_000)),
      ]);
      await until('one engine session left', async () => (await d.engineSessions('cust')).length === 1, 30_000);
      for (let i = 0; i < 6; i++) expect((await get(web)).body).toBe(SECRET_BODY);
    });
  });
}
