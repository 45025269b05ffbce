/**
 * The overview stream's recheck (main/console/overview-stream.ts) with fake services and fake timers: a stream's
 * caller is rebuilt from its user record and roles as they are at each recheck, so a custom role that loses
 * tenants:read, a staff user's tenant list cut down, or a removed key takes effect on an open stream at the next
 * recheck (within 5 s), not only on a new one. Also: the overview's tenant summaries carry the event counts.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OverviewStreams } from '../../main/console/overview-stream.js';
import { overviewFor, type OverviewState } from '../../main/console/overview.js';
import { principalFor, type Permission } from '../../main/access/api-keys.js';
import type { MainServices } from '../../main/services.js';
import type { UserRecord } from '../../main/registry.js';
import type { TenantView } from '../../main/tenants/tenant-view.js';

const tenant = (name: string, perSecond = 0): TenantView => ({
  name,
  host: 'h1',
  port: 4000,
  status: 'running',
  labels: [],
  region: null,
  initialised: true,
  publicKey: 'AAAA',
  publicKeyFingerprint: '0',
  createdAt: '2026-12-01T00:00:00.000Z',
  pid: 1,
  restarts: 0,
  memoryMb: null,
  cpuPercent: 1,
  rssBytes: 1,
  events: { stored: perSecond * 10, perSecond },
});

interface World {
  users: Map<string, UserRecord>;
  keys: Map<string, { id: string; revokedAt?: string }>;
  roles: Map<string, Permission[]>;
  sessions: Set<string>;
}

function services(w: World): MainServices {
  const lookup = (name: string) => w.roles.get(name);
  return {
    registry: {
      listAgents: async () => [],
      users: { get: async (id: string) => w.users.get(id) },
      apiKeys: { get: async (id: string) => w.keys.get(id) },
    },
    tenants: { list: async () => [tenant('acme', 2.5), tenant('globex')] },
    sessions: { stillValid: async (key: string) => w.sessions.has(key) },
    roles: { lookup },
  } as unknown as MainServices;
}

const noop = () => undefined;
const log = { info: noop, warn: noop, error: noop, debug: noop, child: () => log } as never;

/** A sink that keeps the tenants of each overview event. */
function sink() {
  const events: string[][] = [];
  let ended = false;
  return {
    events,
    get ended() {
      return ended;
    },
    write(text: string) {
      const m = /^event: overview\ndata: (.*)\n\n$/.exec(text);
      if (m) events.push((JSON.parse(m[1]!) as { tenants: { name: string }[] }).tenants.map((t) => t.name));
      return true;
    },
    end() {
      ended = true;
    },
  };
}

let w: World;
beforeEach(() => {
  vi.useFakeTimers();
  w = { users: new Map(), keys: new Map(), roles: new Map(), sessions: new Set() };
});
afterEach(() => {
  vi.useRealTimers();
});

async function open(user: UserRecord, keyId: string, session?: string) {
  w.users.set(user.id, user);
  const s = services(w);
  const streams = new OverviewStreams(s, log);
  const lookup = (name: string) => w.roles.get(name);
  const p = {
    ...principalFor(user, keyId, lookup),
    ...(session ? { session: { key: session, csrfToken: 'x', expiresAt: '' } } : {}),
  };
  const out = sink();
  const close = await streams.open(streams.admit(p), p, out);
  return { streams, out, close };
}

describe('an open overview stream', () => {
  it('drops the tenants of a custom role that lost tenants:read, at the next recheck', async () => {
    w.roles.set('watcher', ['tenants:read']);
    w.keys.set('k1', { id: 'k1' });
    const { out, streams } = await open({ id: 'u1', name: 'sam', roles: ['watcher'], createdAt: '' }, 'k1');
    expect(out.events).toEqual([['acme', 'globex']]);
    w.roles.set('watcher', []); // published without tenants:read
    await vi.advanceTimersByTimeAsync(6_000);
    expect(out.events.at(-1)).toEqual([]);
    expect(out.ended).toBe(false);
    streams.close();
  });

  it("cuts a staff user's stream to the tenants its user record still names (session caller)", async () => {
    w.sessions.add('s1');
    const user: UserRecord = { id: 'u2', name: 'tia', roles: ['viewer'], tenants: ['acme', 'globex'], createdAt: '' };
    const { out, streams } = await open(user, 'session:abc', 's1');
    expect(out.events).toEqual([['acme', 'globex']]);
    w.users.set('u2', { ...user, tenants: ['acme'] });
    await vi.advanceTimersByTimeAsync(4_000);
    expect(out.events.at(-1)).toEqual(['acme', 'globex']); // not rechecked yet
    await vi.advanceTimersByTimeAsync(2_000);
    expect(out.events.at(-1)).toEqual(['acme']);
    w.sessions.delete('s1'); // signed out: the stream ends at the next recheck
    await vi.advanceTimersByTimeAsync(6_000);
    expect(out.ended).toBe(true);
    streams.close();
  });

  it('ends when the key is revoked or the user disabled', async () => {
    w.keys.set('k3', { id: 'k3' });
    const { out } = await open({ id: 'u3', name: 'ula', roles: ['viewer'], createdAt: '' }, 'k3');
    w.users.set('u3', { ...w.users.get('u3')!, disabledAt: '2026-12-07T00:00:00.000Z' });
    await vi.advanceTimersByTimeAsync(6_000);
    expect(out.ended).toBe(true);
  });
});

describe("the overview's tenants", () => {
  it('carry the event counts in full rows and in summaries alike', () => {
    const state: OverviewState = { hosts: [], engines: [], tenants: [tenant('acme', 2.5)] };
    const staff = principalFor({ id: 'a', name: 'a', roles: ['viewer'], createdAt: '' }, 'k');
    const customer = principalFor({ id: 'c', name: 'c', roles: ['read-only'], tenant: 'acme', createdAt: '' }, 'k');
    expect(overviewFor(state, staff).tenants[0]).toMatchObject({ events: { stored: 25, perSecond: 2.5 } });
    expect(overviewFor(state, customer).tenants).toEqual([
      { name: 'acme', status: 'running', host: 'h1', labels: [], events: { stored: 25, perSecond: 2.5 } },
    ]);
  });
});
