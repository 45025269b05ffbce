/**
 * Tenants on one host never reach each other through their tunnels. An inbound tunnel of tenant A (its
 * engine's customer-side listener → a destination on the MSSP host) must not lead into tenant B's outbound
 * tunnel listener on that same host: that connection would go on through B's engine into B's customer
 * network. Refused when the tunnel is opened and again for each connection (B's listener may open after A's
 * tunnel), audited and logged by A; A's own listeners and ordinary local services stay reachable. The same
 * holds for the other tenants' API ports and the host's engine port. Real processes: main, one host running
 * both tenants, one engine per tenant.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, createServer, type Server } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { freePort, until } from '../harness/processes.js';
import { FIRST_TENANT_PORT } from '../../agent/host/tenant-ports.js';
import type { ErrorBody } from '../harness/api-shapes.js';

const A = 'xta',
  B = 'xtb';
let d: Deployment;
/** A service inside B's customer network (an echo), reachable through B's engine; counts what reaches it. */
let target: Server;
let targetPort = 0;
const seen = { connections: 0, bytes: 0 };
/** An ordinary service on the MSSP host, for A's inbound tunnels: answers in upper case. */
let upper: Server;
let upperPort = 0;
/** B's outbound tunnel listener (on the host, loopback), leading to `target` through B's engine. */
let bListen = 0;
/** Whether this machine has IPv6 loopback (one test puts two listeners on one port, one per family). */
const ipv6Loopback = await new Promise<boolean>((resolve) => {
  const s = createServer()
    .once('error', () => resolve(false))
    .listen(0, '::1', () => s.close(() => resolve(true)));
});

interface View {
  id: string;
  to: string;
  listen: string;
  engines?: Record<string, string>;
}
interface AuditRow {
  actor: string;
  action: string;
  target?: string;
  outcome: string;
  code?: string;
  detail?: Record<string, unknown>;
}

const openTunnel = (tenant: string, body: Record<string, string>) =>
  d.api<View & ErrorBody>('POST', `/tenants/${tenant}/api/tunnels`, body);
const inboundOfA = (to: string) => openTunnel(A, { direction: 'inbound', to, listen: '127.0.0.1:0' });
const portOf = (addr: string) => Number(addr.split(':').pop());
const tenantLog = (tenant: string) => join(d.agents.get('xh')!.dir, 'tenants', tenant, 'logs', 'tenant.log');

/** Connects, sends `text`, and reports what came back and whether the other side closed (within 8 s). */
function exchange(port: number, text: string, untilReply = false): Promise<{ got: string; closed: boolean }> {
  return new Promise((resolve) => {
    let got = '';
    const s = connect(port, '127.0.0.1', () => s.write(text));
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ got, closed: false });
    }, 8_000);
    s.on('data', (c: Buffer) => {
      got += c.toString();
      if (untilReply && got.length >= text.length) {
        clearTimeout(timer);
        s.destroy();
        resolve({ got, closed: false });
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ got, closed: true });
    });
  });
}

