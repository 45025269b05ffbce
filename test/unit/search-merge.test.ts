/**
 * Cross-tenant search paging (main/search/incidents.ts) against fake tenants that page like the real one (newest
 * first, below a cursor id): every page is the exact global newest-first order, every item comes once
 * across pages even when tenants fail at random, a page over many tenants moves a fraction of N × limit
 * incidents, and a broken or hostile tenant or cursor cannot make it loop. The relay is the seam faked;
 * no I/O.
 */
import { describe, expect, it } from 'vitest';
import { TimeoutError } from '#common/errors.js';
import { searchIncidents, firstAsk, type SearchItem } from '../../main/search/incidents.js';
import type { Principal } from '../../main/access/api-keys.js';
import type { TenantService } from '../../main/tenants/tenants.js';
import { seeded } from '../harness/seeded.js';

interface Inc {
  id: string;
  created: string;
  name: string;
}

/** Tenants with incidents at random times (ids in time order, many equal times), skewed in activity. */
function world(rand: () => number, tenants: number, maxPer: number): Map<string, Inc[]> {
  const w = new Map<string, Inc[]>();
  for (let t = 0; t < tenants; t++) {
    const n = Math.floor(rand() * rand() * maxPer);
    let time = Date.UTC(2026, 0, 1) + Math.floor(rand() * 1e6);
    const list: Inc[] = [];
    for (let i = 1; i <= n; i++) {
      if (rand() < 0.7) time += Math.floor(rand() * 5000);
      list.push({ id: String(i), created: new Date(time).toISOString(), name: `t${t}-${i}` });
    }
    w.set(`t${String(t).padStart(3, '0')}`, list);
  }
  return w;
}

interface Fake {
  service: TenantService;
  moved: { items: number; calls: number };
}

/** A TenantService whose relay answers like a tenant's GET /api/v1/incidents; `fail` decides per call. */
function fakeService(
  w: Map<string, Inc[]>,
  fail: (tenant: string) => 'ok' | 'throw' | 'http' | 'empty' = () => 'ok',
): Fake {
  const moved = { items: 0, calls: 0 };
  const service = {
    list: async () => [...w.keys()].map((name) => ({ name, labels: [], status: 'running' })),
    relay: async (name: string, req: { path: string }) => {
      moved.calls++;
      const q = new URL(req.path, 'http://x').searchParams;
      const f = fail(name);
      if (f === 'throw') throw new TimeoutError('ERR_RELAY_TIMEOUT', 'no answer within the deadline');
      if (f === 'http')
        return {
          status: 503,
          contentType: 'application/json',
          body: Buffer.from('{"error":{"code":"ERR_X","message":"down"}}'),
        };
      if (f === 'empty')
        return { status: 200, contentType: 'application/json', body: Buffer.from('{"items":[],"next":"5"}') };
      const below = q.has('cursor') ? Number(q.get('cursor')) : Infinity;
      const limit = Number(q.get('limit'));
      const all = w
        .get(name)!
        .filter((i) => Number(i.id) < below)
        .reverse();
      const items = all.slice(0, limit);
      moved.items += items.length;
      const next = all.length > limit ? items[items.length - 1].id : null;
      return { status: 200, contentType: 'application/json', body: Buffer.from(JSON.stringify({ items, next })) };
    },
  };
  return { service: service as unknown as TenantService, moved };
}

const principal = {
  user: { id: 'usr_1', name: 'admin', roles: ['admin'], createdAt: '' },
  keyId: 'k',
  permissions: new Set(),
  scope: { all: true },
} as unknown as Principal;

function globalOrder(w: Map<string, Inc[]>): string[] {
  const all = [...w].flatMap(([tenant, list]) => list.map((i) => ({ tenant, ...i })));
  all.sort((a, b) =>
    a.created !== b.created
      ? a.created > b.created
        ? -1
        : 1
      : a.tenant !== b.tenant
        ? a.tenant < b.tenant
          ? -1
          : 1
        : Number(b.id) - Number(a.id),
  );
  return all.map((i) => `${i.tenant}/${i.id}`);
}

const key = (i: SearchItem) => `${i.tenant}/${i.id}`;

