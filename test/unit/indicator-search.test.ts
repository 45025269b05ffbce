/**
 * Cross-tenant indicator search (main/search/indicators.ts) and the top-k the tenants scan with
 * (common/top-k.ts), against fake tenants: the merge is the exact global newest-lastSeen-first order cut
 * at `limit`, "unknown here" is absence and a failure an error entry, a tenant's extra or mismatched
 * items never leak in, and naming a tenant out of reach is a 404 with an audit line. The relay and the
 * audit log are the seams faked; no I/O.
 */
import { describe, expect, it } from 'vitest';
import { TimeoutError } from '#common/errors.js';
import { newestSeenFirst } from '#common/indicators.js';
import { TopK } from '#common/top-k.js';
import { searchIndicators, type IndicatorItem } from '../../main/search/indicators.js';
import type { Principal } from '../../main/access/api-keys.js';
import type { AuditLog } from '../../main/access/audit.js';
import type { AuditRecord } from '../../main/registry.js';
import type { TenantService } from '../../main/tenants/tenants.js';
import { seeded } from '../harness/seeded.js';

interface Ind {
  value: string;
  type: string;
  reputation: string;
  firstSeen: string;
  lastSeen: string;
  incidents: string[];
}

describe('TopK', () => {
  it('keeps exactly the first k of any stream, in order, for every k', () => {
    const rand = seeded(7);
    for (let run = 0; run < 200; run++) {
      const n = Math.floor(rand() * 60);
      // Few distinct values: many ties, which the order must still settle.
      const xs = Array.from({ length: n }, () => ({ t: Math.floor(rand() * 10), id: Math.floor(rand() * 1e6) }));
      const order = (a: (typeof xs)[0], b: (typeof xs)[0]) => b.t - a.t || a.id - b.id;
      const k = Math.floor(rand() * 70);
      const top = new TopK(k, order);
      for (const x of xs) top.offer(x);
      expect(top.size).toBe(Math.min(k, n));
      expect(top.sorted()).toEqual([...xs].sort(order).slice(0, k));
    }
  });

  it('refuses a k that is not a whole number', () => {
    expect(() => new TopK(-1, () => 0)).toThrow(RangeError);
    expect(() => new TopK(1.5, () => 0)).toThrow(RangeError);
  });
});

const at = (s: number) => new Date(Date.UTC(2026, 0, 1) + s * 1000).toISOString();
const ind = (value: string, lastSeen: number, reputation = 'malicious', type = 'ip'): Ind => ({
  value,
  type,
  reputation,
  firstSeen: at(0),
  lastSeen: at(lastSeen),
  incidents: [],
});

type Behaviour = Ind[] | 'unknown' | 'timeout' | 'garbage' | 'http';

/** Tenants answering like GET /api/v1/indicators (filtered, newest first, up to limit) unless told otherwise. */
function fakeService(tenants: Record<string, Behaviour>, exists: string[] = Object.keys(tenants)) {
  const calls: string[] = [];
  const service = {
    list: async () =>
      Object.keys(tenants).map((name) => ({ name, labels: name.startsWith('e') ? ['emea'] : [], status: 'running' })),
    peek: (name: string) => (exists.includes(name) ? { name } : undefined),
    relay: async (name: string, req: { path: string }) => {
      calls.push(`${name} ${req.path}`);
      const b = tenants[name];
      const json = (status: number, v: unknown) => ({
        status,
        contentType: 'application/json',
        body: Buffer.from(JSON.stringify(v)),
      });
      if (b === 'timeout') throw new TimeoutError('ERR_RELAY_TIMEOUT', 'no answer within the deadline');
      if (b === 'unknown')
        return json(404, { error: { code: 'ERR_INDICATOR_NOT_FOUND', message: 'no such indicator' } });
      if (b === 'http') return json(503, { error: { code: 'ERR_TENANT_STOPPED', message: 'stopped' } });
      if (b === 'garbage') return json(200, { items: 'nope' });
      const q = new URL(req.path, 'http://x').searchParams;
      const items = b.filter(
        (i) =>
          (!q.has('value') || i.value === q.get('value')) &&
          (!q.has('reputation') || i.reputation === q.get('reputation')),
      );
      return json(200, items.sort(newestSeenFirst).slice(0, Number(q.get('limit'))));
    },
  };
  return { service: service as unknown as TenantService, calls };
}

const admin = {
  user: { id: 'usr_1', name: 'admin', roles: ['admin'], createdAt: '' },
  keyId: 'k',
  permissions: new Set(),
  scope: { all: true },
} as unknown as Principal;
const limited = (tenants: string[]) =>
  ({
    ...admin,
    user: { ...admin.user, id: 'usr_2' },
    scope: { all: false, tenants: new Set(tenants) },
  }) as unknown as Principal;
const tags = (items: IndicatorItem[]) => items.map((i) => `${i.tenant}:${i.value}@${i.lastSeen.slice(17, 19)}`);

