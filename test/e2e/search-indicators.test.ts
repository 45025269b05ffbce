/**
 * Indicator search and partial results end to end with real processes: main, one host, three tenants with
 * labels (search-fixtures.ts). Indicator search finds a value in exactly the tenants that know it, newest
 * lastSeen first, and a user limited to some tenants sees only theirs (naming another is a 404 and an audit
 * line); bad input is a 4xx naming the field; a stopped (slow) or killed tenant becomes an error entry
 * while the others still answer; and main's data directory holds none of the incidents or indicators
 * afterwards. Incident search and commands across tenants are in search.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Deployment } from '../harness/deployment.js';
import type { ErrorBody, Incident, Indicator } from '../harness/api-shapes.js';
import { until } from '../harness/processes.js';
import { filesContaining } from '../harness/data-scan.js';
import { tenantAnswering } from '../harness/tenant-api.js';
import {
  ROUNDS,
  TENANTS,
  expectMergedOrder,
  key,
  post as postOf,
  search as searchOf,
  searchIndicators as searchIndicatorsOf,
  seedIncidents,
  truth as truthOf,
  type CommandReply,
  type IndicatorItem,
  type IndicatorPage,
} from './search-fixtures.js';

let d: Deployment;
/** Every incident created, by tenant: the truth searches are checked against. */
let created: Map<string, Incident[]>;
/** Strings that exist only inside incidents (names and details): main's data dir must never hold one. */
let markers: string[];
/** Indicator values created by the tests below: main's data dir must never hold one either. */
const indicatorMarkers: string[] = [];

interface AuditRow {
  actor: string;
  action: string;
  target?: string;
  outcome: string;
}