async function pageAll(
  service: TenantService,
  limit: number,
  maxPages = 10_000,
): Promise<{ keys: string[]; pages: number; errors: number }> {
  const keys: string[] = [];
  let cursor: string | undefined;
  let errors = 0;
  for (let pages = 1; pages <= maxPages; pages++) {
    const p = await searchIncidents(service, principal, { limit, cursor });
    keys.push(...p.items.map(key));
    errors += p.errors.length;
    if (!p.next) return { keys, pages, errors };
    cursor = p.next;
  }
  throw new Error('paging did not end');
}

describe('cross-tenant search paging', () => {
  it('every page continues the exact global newest-first order, for many worlds and page sizes', async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const rand = seeded(seed);
      const w = world(rand, 1 + Math.floor(rand() * 12), 60);
      const limit = 1 + Math.floor(rand() * 25);
      const { keys } = await pageAll(fakeService(w).service, limit);
      expect(keys, `seed ${seed} limit ${limit}`).toEqual(globalOrder(w));
    }
  });

  it('with tenants failing at random, paging on still yields every item exactly once', async () => {
    for (let seed = 100; seed < 120; seed++) {
      const rand = seeded(seed);
      const w = world(rand, 2 + Math.floor(rand() * 8), 50);
      const failures = ['throw', 'http'] as const;
      const { keys, errors } = await pageAll(
        fakeService(w, () => (rand() < 0.25 ? failures[Math.floor(rand() * 2)] : 'ok')).service,
        1 + Math.floor(rand() * 10),
      );
      expect([...keys].sort(), `seed ${seed}`).toEqual([...globalOrder(w)].sort());
      expect(new Set(keys).size).toBe(keys.length);
      if (w.size > 0) expect(errors).toBeGreaterThan(0);
    }
  });

  it('a first page over 100 tenants moves a fraction of 100 × limit incidents, in a few round trips', async () => {
    const w = world(seeded(7), 100, 400);
    const fake = fakeService(w);
    const p = await searchIncidents(fake.service, principal, { limit: 50 });
    expect(p.items.map(key)).toEqual(globalOrder(w).slice(0, 50));
    expect(fake.moved.items).toBeLessThan((100 * 50) / 5);
    expect(fake.moved.calls).toBeLessThan(100 + 20);
    // One busy tenant holding all the newest incidents: one extra round trip to it, not to all.
    const skewed = new Map(w);
    skewed.set(
      't999',
      Array.from({ length: 500 }, (_, i) => ({
        id: String(i + 1),
        created: new Date(Date.UTC(2030, 0, 1) + i).toISOString(),
        name: `busy ${i}`,
      })),
    );
    const fake2 = fakeService(skewed);
    const p2 = await searchIncidents(fake2.service, principal, { limit: 50 });
    expect(p2.items.every((i) => i.tenant === 't999')).toBe(true);
    expect(fake2.moved.calls).toBe(101 + 1);
    expect(firstAsk(50, 1)).toBe(50);
  });

  it('a tenant that claims more but sends nothing is an error entry, not an endless loop', async () => {
    const w = world(seeded(3), 3, 30);
    const p = await searchIncidents(fakeService(w, (t) => (t === 't001' ? 'empty' : 'ok')).service, principal, {
      limit: 20,
    });
    expect(p.errors).toEqual([expect.objectContaining({ tenant: 't001', code: 'ERR_TENANT_BAD_REPLY' })]);
  });

  it('refuses a forged, malformed or foreign cursor with ERR_BAD_CURSOR naming the cursor', async () => {
    const { service } = fakeService(world(seeded(5), 4, 40));
    const page = await searchIncidents(service, principal, { limit: 3 });
    const forged = Buffer.from(JSON.stringify({ v: 1, h: 'x', t: [['t000', '1']] })).toString('base64url');
    for (const cursor of ['!!', 'e30', forged, Buffer.from('[["t000",null]]').toString('base64url')]) {
      await expect(searchIncidents(service, principal, { limit: 3, cursor }), cursor).rejects.toMatchObject({
        code: 'ERR_BAD_CURSOR',
        field: 'cursor',
      });
    }
    await expect(
      searchIncidents(service, principal, { limit: 3, q: 'other', cursor: page.next! }),
    ).rejects.toMatchObject({ code: 'ERR_BAD_CURSOR' });
  });
});