beforeAll(async () => {
  target = createServer((sock) => {
    seen.connections++;
    sock.on('data', (c: Buffer) => {
      seen.bytes += c.length;
      sock.write(c);
    });
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  targetPort = (target.address() as { port: number }).port;
  upper = createServer((sock) => {
    sock.on('data', (c: Buffer) => sock.write(c.toString().toUpperCase()));
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => upper.listen(0, '127.0.0.1', r));
  upperPort = (upper.address() as { port: number }).port;
  d = await Deployment.create();
  await d.install('host', 'xh');
  await d.startAgent('xh');
  for (const t of [A, B]) await d.createTenant(t, 'xh');
  await d.startEngine('xea', A, { allow: [`127.0.0.1:${targetPort}`] });
  await d.startEngine('xeb', B, { allow: [`127.0.0.1:${targetPort}`] });
  bListen = await freePort();
  const b = await openTunnel(B, { to: `127.0.0.1:${targetPort}`, listen: `127.0.0.1:${bListen}` });
  if (b.status !== 201) throw new Error(`B's outbound tunnel: ${b.status} ${b.raw}`);
  // B's listener really leads into B's network.
  const via = await exchange(bListen, 'through-b', true);
  if (via.got !== 'through-b') throw new Error(`B's outbound tunnel does not work: ${JSON.stringify(via)}`);
}, 120_000);
afterAll(async () => {
  await d?.stop();
  target?.close();
  upper?.close();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe("an inbound tunnel of one tenant into another tenant's outbound listener", () => {
  it('is refused when opened (400 naming `to`), by address and by name, and nothing is created', async () => {
    for (const to of [`127.0.0.1:${bListen}`, `localhost:${bListen}`, `[::1]:${bListen}`]) {
      const r = await inboundOfA(to);
      expect(r.status, `${to}: ${r.raw}`).toBe(400);
      expect(r.body.error.code).toBe('ERR_BAD_TARGET');
      expect(r.body.error.message).toMatch(/^to: /);
    }
    const list = await d.api<{ tunnels: View[] }>('GET', `/tenants/${A}/api/tunnels`);
    expect(list.body.tunnels.filter((t) => portOf(t.to) === bListen)).toEqual([]);
  });

  it("opened before B's listener existed, carries no connection into B's network: each is refused, audited and logged", async () => {
    const q = await freePort();
    const a = await inboundOfA(`127.0.0.1:${q}`);
    expect(a.status, a.raw).toBe(201); // nothing listens on q yet: an ordinary destination
    const engineSide = portOf(a.body.engines!.xea);
    // Now B opens an outbound listener on exactly that port.
    const b = await openTunnel(B, { to: `127.0.0.1:${targetPort}`, listen: `127.0.0.1:${q}` });
    expect(b.status, b.raw).toBe(201);
    expect((await exchange(q, 'b-works', true)).got).toBe('b-works');
    const before = { ...seen };
    // A customer-A device connects to A's engine-side listener: the connection is closed, nothing crosses.
    const r = await exchange(engineSide, 'from customer A');
    expect(r).toEqual({ got: '', closed: true });
    expect(seen).toEqual(before);
    const row = await until(
      "refusal in A's audit log",
      async () => {
        const audit = await d.api<AuditRow[]>('GET', `/tenants/${A}/api/audit?action=tunnel.inbound`);
        return audit.status === 200 ? audit.body.find((e) => e.target === a.body.id) : undefined;
      },
      10_000,
    );
    expect(row).toMatchObject({
      action: 'tunnel.inbound',
      outcome: 'denied',
      code: 'ERR_TUNNEL_CROSS_TENANT',
      detail: { to: `127.0.0.1:${q}` },
    });
    const log = await until(
      "refusal in A's log",
      async () => {
        const text = await readFile(tenantLog(A), 'utf8').catch(() => '');
        return text.split('\n').find((l) => l.includes('inbound tunnel stream refused') && l.includes(a.body.id));
      },
      10_000,
    );
    expect(log).toContain('ERR_TUNNEL_CROSS_TENANT');
    // B's own tunnel is untouched.
    expect(seen).toEqual(before);
    expect((await exchange(q, 'b-still-works', true)).got).toBe('b-still-works');
  });

  // A connection made between B's listen and A learning of it would stay up; A cuts such a connection when
  // the host's update arrives. Shown with a service on 127.0.0.1:p, live, when B takes [::1]:p (the same port).
  it.skipIf(!ipv6Loopback)("a live connection is cut once its port becomes another tenant's listener", async () => {
    const p = await freePort();
    const svc = createServer((sock) => {
      sock.on('data', (c: Buffer) => sock.write(c));
      sock.on('error', () => undefined);
    });
    await new Promise<void>((r) => svc.listen(p, '127.0.0.1', r));
    try {
      const a = await inboundOfA(`127.0.0.1:${p}`);
      expect(a.status, a.raw).toBe(201);
      const s = connect(portOf(a.body.engines!.xea), '127.0.0.1');
      s.on('error', () => undefined);
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      const echoed = await new Promise<string>((resolve) => {
        s.once('data', (c: Buffer) => resolve(c.toString()));
        s.write('live');
      });
      expect(echoed).toBe('live');
      const b = await openTunnel(B, { to: `127.0.0.1:${targetPort}`, listen: `[::1]:${p}` });
      expect(b.status, b.raw).toBe(201);
      await Promise.race([
        closed,
        new Promise((_, rej) => setTimeout(() => rej(new Error('the live connection was not cut')), 10_000)),
      ]);
      await until(
        'cut audited',
        async () =>
          (await d.api<AuditRow[]>('GET', `/tenants/${A}/api/audit?action=tunnel.inbound`)).body.find(
            (e) => e.target === a.body.id,
          ),
        10_000,
      );
      expect((await d.api('DELETE', `/tenants/${B}/api/tunnels/${b.body.id}`)).status).toBe(200);
    } finally {
      svc.close();
    }
  });

  it('follows the other tenant: once its listener is closed, or its process exits, the port is free to use again', async () => {
    const b = await openTunnel(B, { to: `127.0.0.1:${targetPort}`, listen: '127.0.0.1:0' });
    expect(b.status, b.raw).toBe(201);
    const closedPort = portOf(b.body.listen);
    expect((await inboundOfA(`127.0.0.1:${closedPort}`)).status).toBe(400);
    expect((await d.api('DELETE', `/tenants/${B}/api/tunnels/${b.body.id}`)).status).toBe(200);
    await until(
      'closed listener forgotten',
      async () => (await inboundOfA(`127.0.0.1:${closedPort}`)).status === 201,
      10_000,
    );
    // B's process dies (its listeners with it): the host forgets them and tells A.
    expect((await inboundOfA(`127.0.0.1:${bListen}`)).status).toBe(400);
    const pid = (await d.tenant(B))!.pid!;
    process.kill(pid, 'SIGKILL');
    await until(
      "B's listeners forgotten after it exited",
      async () => (await inboundOfA(`127.0.0.1:${bListen}`)).status === 201,
      30_000,
    );
    await d.tenantRunning(B, { notPid: pid, timeoutMs: 30_000 });
  });
});

describe("an inbound tunnel to another tenant's API port or the host's engine port", () => {
  const refusedAtOpen = async (port: number) => {
    for (const to of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
      const r = await inboundOfA(to);
      expect(r.status, `${to}: ${r.raw}`).toBe(400);
      expect(r.body.error).toMatchObject({
        code: 'ERR_BAD_TARGET',
        message: expect.stringMatching(/^to: .* is reserved on this host/),
      });
    }
  };

  it("is refused when opened (400 naming `to`): B's API port", async () => {
    await refusedAtOpen((await d.tenant(B))!.port);
  });

  it("is refused when opened (400 naming `to`): the host's engine port", async () => {
    const line = (await readFile(d.agentLog('xh'), 'utf8'))
      .split('\n')
      .find((l) => l.includes('listening for engines'))!;
    await refusedAtOpen(portOf((JSON.parse(line) as { listen: string }).listen));
  });

  /**
   * Tenant `xtc`, created on xh while A already has an inbound tunnel to the port that becomes its API's. A
   * new tenant takes the lowest free port from 18501, so A first opens tunnels to the 24 lowest free ones;
   * tenants of other tests on this machine may take those meanwhile, hence up to three tries.
   */
  async function tenantUnderTunnel(): Promise<{ port: number; tunnel: View; all: View[] }> {
    for (let attempt = 1; ; attempt++) {
      const free: number[] = [];
      for (let p = FIRST_TENANT_PORT; free.length < 24 && p < FIRST_TENANT_PORT + 400; p++) {
        if (
          await new Promise<boolean>((res) => {
            const x = createServer()
              .once('error', () => res(false))
              .listen(p, '127.0.0.1', () => x.close(() => res(true)));
          })
        )
          free.push(p);
      }
      const opened = await Promise.all(free.map((p) => inboundOfA(`127.0.0.1:${p}`)));
      for (const o of opened) expect(o.status, o.raw).toBe(201);
      const all = opened.map((o) => o.body);
      const c = await d.cli(['tenant', 'create', 'xtc', '--host', 'xh', '--json']);
      expect(c.code, c.stdout + c.stderr).toBe(0);
      const port = (c.json as { port: number }).port;
      if (free.includes(port)) return { port, tunnel: all[free.indexOf(port)], all };
      for (const v of all) await d.api('DELETE', `/tenants/${A}/api/tunnels/${v.id}`);
      expect((await d.cli(['tenant', 'remove', 'xtc', '--json'])).code).toBe(0);
      if (attempt === 3)
        throw new Error(
          `tenants of other tests took the 24 lowest free ports three times running (last: xtc on ${port})`,
        );
    }
  }

  it('opened before that tenant existed, carries no connection to its API: refused and audited', async () => {
    const { port, tunnel, all } = await tenantUnderTunnel();
    // The host tells A of xtc's port when xtc is ready, before `tenant create` answers; a connection now is refused.
    const r = await exchange(portOf(tunnel.engines!.xea), 'GET /api/v1/incidents HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(r).toEqual({ got: '', closed: true });
    const row = await until(
      "refusal in A's audit log",
      async () => {
        const audit = await d.api<AuditRow[]>('GET', `/tenants/${A}/api/audit?action=tunnel.inbound`);
        return audit.status === 200 ? audit.body.find((e) => e.target === tunnel.id) : undefined;
      },
      10_000,
    );
    expect(row).toMatchObject({
      outcome: 'denied',
      code: 'ERR_TUNNEL_CROSS_TENANT',
      detail: { to: `127.0.0.1:${port}` },
    });
    for (const v of all) expect((await d.api('DELETE', `/tenants/${A}/api/tunnels/${v.id}`)).status).toBe(200);
  });
});

describe('what stays allowed', () => {
  it('an inbound tunnel to an ordinary local service works end to end', async () => {
    const a = await inboundOfA(`127.0.0.1:${upperPort}`);
    expect(a.status, a.raw).toBe(201);
    const r = await exchange(portOf(a.body.engines!.xea), 'syslog line', true);
    expect(r.got).toBe('SYSLOG LINE');
  });

  it("an inbound tunnel into the tenant's own outbound listener is not cross-tenant: allowed", async () => {
    const own = await openTunnel(A, { to: `127.0.0.1:${targetPort}`, listen: '127.0.0.1:0' });
    expect(own.status, own.raw).toBe(201);
    const a = await inboundOfA(`localhost:${portOf(own.body.listen)}`);
    expect(a.status, a.raw).toBe(201);
    const r = await exchange(portOf(a.body.engines!.xea), 'a-to-a', true);
    expect(r.got).toBe('a-to-a');
  });
});