describe('searchIndicators', () => {
  it('merges every tenant by lastSeen newest first, equal times by tenant, and cuts at limit', async () => {
    const { service } = fakeService({
      a: [ind('x', 5), ind('y', 9)],
      b: [ind('x', 9), ind('z', 1)],
      c: [ind('w', 7)],
    });
    const all = await searchIndicators(service, admin, { reputation: 'malicious' });
    expect(tags(all.items)).toEqual(['a:y@09', 'b:x@09', 'c:w@07', 'a:x@05', 'b:z@01']);
    expect(all).toMatchObject({ errors: [], next: null });
    const two = await searchIndicators(service, admin, { reputation: 'malicious', limit: 2 });
    expect(tags(two.items)).toEqual(['a:y@09', 'b:x@09']);
  });

  it('matches the global order on random worlds for any limit', async () => {
    const rand = seeded(11);
    for (let run = 0; run < 30; run++) {
      const world: Record<string, Ind[]> = {};
      for (let t = 0; t < 1 + Math.floor(rand() * 8); t++) {
        world[`t${t}`] = Array.from({ length: Math.floor(rand() * 30) }, (_, i) =>
          ind(`v${i}`, Math.floor(rand() * 20), rand() < 0.5 ? 'malicious' : 'benign'),
        );
      }
      const limit = 1 + Math.floor(rand() * 40);
      const truth = Object.entries(world)
        .flatMap(([tenant, l]) =>
          l
            .filter((i) => i.reputation === 'benign')
            .sort(newestSeenFirst)
            .map((i) => ({ ...i, tenant })),
        )
        .sort((a, b) =>
          a.lastSeen !== b.lastSeen
            ? a.lastSeen > b.lastSeen
              ? -1
              : 1
            : a.tenant < b.tenant
              ? -1
              : a.tenant > b.tenant
                ? 1
                : 0,
        );
      const r = await searchIndicators(fakeService(world).service, admin, { reputation: 'benign', limit });
      expect(tags(r.items)).toEqual(tags(truth.slice(0, limit)));
    }
  });

  it('treats "unknown here" as absence, and a down, slow or garbled tenant as an error entry', async () => {
    const { service } = fakeService({ a: [ind('x', 1)], b: 'unknown', c: 'timeout', d: 'garbage', e: 'http' });
    const r = await searchIndicators(service, admin, { value: 'x', type: 'ip' });
    expect(tags(r.items)).toEqual(['a:x@01']);
    expect(r.errors.map((e) => [e.tenant, e.code])).toEqual([
      ['c', 'ERR_RELAY_TIMEOUT'],
      ['d', 'ERR_TENANT_BAD_REPLY'],
      ['e', 'ERR_TENANT_STOPPED'],
    ]);
  });

  it("never lets a tenant's extra or mismatched items through, and tags them with the tenant's name", async () => {
    const hostile = Array.from({ length: 500 }, (_, i) => ({
      ...ind(`v${i}`, i % 50, i % 2 ? 'benign' : 'malicious'),
      tenant: 'someone-else',
    }));
    const service = {
      list: async () => [{ name: 'h', labels: [], status: 'running' }],
      relay: async () => ({ status: 200, contentType: 'application/json', body: Buffer.from(JSON.stringify(hostile)) }),
    } as unknown as TenantService;
    const r = await searchIndicators(service, admin, { reputation: 'malicious', limit: 7 });
    expect(r.items).toHaveLength(7);
    expect(r.items.every((i) => i.tenant === 'h' && i.reputation === 'malicious')).toBe(true);
  });

  it('refuses a search without value, type or reputation, and bad limits, before asking any tenant', async () => {
    const { service, calls } = fakeService({ a: [] });
    await expect(searchIndicators(service, admin, {})).rejects.toMatchObject({
      code: 'ERR_SEARCH_TOO_BROAD',
      field: 'value',
    });
    await expect(searchIndicators(service, admin, { tenants: ['a'] })).rejects.toMatchObject({ field: 'value' });
    for (const limit of [0, 201, 1.5])
      await expect(searchIndicators(service, admin, { type: 'ip', limit })).rejects.toMatchObject({ field: 'limit' });
    await expect(searchIndicators(service, admin, { type: 'nope' as never })).rejects.toMatchObject({ field: 'type' });
    expect(calls).toEqual([]);
  });

  it('a tenant out of reach is the same 404 as a missing one; only the existing one is audited', async () => {
    const { service, calls } = fakeService({ a: [ind('x', 1)], b: [ind('x', 2)] });
    const lines: Omit<AuditRecord, 'at'>[] = [];
    const audit = {
      recordLater: (e: Omit<AuditRecord, 'at'>) => {
        lines.push(e);
      },
    } as unknown as AuditLog;
    const p = limited(['a']);
    const r = await searchIndicators(service, p, { value: 'x' }, audit);
    expect(tags(r.items)).toEqual(['a:x@01']);
    const denied = await searchIndicators(service, p, { value: 'x', tenants: ['a', 'b'] }, audit).catch(
      (e: unknown) => e,
    );
    const missing = await searchIndicators(service, p, { value: 'x', tenants: ['a', 'zz'] }, audit).catch(
      (e: unknown) => e,
    );
    expect(denied).toMatchObject({ code: 'ERR_TENANT_NOT_FOUND', category: 'not-found', field: 'tenants' });
    expect(missing).toMatchObject({ code: 'ERR_TENANT_NOT_FOUND', category: 'not-found', field: 'tenants' });
    expect(lines).toEqual([
      {
        actor: 'usr_2',
        action: 'auth.tenant',
        target: 'search.indicators tenant:b',
        outcome: 'denied',
        remote: undefined,
        detail: { keyId: 'k' },
      },
    ]);
    expect(calls.every((c) => c.startsWith('a '))).toBe(true);
  });
});
