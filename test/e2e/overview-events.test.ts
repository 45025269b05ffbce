/**
 * Events per second per tenant in the overview, end to end with real processes (main, host h1, tenants ta and tb,
 * engine ea of ta listening for syslog over TCP): lines sent to the engine are stored by ta, ta counts them and
 * reports the count and its rate through its host to main, and GET /api/v1/overview shows ta's events.stored
 * rising with perSecond > 0 while tb shows 0, to staff in full rows and to ta's customer user in its summary. And
 * an open overview stream follows its caller's role: a custom role published without tenants:read empties the
 * tenants of the next event, without the stream being opened again.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Socket } from 'node:net';
import { Deployment } from '../harness/deployment.js';
import { freePort, until } from '../harness/processes.js';
import { EventStream } from '../harness/console-session.js';

interface Events {
  stored: number;
  perSecond: number;
}
interface OverviewBody {
  tenants: { name: string; events: Events | null; publicKey?: string }[];
}

let d: Deployment;
let port = 0;

beforeAll(async () => {
  // Heartbeats every 2 s (10 s by default): the host's reports, which carry the counts, reach main sooner.
  d = await Deployment.create({ mainConfig: { heartbeatIntervalMs: 2_000 } });
  await d.install('host', 'h1');
  await d.startAgent('h1');
  await d.createTenant('ta', 'h1');
  await d.createTenant('tb', 'h1');
  port = await freePort();
  await d.startEngine('ea', 'ta', { flags: ['--syslog', `tcp:127.0.0.1:${port}`] });
}, 180_000);
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

const overview = async (key?: string) => {
  const r = await d.api<OverviewBody>('GET', '/overview', undefined, key ? { key } : undefined);
  expect(r.status, r.raw).toBe(200);
  return r.body;
};
const eventsOf = (o: OverviewBody, name: string) => o.tenants.find((t) => t.name === name)?.events;

/** Sends a syslog line to the engine every `everyMs` until stopped; counts what it wrote. */
function sender(everyMs: number): { stop(): void; sent(): number } {
  let n = 0;
  const socket: Socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const timer = setInterval(() => {
    n++;
    socket.write(`<134>1 ${new Date().toISOString()} fw1 e2e - - - rate line ${n}\n`);
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      socket.end();
    },
    sent: () => n,
  };
}

describe('events per second per tenant', () => {
  it('rise for the tenant whose engine receives syslog, and stay 0 for the other', async () => {
    const before = await until('both tenants report their events', async () => {
      const o = await overview();
      return eventsOf(o, 'ta') && eventsOf(o, 'tb') && o;
    });
    expect(eventsOf(before, 'ta')).toEqual({ stored: 0, perSecond: 0 });
    const s = sender(50);
    try {
      const first = await until(
        'ta stores events at a rate',
        async () => {
          const e = eventsOf(await overview(), 'ta');
          return e && e.stored > 0 && e.perSecond > 0 && e;
        },
        45_000,
        250,
      );
      const later = await until(
        "ta's count rises further",
        async () => {
          const e = eventsOf(await overview(), 'ta');
          return e && e.stored > first.stored && e;
        },
        30_000,
        250,
      );
      expect(later.perSecond).toBeGreaterThan(0);
      expect(later.stored).toBeLessThanOrEqual(s.sent());
      const o = await overview();
      expect(eventsOf(o, 'tb')).toEqual({ stored: 0, perSecond: 0 });
      // GET /tenants carries the same figures.
      const tenants = await d.api<{ name: string; events: Events | null }[]>('GET', '/tenants');
      expect(tenants.body.find((t) => t.name === 'ta')?.events?.stored).toBeGreaterThan(0);
      expect(tenants.body.find((t) => t.name === 'tb')?.events).toEqual({ stored: 0, perSecond: 0 });
    } finally {
      s.stop();
    }
  }, 120_000);

  it("shows a customer user its own tenant's counts in the summary, and no other tenant", async () => {
    const u = await d.createUser({ name: 'ta-reader', tenant: 'ta', roles: ['read-only'] });
    const o = await overview(await d.createKey(u.id));
    expect(o.tenants.map((t) => t.name)).toEqual(['ta']);
    expect(o.tenants[0]!.publicKey).toBeUndefined();
    expect(o.tenants[0]!.events?.stored).toBeGreaterThan(0);
  });

  it('fall back to 0 per second once the engine receives nothing, the count kept', async () => {
    const e = await until(
      'ta quiet',
      async () => {
        const x = eventsOf(await overview(), 'ta');
        return x && x.perSecond === 0 && x;
      },
      45_000,
      500,
    );
    expect(e.stored).toBeGreaterThan(0);
  }, 60_000);
});

describe('an open overview stream whose caller loses tenants:read', () => {
  it('sends the tenants cut down at the next recheck', async () => {
    const role = await d.api<{ id: string }>('POST', '/roles', {
      name: 'watcher',
      permissions: [],
      mainPermissions: ['tenants:read'],
    });
    expect(role.status, role.raw).toBe(201);
    const u = await d.createUser({ name: 'sam', roles: ['watcher'] });
    const key = await d.createKey(u.id);
    const s = await EventStream.open(d, '/overview/stream', { key });
    try {
      const latest = () => s.events.filter((e) => e.event === 'overview').at(-1)?.data as OverviewBody | undefined;
      await until('first event', async () => latest(), 10_000);
      expect(latest()!.tenants.map((t) => t.name)).toEqual(['ta', 'tb']);
      const body = JSON.stringify({ permissions: [], mainPermissions: [] });
      expect((await d.api('PUT', `/content/${role.body.id}`, { body })).status).toBe(200);
      expect((await d.api('POST', `/content/${role.body.id}/publish`)).status).toBe(200);
      await until('the stream cut down', async () => latest()!.tenants.length === 0 || undefined, 15_000);
      expect(s.ended).toBe(false);
      // A new request sees the same.
      expect((await overview(key)).tenants).toEqual([]);
    } finally {
      s.destroy();
    }
  }, 60_000);
});
