/**
 * Security profiles on a real tenant (real LevelDB and tenant app, requests signed as main signs them): a user who
 * carries a profile (a customer user of main, whose claim names it, or a tenant user behind a tenant key) sees only
 * the profile's domains on every events and incidents route. The matrix walks the tenant's own route table
 * (`app.scopedRoutes`), so a route added later is covered: each answers 404 or data of the allowed domain only,
 * never the other domain's item, and a write aimed at the other domain's incident changes nothing. Every route that
 * configures the whole tenant (domains and tagging, users, profiles, sites, content…) refuses a profiled caller.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { hashSecret, parseTenantKey } from '#common/secrets.js';
import type { CallerIdentity } from '#common/signed-request.js';
import { callerIdentity } from '../../main/access/api-keys.js';
import { batch, openEventTenant, record, STAFF_ADMIN, type EventTenant } from '../harness/event-tenant.js';

type Incident = { id: string; domain?: string; status: string; labels?: Record<string, string> };
let t: EventTenant;
let seq = 0;
const ids: Record<string, string> = {};
/** A customer user created on main with `--profile pa`: main's claim carries the profile. */
const PROFILED: CallerIdentity = { id: 'usr_cust', name: 'cust', roles: ['admin'], tenant: 'prof', profile: 'pa' };
let keyed: CallerIdentity;
let runB = '';
const A = 'Customer A';
const B = 'Customer B';
const B_ONLY = '10.66.66.66'; // an address that only B's events carry

async function send(engine: string, src: string, n: number) {
  const records = Array.from({ length: n }, (_, i) =>
    record(`<38>Dec  6 23:26:15 host1 sshd: Failed password for root src=${src}`, { receivedAt: Date.now() + i }),
  );
  await t.events.ingest(batch(engine, ++seq, records));
}

beforeAll(async () => {
  t = await openEventTenant('prof');
  for (const [d, engine] of [
    [A, 'eng-a'],
    [B, 'eng-b'],
  ]) {
    expect((await t.call('POST', '/api/v1/domains', { name: d })).status).toBe(201);
    await t.call('POST', `/api/v1/domains/${encodeURIComponent(d)}/mappings`, {
      kind: 'event-collector',
      value: engine,
    });
  }
  const rule = {
    match: { q: 'failed password' },
    count: 2,
    within: '5m',
    by: 'sourceAddress',
    incident: { name: 'brute force', type: 'Brute Force', severity: 2 },
  };
  expect(
    (await t.call('POST', '/api/v1/content', { type: 'rule', name: 'r', body: JSON.stringify(rule) })).status,
  ).toBe(201);
  await send('eng-a', '10.1.1.1', 2);
  await send('eng-b', B_ONLY, 2);
  for (let i = 0; i < 50 && Object.keys(ids).length < 2; i++) {
    const r = await t.call<{ items: Incident[] }>('GET', '/api/v1/incidents');
    for (const x of r.body.items) if (x.domain) ids[x.domain] = x.id;
    await new Promise((res) => setTimeout(res, 100));
  }
  expect(Object.keys(ids).sort()).toEqual([A, B]);
  // What hangs off B's incident: an indicator only B saw, and a playbook run waiting on an analyst.
  const ind = { value: B_ONLY, type: 'ip', incident: ids[B] };
  expect((await t.call('POST', '/api/v1/indicators', ind)).status).toBe(201);
  const pb = 'name: wait\nstart: ask\ntasks:\n  ask: {type: manual, prompt: "ok?"}\n';
  expect((await t.call('POST', '/api/v1/content', { type: 'playbook', name: 'wait', body: pb })).status).toBe(201);
  const run = await t.call<{ id: string }>('POST', '/api/v1/playbooks/wait/runs', { incident: ids[B] });
  expect(run.status, JSON.stringify(run.body)).toBe(201);
  runB = run.body.id;
  const p = await t.call<{ id: string; name: string }>('POST', '/api/v1/profiles', { name: 'pa', domains: [A] });
  expect(p.status, JSON.stringify(p.body)).toBe(201);
  // A tenant user with the profile, behind a tenant key.
  const u = await t.call('POST', '/api/v1/users', { name: 'local', roles: ['read-only'], profile: 'pa' });
  expect(u.status, JSON.stringify(u.body)).toBe(201);
  const k = await t.call<{ id: string; key: string }>('POST', '/api/v1/apikeys', { user: 'local' });
  const parsed = parseTenantKey(k.body.key)!;
  keyed = { id: `key:${parsed.id}`, name: '', roles: [], key: { id: parsed.id, sha256: hashSecret(parsed.secret) } };
});
afterAll(async () => {
  await t?.close();
  if (t) await rm(t.dir, { recursive: true, force: true });
});