beforeAll(async () => {
  d = await Deployment.create();
  ({ created, markers } = await seedIncidents(d));
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

const waitAnswering = (name: string, notPid?: number) => tenantAnswering(d, name, notPid);
const post = <T>(path: string, body: unknown, want?: number) => postOf<T>(d, path, body, want);
const search = (query: string) => searchOf(d, query);
const searchIndicators = (query: string, key?: string) => searchIndicatorsOf(d, query, key);
const truth = (pred?: (t: string, i: Incident) => boolean) => truthOf(created, pred);

describe('indicator search across tenants', () => {
  /** An address only these tests use (TEST-NET-2), so the data scan below can look for it too. */
  const ip = `198.51.100.${10 + Math.floor(Math.random() * 240)}`;
  const domains = new Map<string, { bad: string; ok: string }>();
  const addIndicator = (tenant: string, body: { type: string; value: string; reputation?: string }) =>
    post<Indicator>(`/tenants/${tenant}/api/indicators`, body, 201);
  const byTenant = (items: IndicatorItem[]) => items.map((i) => i.tenant);
  /** Newest lastSeen first; equal times by tenant name. */
  const expectNewestFirst = (items: IndicatorItem[]) => {
    for (let i = 1; i < items.length; i++) {
      const a = items[i - 1],
        b = items[i];
      expect(
        a.lastSeen > b.lastSeen || (a.lastSeen === b.lastSeen && a.tenant <= b.tenant),
        `${a.tenant} ${a.lastSeen} before ${b.tenant} ${b.lastSeen}`,
      ).toBe(true);
    }
  };

  beforeAll(async () => {
    indicatorMarkers.push(ip);
    // green first, then red: red has seen the address last.
    await addIndicator('green', { type: 'ip', value: ip, reputation: 'suspicious' });
    await addIndicator('red', { type: 'ip', value: ip, reputation: 'malicious' });
    for (const t of Object.keys(TENANTS)) {
      const pair = { bad: `ioc-bad-${t}-${randomUUID()}.example`, ok: `ioc-ok-${t}-${randomUUID()}.example` };
      await addIndicator(t, { type: 'domain', value: pair.bad, reputation: 'malicious' });
      await addIndicator(t, { type: 'domain', value: pair.ok, reputation: 'benign' });
      domains.set(t, pair);
      indicatorMarkers.push(pair.bad, pair.ok);
    }
  });

  it('finds an address in exactly the tenants that know it, tagged with the tenant, newest lastSeen first', async () => {
    const r = await searchIndicators(`value=${ip}`);
    expect(r.status, r.raw).toBe(200);
    expect(r.body.errors).toEqual([]);
    expect(r.body.next).toBeNull();
    expect(byTenant(r.body.items)).toEqual(['red', 'green']);
    expect(r.body.items[0]).toMatchObject({ tenant: 'red', type: 'ip', value: ip, reputation: 'malicious' });
    expect(r.body.items[1]).toMatchObject({ tenant: 'green', type: 'ip', value: ip, reputation: 'suspicious' });
    expectNewestFirst(r.body.items);
    // Seen again in green: green moves ahead.
    await addIndicator('green', { type: 'ip', value: ip });
    const again = await searchIndicators(`value=${ip}&type=ip`);
    expect(byTenant(again.body.items)).toEqual(['green', 'red']);
    expectNewestFirst(again.body.items);
    // A tenant that never saw it is absent, not an error, whether asked for value+type or value alone.
    for (const q of [`value=${ip}&type=ip&tenants=blue`, `value=${ip}&tenants=blue`, `value=${ip}&type=domain`]) {
      const none = await searchIndicators(q);
      expect(none.status, none.raw).toBe(200);
      expect(none.body, q).toEqual({ items: [], errors: [], next: null });
    }
    // The tenant's own API: value alone is now a lookup in every type; value+type is still [it] or 404.
    const own = await d.api<Indicator[]>('GET', `/tenants/red/api/indicators?value=${ip}`);
    expect(own.status, own.raw).toBe(200);
    expect(own.body.map((i) => [i.type, i.value])).toEqual([['ip', ip]]);
    const missing = await d.api<ErrorBody>('GET', `/tenants/blue/api/indicators?value=${ip}&type=ip`);
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe('ERR_INDICATOR_NOT_FOUND');
  });

  it('filters by reputation and type in every tenant, by labels, and keeps the newest `limit`', async () => {
    const r = await searchIndicators('reputation=malicious&type=domain');
    expect(r.status, r.raw).toBe(200);
    expect(r.body.errors).toEqual([]);
    // The truth: each tenant's own answer to the same filter.
    const truth: string[] = [];
    for (const t of Object.keys(TENANTS)) {
      const own = await d.api<Indicator[]>(
        'GET',
        `/tenants/${t}/api/indicators?reputation=malicious&type=domain&limit=1000`,
      );
      truth.push(...own.body.map((i) => `${t}/${i.value}`));
    }
    expect(r.body.items.map((i) => `${i.tenant}/${i.value}`).sort()).toEqual(truth.sort());
    for (const [t, pair] of domains) {
      expect(
        r.body.items.some((i) => i.tenant === t && i.value === pair.bad),
        `${t} bad`,
      ).toBe(true);
      expect(
        r.body.items.some((i) => i.value === pair.ok),
        `${t} ok`,
      ).toBe(false);
    }
    expect(r.body.items.every((i) => i.reputation === 'malicious' && i.type === 'domain')).toBe(true);
    expectNewestFirst(r.body.items);

    const malicious = await searchIndicators('reputation=malicious');
    expect(malicious.body.items.some((i) => i.tenant === 'red' && i.value === ip)).toBe(true);
    expect(malicious.body.items.some((i) => i.tenant === 'green' && i.value === ip)).toBe(false);

    const emea = await searchIndicators('reputation=benign&labels=emea');
    expect(new Set(byTenant(emea.body.items))).toEqual(new Set(['red', 'green']));
    const two = await searchIndicators('reputation=malicious&type=domain&limit=2');
    expect(two.body.items).toEqual(r.body.items.slice(0, 2));
  });

  it('a stopped tenant is an error entry while the others answer in time', async () => {
    const blue = await waitAnswering('blue');
    process.kill(blue.pid!, 'SIGSTOP');
    try {
      const t0 = Date.now();
      const r = await searchIndicators('type=domain&reputation=benign&timeoutMs=1000');
      expect(r.status, r.raw).toBe(200);
      expect(Date.now() - t0).toBeLessThan(5_000);
      expect(r.body.errors).toEqual([{ tenant: 'blue', code: 'ERR_RELAY_TIMEOUT', message: expect.any(String) }]);
      expect(byTenant(r.body.items).sort()).toEqual(['green', 'red']);
    } finally {
      process.kill(blue.pid!, 'SIGCONT');
    }
    await waitAnswering('blue');
  });

  it('a user limited to some tenants sees only theirs; naming another is a 404 like a missing one, and audited', async () => {
    const u = await post<{ id: string }>('/users', {
      name: 'ind-analyst',
      roles: ['analyst'],
      tenants: ['red', 'green'],
    });
    const key = (await post<{ key: string }>('/apikeys', { user: u.id })).key;
    const mine = await searchIndicators('type=domain', key);
    expect(mine.status, mine.raw).toBe(200);
    expect(new Set(byTenant(mine.body.items))).toEqual(new Set(['red', 'green']));
    expect(mine.body.items.some((i) => i.value.includes('-blue-'))).toBe(false);
    const blueValue = domains.get('blue')!.bad;
    expect((await searchIndicators(`value=${blueValue}`, key)).body).toEqual({ items: [], errors: [], next: null });

    const before = (await d.api<AuditRow[]>('GET', '/audit?action=auth.tenant&limit=200')).body.length;
    const other = await searchIndicators('value=x&tenants=red,blue', key);
    const absent = await searchIndicators('value=x&tenants=red,no-such-tenant', key);
    expect(other.status, other.raw).toBe(404);
    expect(absent.status, absent.raw).toBe(404);
    expect(other.body.error.code).toBe(absent.body.error.code);
    expect(other.body.error.message.replace('blue', 'X')).toBe(
      absent.body.error.message.replace('no-such-tenant', 'X'),
    );
    // Incident search and commands name tenants the same way, and are audited the same way.
    expect((await d.api('GET', '/search/incidents?tenants=blue', undefined, { key })).status).toBe(404);
    expect((await d.api('POST', '/commands', { command: 'incidents.count', tenants: ['blue'] }, { key })).status).toBe(
      404,
    );

    // Written without holding up the 404 (its timing must not tell existing from missing): poll for them.
    const wanted = ['search.indicators tenant:blue', 'search.incidents tenant:blue', 'commands.fanout tenant:blue'];
    const audit = await until(
      'the denied crossings in the audit log',
      async () => {
        const rows = (await d.api<AuditRow[]>('GET', '/audit?action=auth.tenant&limit=200')).body;
        return wanted.every((w) => rows.some((a) => a.target === w)) ? rows : undefined;
      },
      10_000,
      100,
    );
    const denied = audit.filter((a) => a.actor === u.id && a.outcome === 'denied').map((a) => a.target);
    expect(denied).toEqual(expect.arrayContaining(wanted));
    // A name that exists nowhere is a typo, not a crossing: three lines were written, no more.
    expect(audit.length - before).toBe(3);
    expect(denied.some((t) => t?.includes('no-such-tenant'))).toBe(false);
    const cli = await d.cli(['audit', '--json']);
    expect(cli.code, cli.stdout + cli.stderr).toBe(0);
    expect(JSON.stringify(cli.json)).toContain('search.indicators tenant:blue');
  });

  it('bad input is a 4xx JSON error naming the field, never a 5xx', async () => {
    const cases: [string, number, string][] = [
      ['', 400, 'value'],
      ['tenants=red', 400, 'value'],
      ['limit=5', 400, 'value'],
      ['value=', 400, 'value'],
      [`value=${'a'.repeat(2049)}`, 400, 'value'],
      ['value=a&value=b', 400, 'value'],
      ['type=nope', 400, 'type'],
      ['reputation=evil', 400, 'reputation'],
      ['value=x&limit=0', 400, 'limit'],
      ['value=x&limit=201', 400, 'limit'],
      ['value=x&limit=abc', 400, 'limit'],
      ['value=x&timeoutMs=5', 400, 'timeoutMs'],
      ['value=x&cursor=abc', 400, 'cursor'],
      ['value=x&tenants=red&labels=emea', 400, 'tenants'],
      ['value=x&tenants=Red', 400, 'tenants'],
      ['value=x&tenants=red,no-such-tenant', 404, 'tenants'],
      ['value=x&bogus=1', 400, 'bogus'],
    ];
    for (const [q, status, field] of cases) {
      const r = await searchIndicators(q);
      expect(r.status, `${q.slice(0, 60)}: ${r.raw}`).toBe(status);
      expect(r.body.error.code, q).toEqual(expect.any(String));
      expect(r.body.error.message, q).toContain(field);
    }
    const hostile = [
      '',
      '%00',
      'A'.repeat(3000),
      '%E2%80%AE',
      "'%3B--",
      '%5B%5D',
      'null',
      '-1',
      '1e3',
      '%20',
      ',',
      'a,,b',
      '..%2F..%2Fetc',
      '%FF',
    ];
    for (const param of ['value', 'type', 'reputation', 'tenants', 'labels', 'limit', 'timeoutMs']) {
      for (const v of hostile) {
        const r = await searchIndicators(`type=ip&${param}=${v}`);
        expect(
          r.status < 500 && (r.status === 200 || typeof r.body.error?.code === 'string'),
          `${param}=${v.slice(0, 40)} → ${r.status} ${r.raw.slice(0, 200)}`,
        ).toBe(true);
      }
    }
  });

  it('the CLI searches with --json and as a table, and prints a user error as one line with exit 2', async () => {
    const j = await d.cli(['search', 'indicators', '--value', ip, '--json']);
    expect(j.code, j.stdout + j.stderr).toBe(0);
    const page = j.json as IndicatorPage;
    expect(byTenant(page.items)).toEqual(['green', 'red']);
    expect(page.next).toBeNull();
    const text = await d.cli([
      'search',
      'indicators',
      '--type',
      'domain',
      '--reputation',
      'malicious',
      '--labels',
      'apac',
    ]);
    expect(text.code, text.stdout + text.stderr).toBe(0);
    expect(text.stdout).toMatch(/TENANT\s+TYPE\s+VALUE\s+REPUTATION/);
    expect(text.stdout).toContain(domains.get('blue')!.bad);
    expect(text.stdout).not.toContain(domains.get('red')!.bad);
    for (const args of [
      [],
      ['--tenants', 'red'],
      ['--type', 'nope'],
      ['--value', 'x', '--tenants', 'red', '--labels', 'emea'],
      ['--value', 'x', '--limit', 'lots'],
    ]) {
      const bad = await d.cli(['search', 'indicators', ...args]);
      expect(bad.code, args.join(' ')).toBe(2);
      expect(bad.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
    const server = await d.cli(['search', 'indicators', '--value', 'x', '--limit', '500']);
    expect(server.code).toBe(2);
    expect(server.stderr).toContain('limit');
  });
});

describe('partial results', () => {
  it('a tenant too slow for the deadline is an error entry; the others still answer in time', async () => {
    const blue = await waitAnswering('blue');
    process.kill(blue.pid!, 'SIGSTOP');
    try {
      const t0 = Date.now();
      const r = await search('limit=200&timeoutMs=1000');
      const ms = Date.now() - t0;
      expect(r.status, r.raw).toBe(200);
      expect(ms).toBeLessThan(5_000);
      expect(r.body.errors).toEqual([{ tenant: 'blue', code: 'ERR_RELAY_TIMEOUT', message: expect.any(String) }]);
      expect(r.body.items.map(key).sort()).toEqual(truth((t) => t !== 'blue'));
      // The slow tenant keeps its place in the cursor: the next page asks it again.
      expect(r.body.next).toEqual(expect.any(String));
      const cmd = await d.api<CommandReply>('POST', '/commands', {
        command: 'incidents.count',
        labels: ['emea', 'apac'],
        timeoutMs: 1000,
      });
      expect(cmd.body.results.map((x) => [x.tenant, x.ok])).toEqual([
        ['blue', false],
        ['green', true],
        ['red', true],
      ]);
      expect(cmd.body.results[0].error?.code).toBe('ERR_RELAY_TIMEOUT');
    } finally {
      process.kill(blue.pid!, 'SIGCONT');
    }
    const again = await search('tenants=blue&limit=200');
    expect(again.body.items.map(key).sort()).toEqual(truth((t) => t === 'blue'));
  });

  it("a killed tenant's process is an error entry while the others' incidents still come back", async () => {
    const green = await waitAnswering('green');
    process.kill(green.pid!, 'SIGKILL');
    // At once: the host restarts it after a backoff, and these searches must meet it down.
    const [r, ind] = await Promise.all([search('limit=200'), searchIndicators('type=domain')]);
    expect(ind.status, ind.raw).toBe(200);
    expect(ind.body.errors.map((e) => e.tenant)).toEqual(['green']);
    expect(ind.body.errors[0].code).toMatch(/^ERR_/);
    expect(new Set(ind.body.items.map((i) => i.tenant))).toEqual(new Set(['blue', 'red']));
    expect(r.status, r.raw).toBe(200);
    expect(r.body.errors.map((e) => e.tenant)).toEqual(['green']);
    expect(r.body.errors[0].code).toMatch(/^ERR_/);
    expect(r.body.items.map(key).sort()).toEqual(truth((t) => t !== 'green'));
    expectMergedOrder(r.body.items);
    await waitAnswering('green', green.pid!);
    const back = await search('labels=emea&limit=200');
    expect(back.body.errors).toEqual([]);
    expect(back.body.items.map(key).sort()).toEqual(truth((t) => t !== 'blue'));
  });

  it("main's data directory holds none of the incidents or indicators it searched and counted", async () => {
    expect(markers.length).toBe(ROUNDS * 3 + 3);
    for (const m of markers.filter((_, i) => i % 5 === 0 || i >= ROUNDS * 3)) {
      expect(await filesContaining(d.mainDir, m), m).toEqual([]);
    }
    // The indicator values travelled through main in search queries, relayed bodies and answers.
    expect(indicatorMarkers.length).toBe(1 + 2 * Object.keys(TENANTS).length);
    for (const m of indicatorMarkers) expect(await filesContaining(d.mainDir, m), m).toEqual([]);
    // The markers are really on disk somewhere: the tenants' own stores hold them.
    expect((await filesContaining(d.agents.get('s1')!.dir, markers[0])).length).toBeGreaterThan(0);
    expect((await filesContaining(d.agents.get('s1')!.dir, indicatorMarkers[1])).length).toBeGreaterThan(0);
  });
});