/** A scoped route's URL with its parameters aimed at domain B's data. */
function aimAtB(url: string): string[] {
  const filled = url.replace(':id', ids[B]).replace(':run', runB).replace(':name', encodeURIComponent(B));
  if (filled === '/api/v1/events')
    return [filled, `${filled}?domain=${encodeURIComponent(B)}`, `${filled}?q=${B_ONLY}`];
  if (filled === '/api/v1/playbooks/runs') return [filled, `${filled}?incident=${ids[B]}`];
  return [filled];
}

describe('security profiles', () => {
  it('lists profiles with id and name, refuses a missing domain or profile, and one in use', async () => {
    const l = await t.call<{ items: { id: string; name: string; domains: string[] }[] }>('GET', '/api/v1/profiles');
    expect(l.body.items).toEqual([
      expect.objectContaining({ id: expect.stringMatching(/^prf_/), name: 'pa', domains: [A] }),
    ]);
    // A domain a profile names stays: removed, a later domain of its name would be granted to the profile again.
    const inUse = await t.call<{ error: { code: string } }>('DELETE', `/api/v1/domains/${encodeURIComponent(A)}`);
    expect([inUse.status, inUse.body.error.code]).toEqual([409, 'ERR_DOMAIN_IN_USE']);
    expect(JSON.stringify((await t.call('GET', '/api/v1/domains')).body)).toContain(A);
    const bad = await t.call<{ error: { code: string; message: string } }>('POST', '/api/v1/profiles', {
      name: 'px',
      domains: ['nope'],
    });
    expect(bad.status).toBe(404);
    expect(bad.body.error.message).toMatch(/^domains: /);
    const noProfile = await t.call('POST', '/api/v1/users', { name: 'x1', roles: ['read-only'], profile: 'nope' });
    expect(noProfile.status).toBe(404);
    expect((await t.call('DELETE', '/api/v1/profiles/pa')).status).toBe(409);
    expect((await t.call('GET', '/api/v1/profiles')).body).toEqual(l.body);
  });

  it('main puts a customer user’s profile in the claim it signs', () => {
    const user = { id: 'usr_1', name: 'c', roles: ['read-only'], createdAt: '', tenant: 'prof', profile: 'pa' };
    expect(callerIdentity({ user, keyId: 'k', permissions: new Set(), scope: null } as never)).toMatchObject({
      tenant: 'prof',
      profile: 'pa',
    });
  });

  it('walks every events and incidents route: a profiled user never gets the other domain’s item', async () => {
    const routes = t.app.scopedRoutes;
    expect(routes.map((r) => `${r.method} ${r.url}`)).toEqual(
      expect.arrayContaining([
        'GET /api/v1/events',
        'GET /api/v1/incidents',
        'GET /api/v1/incidents/:id/timeline',
        'GET /api/v1/playbooks/runs/:run',
        'GET /api/v1/indicators',
      ]),
    );
    let sawA = 0;
    for (const caller of [PROFILED, keyed]) {
      for (const r of routes) {
        for (const url of aimAtB(r.url)) {
          const body = r.method === 'GET' || r.method === 'DELETE' ? undefined : { reason: 'x', incident: ids[B] };
          const res = await t.call<unknown>(r.method, url, body, caller);
          const text = JSON.stringify(res.body ?? '');
          const where = `${caller.id} ${r.method} ${url} → ${res.status} ${text.slice(0, 200)}`;
          expect([200, 201, 400, 403, 404], where).toContain(res.status);
          if (res.status >= 400) continue; // a refusal may echo what was asked, never more
          expect(text, where).not.toContain(B);
          expect(text, where).not.toContain(B_ONLY);
          if (res.status === 200 && text.includes(A)) sawA++;
        }
      }
    }
    expect(sawA).toBeGreaterThan(0); // the profiled users do see their own domain
    // Nothing aimed at B changed B's incident; the staff admin (no profile) still sees B everywhere.
    const b = await t.call<Incident>('GET', `/api/v1/incidents/${ids[B]}`, undefined, STAFF_ADMIN);
    expect(b.body).toMatchObject({ status: 'open', domain: B });
    const runs = await t.call<{ id: string }[]>('GET', '/api/v1/playbooks/runs');
    expect(runs.body.map((r) => r.id)).toContain(runB);
    expect(JSON.stringify((await t.call('GET', '/api/v1/indicators')).body)).toContain(B_ONLY);
    const ev = await t.call<{ items: { domain: string }[] }>('GET', `/api/v1/events?q=${B_ONLY}`);
    expect(ev.body.items.length).toBeGreaterThan(0);
    expect(ev.body.items.every((e) => e.domain === B)).toBe(true);
  });

  it('shows the allowed domain’s events, incidents and timeline to the profiled user', async () => {
    const ev = await t.call<{ items: { domain: string }[] }>('GET', '/api/v1/events', undefined, PROFILED);
    expect(ev.body.items.length).toBeGreaterThan(0);
    expect(new Set(ev.body.items.map((e) => e.domain))).toEqual(new Set([A]));
    const inc = await t.call<{ items: Incident[] }>('GET', '/api/v1/incidents', undefined, keyed);
    expect(inc.body.items.map((i) => i.id)).toEqual([ids[A]]);
    expect((await t.call('GET', `/api/v1/incidents/${ids[A]}/timeline`, undefined, PROFILED)).status).toBe(200);
    const doms = await t.call<{ items: { name: string }[] }>('GET', '/api/v1/domains', undefined, PROFILED);
    expect(doms.body.items.map((d) => d.name)).toEqual([A]);
  });

  it('fills a page of incidents from its own domains, however many newer ones it may not see', async () => {
    for (let i = 0; i < 12; i++)
      expect((await t.call('POST', '/api/v1/incidents', { name: `later ${i}`, type: 'x', severity: 1 })).status).toBe(
        201,
      );
    const page = await t.call<{ items: Incident[]; next: string | null }>(
      'GET',
      '/api/v1/incidents?limit=5',
      undefined,
      PROFILED,
    );
    expect(page.body.items.map((i) => i.id)).toEqual([ids[A]]);
    expect(page.body.next).toBeNull();
  });

  it('walks every route that configures the whole tenant: a profiled admin is refused, and nothing changes', async () => {
    const barred = t.app.barredRoutes.map((r) => `${r.method} ${r.url}`);
    expect(barred).toEqual(
      expect.arrayContaining([
        'POST /api/v1/domains',
        'POST /api/v1/domains/:name/mappings',
        'PATCH /api/v1/events/settings',
        'POST /api/v1/properties',
        'POST /api/v1/users',
        'POST /api/v1/profiles',
        'POST /api/v1/content',
        'POST /api/v1/sites',
      ]),
    );
    const before = async () =>
      JSON.stringify(
        await Promise.all(
          ['/api/v1/domains', '/api/v1/events/settings', '/api/v1/properties', '/api/v1/users', '/api/v1/profiles'].map(
            async (u) => (await t.call('GET', u)).body,
          ),
        ),
      );
    const was = await before();
    for (const caller of [PROFILED, keyed])
      for (const r of t.app.barredRoutes) {
        const url = r.url.replace(/:[a-z]+/g, (p) => (p === ':name' ? encodeURIComponent(A) : 'x'));
        const body = r.method === 'GET' || r.method === 'DELETE' ? undefined : { kind: 'log-source', value: 'h@eng-b' };
        const res = await t.call<{ error?: { code: string } }>(r.method, url, body, caller);
        const where = `${caller.id} ${r.method} ${url} → ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`;
        // The admin for its profile; the read-only key user lacks the permission already.
        const code =
          caller === PROFILED ? 'ERR_PROFILE_FORBIDDEN' : expect.stringMatching(/^ERR_(PROFILE_)?FORBIDDEN$/);
        expect([res.status, res.body.error?.code], where).toEqual([403, code]);
      }
    expect(await before()).toBe(was);
    // The mapping that would have pulled B's collector into A, and the name of a domain it may not see, stay out.
    const map = await t.call<{ error: { code: string; message: string } }>(
      'POST',
      `/api/v1/domains/${encodeURIComponent(A)}/mappings`,
      { kind: 'event-collector', value: 'eng-b' },
      PROFILED,
    );
    expect(map.status).toBe(403);
    expect(map.body.error.message).not.toContain(B);
  });

  it('lists to a profiled user no log source mapped to a domain it may not see (by the source or its group)', async () => {
    const rec = (host: string) => record(`<38>Dec  6 23:26:15 ${host} sshd: accepted`, { receivedAt: Date.now() });
    await t.events.ingest(batch('eng-b', ++seq, [rec('b-firewall'), rec('b-router')]));
    await t.events.ingest(batch('eng-a', ++seq, [rec('a-firewall')]));
    const names = async (caller?: CallerIdentity) =>
      (await t.call<{ items: { name: string }[] }>('GET', '/api/v1/log-sources', undefined, caller)).body.items
        .map((x) => x.name)
        .filter((n) => /-(firewall|router)@/.test(n))
        .sort();
    const all = ['a-firewall@eng-a', 'b-firewall@eng-b', 'b-router@eng-b'];
    expect(await names()).toEqual(all);
    const mapB = (kind: string, value: string) =>
      t.call('POST', `/api/v1/domains/${encodeURIComponent(B)}/mappings`, { kind, value });
    expect((await mapB('log-source', 'b-firewall@eng-b')).status).toBe(201);
    const grouped = await t.call('POST', `/api/v1/log-sources/${encodeURIComponent('b-router@eng-b')}/groups`, {
      group: 'b-net',
    });
    expect(grouped.status, JSON.stringify(grouped.body)).toBeLessThan(300);
    expect((await mapB('log-source-group', 'b-net')).status).toBe(201);
    // Unmapped sources (tagged by collector here) stay listed; the two mapped to B are another domain's devices.
    for (const caller of [PROFILED, keyed]) expect(await names(caller)).toEqual(['a-firewall@eng-a']);
    expect(await names()).toEqual(all);
  });

  it('lists to a profiled user the obfuscation rules of every domain and of its own, not of another', async () => {
    for (const [name, domain] of [
      ['all-users', undefined],
      ['a-users', A],
      ['b-users', B],
    ] as const) {
      const r = await t.call('POST', '/api/v1/obfuscation', { name, field: 'username', ...(domain ? { domain } : {}) });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
    }
    const names = async (caller?: CallerIdentity) =>
      (await t.call<{ items: { name: string }[] }>('GET', '/api/v1/obfuscation', undefined, caller)).body.items
        .map((x) => x.name)
        .sort();
    expect(await names()).toEqual(['a-users', 'all-users', 'b-users']);
    for (const caller of [PROFILED, keyed]) expect(await names(caller)).toEqual(['a-users', 'all-users']);
  });

  it("an incident a profiled user makes is of its profile's domain, so it sees it; an unprofiled one's is Default", async () => {
    for (const caller of [PROFILED, keyed]) {
      const made = await t.call<Incident>(
        'POST',
        '/api/v1/incidents',
        { name: 'by hand', type: 'x', severity: 1 },
        caller,
      );
      if (caller === keyed) {
        // A read-only tenant user may not make one at all.
        expect(made.status).toBe(403);
        continue;
      }
      expect(made.status, JSON.stringify(made.body)).toBe(201);
      expect(made.body.domain).toBe(A);
      const back = await t.call<Incident>('GET', `/api/v1/incidents/${made.body.id}`, undefined, caller);
      expect([back.status, back.body.domain]).toEqual([200, A]);
    }
    const staff = await t.call<Incident>('POST', '/api/v1/incidents', { name: 'staff', type: 'x', severity: 1 });
    expect(staff.body.domain).toBeUndefined();
  });

  it('a profile the tenant does not hold grants no domain (fail closed)', async () => {
    const ghost = { ...PROFILED, profile: 'ghost' };
    const ev = await t.call<{ items: unknown[] }>('GET', '/api/v1/events', undefined, ghost);
    expect(ev.body.items).toEqual([]);
    expect((await t.call('GET', `/api/v1/incidents/${ids[A]}`, undefined, ghost)).status).toBe(404);
  });
});
