/**
 * The bird's-eye view end to end with real processes: main, one host, three tenants with labels.
 * Search across tenants merges newest first and pages with a cursor that yields every incident exactly
 * once; filters by text, status, tenants and labels; a stopped (slow) or killed tenant becomes an error
 * entry while the others still answer; commands run on each chosen tenant; indicator search finds a
 * value in exactly the tenants that know it, newest lastSeen first, and a user limited to some tenants
 * sees only theirs (naming another is a 404 and an audit line); bad input is a 4xx naming the field;
 * and main's data directory holds none of the incidents or indicators afterwards.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Deployment, type ApiReply, type TenantRow } from '../harness/deployment.js';
import { until } from '../harness/processes.js';
import { filesContaining } from '../harness/data-scan.js';

let d: Deployment;

interface Incident {
  id: string;
  name: string;
  severity: number;
  details: string;
  status: string;
  created: string;
}
interface Item extends Incident {
  tenant: string;
}
interface TenantErr {
  tenant: string;
  code: string;
  message: string;
}
interface Page {
  items: Item[];
  errors: TenantErr[];
  next: string | null;
}
interface CommandReply {
  results: {
    tenant: string;
    ok: boolean;
    result?: Record<string, unknown>;
    error?: { code: string; message: string };
  }[];
}
interface ErrorBody {
  error: { code: string; message: string };
}
interface Indicator {
  value: string;
  type: string;
  reputation: string;
  firstSeen: string;
  lastSeen: string;
  incidents: string[];
}
interface IndicatorItem extends Indicator {
  tenant: string;
}
interface IndicatorPage {
  items: IndicatorItem[];
  errors: TenantErr[];
  next: null;
}
interface AuditRow {
  actor: string;
  action: string;
  target?: string;
  outcome: string;
}

const TENANTS: Record<string, string[]> = { red: ['emea', 'gold'], green: ['emea'], blue: ['apac'] };
const ROUNDS = 12;
const BATCH = 30;
/** Every incident created, by tenant: the truth searches are checked against. */
const created = new Map<string, Incident[]>();
/** Strings that exist only inside incidents (names and details): main's data dir must never hold one. */
const markers: string[] = [];
/** Indicator values created by the tests below: main's data dir must never hold one either. */
const indicatorMarkers: string[] = [];

async function waitAnswering(name: string, notPid?: number): Promise<TenantRow> {
  const t = await d.tenantRunning(name, { notPid });
  await until(
    `${name} answering`,
    async () => (await d.api('GET', `/tenants/${name}/api/incidents?limit=1`)).status === 200,
    60_000,
    200,
  );
  return t;
}

async function post<T>(path: string, body: unknown, want = 201): Promise<T> {
  const r = await d.api<T>('POST', path, body);
  if (r.status !== want) throw new Error(`POST ${path}: ${r.status} ${r.raw}`);
  return r.body;
}

const search = (query: string) => d.api<Page & ErrorBody>('GET', `/search/incidents?${query}`);
const searchIndicators = (query: string, key?: string) =>
  d.api<IndicatorPage & ErrorBody>('GET', `/search/indicators?${query}`, undefined, key ? { key } : {});

async function searchAll(query: string, limit: number): Promise<{ items: Item[]; pages: number }> {
  const items: Item[] = [];
  let cursor: string | null = null;
  for (let pages = 1; pages < 500; pages++) {
    const r: ApiReply<Page> = await d.api<Page>(
      'GET',
      `/search/incidents?limit=${limit}${query ? `&${query}` : ''}${cursor ? `&cursor=${cursor}` : ''}`,
    );
    expect(r.status, r.raw).toBe(200);
    expect(r.body.errors).toEqual([]);
    expect(r.body.items.length).toBeLessThanOrEqual(limit);
    items.push(...r.body.items);
    cursor = r.body.next;
    if (!cursor) return { items, pages };
  }
  throw new Error('paging did not end');
}

/** Newest first; equal times by tenant name; within one tenant, its own order (higher id first). */
function expectMergedOrder(items: Item[]): void {
  for (let i = 1; i < items.length; i++) {
    const a = items[i - 1],
      b = items[i];
    const ok =
      a.created > b.created ||
      (a.created === b.created && (a.tenant < b.tenant || (a.tenant === b.tenant && Number(a.id) > Number(b.id))));
    expect(
      ok,
      `item ${i - 1} (${a.tenant}/${a.id} ${a.created}) before item ${i} (${b.tenant}/${b.id} ${b.created})`,
    ).toBe(true);
  }
}

const key = (i: { tenant: string; id: string }) => `${i.tenant}/${i.id}`;
const truth = (pred: (t: string, i: Incident) => boolean = () => true) =>
  [...created].flatMap(([t, list]) => list.filter((i) => pred(t, i)).map((i) => key({ tenant: t, id: i.id }))).sort();

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 's1');
  await d.startAgent('s1');
  for (const [name, labels] of Object.entries(TENANTS)) {
    await d.createTenant(name, 's1', { labels });
    created.set(name, []);
  }
  for (const name of Object.keys(TENANTS)) await waitAnswering(name);
  // One at a time, round-robin, so `created` times interleave across tenants...
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of Object.keys(TENANTS)) {
      const marker = `srch-${t}-${round}-${randomUUID()}`;
      const phish = round % 4 === 0 && t !== 'green';
      const inc = await post<Incident>(`/tenants/${t}/api/incidents`, {
        name: phish ? `Phishing wave ${round}` : `Alert ${round}`,
        type: 'generic',
        severity: round % 5,
        details: marker,
      });
      created.get(t)!.push(inc);
      markers.push(marker);
    }
  }
  // ...then a batch per tenant: many equal `created` times, the tie-breaks' case.
  for (const t of Object.keys(TENANTS)) {
    const marker = `srch-batch-${t}-${randomUUID()}`;
    const items = Array.from({ length: BATCH }, (_, i) => ({
      name: `Batch ${t} ${i}`,
      type: 'bulk',
      severity: 1,
      details: `${marker} #${i}`,
    }));
    const r = await post<{ count: number; ids: string[] }>(`/tenants/${t}/api/incidents`, { items });
    const list = await d.api<{ items: Incident[] }>('GET', `/tenants/${t}/api/incidents?limit=${BATCH}`);
    expect(list.body.items.map((i) => i.id).sort()).toEqual([...r.ids].sort());
    created.get(t)!.push(...list.body.items);
    markers.push(marker);
  }
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('search across tenants', () => {
  it('merges every tenant newest first in one page, each item tagged with its tenant', async () => {
    const r = await search('limit=200');
    expect(r.status, r.raw).toBe(200);
    expect(r.body.errors).toEqual([]);
    expect(r.body.next).toBeNull();
    expect(r.body.items.map(key).sort()).toEqual(truth());
    expectMergedOrder(r.body.items);
    // The last batch (blue's) is newest, highest id first; the round-robin singles come out interleaved.
    expect(r.body.items.slice(0, BATCH).map((i) => i.tenant)).toEqual(Array(BATCH).fill('blue'));
    const singles = r.body.items
      .filter((i) => /^(Alert|Phishing)/.test(i.name))
      .slice(0, 6)
      .map((i) => i.tenant);
    expect(singles).toEqual(['blue', 'green', 'red', 'blue', 'green', 'red']);
    const sample = r.body.items.find((i) => i.tenant === 'red' && i.name === 'Alert 3')!;
    expect(sample).toMatchObject({ tenant: 'red', status: 'open', severity: 3 });
    expect(sample.details).toMatch(/^srch-red-3-/);
  });

  it('pages with the cursor: every item exactly once, in the same order as one big page', async () => {
    const whole = (await search('limit=200')).body.items.map(key);
    const paged = await searchAll('', 7);
    expect(paged.pages).toBe(Math.ceil(whole.length / 7));
    expect(paged.items.map(key)).toEqual(whole);
    expect(new Set(paged.items.map(key)).size).toBe(whole.length);
    // Odd page sizes cut through the batches' ties too.
    expect((await searchAll('', 13)).items.map(key)).toEqual(whole);
  });

  it('filters by text, status and severity in every tenant, and by tenants or labels', async () => {
    const phish = await searchAll('q=phishing', 3);
    expect(phish.items.map(key).sort()).toEqual(truth((_t, i) => i.name.startsWith('Phishing')));
    expect(new Set(phish.items.map((i) => i.tenant))).toEqual(new Set(['red', 'blue']));
    expectMergedOrder(phish.items);

    const sev4 = await searchAll('severity=4&tenants=green,blue', 50);
    expect(sev4.items.map(key).sort()).toEqual(truth((t, i) => i.severity === 4 && t !== 'red'));

    const emea = await searchAll('labels=emea', 20);
    expect(emea.items.map(key).sort()).toEqual(truth((t) => t === 'red' || t === 'green'));
    const gold = await searchAll('labels=gold,nothing-has-this', 20);
    expect(gold.items.map(key).sort()).toEqual(truth((t) => t === 'red'));
    expect(await searchAll('labels=nothing-has-this', 20)).toEqual({ items: [], pages: 1 });

    const target = created.get('green')![2];
    await post(`/tenants/green/api/incidents/${target.id}/close`, { reason: 'done' }, 200);
    const closed = await searchAll('status=closed', 10);
    expect(closed.items.map(key)).toEqual([`green/${target.id}`]);
    expect(closed.items[0].status).toBe('closed');
  });

  it('the CLI searches, pages with the printed cursor, and prints a user error as one line with exit 2', async () => {
    const first = await d.cli(['search', 'incidents', '--labels', 'emea', '--q', 'alert 1', '--limit', '2', '--json']);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const p1 = first.json as Page;
    // "alert 1" matches Alert 1, Alert 10, Alert 11 in red and green: 6 items.
    expect(p1.items).toHaveLength(2);
    expect(p1.next).toEqual(expect.any(String));
    const seen = [...p1.items];
    let next = p1.next;
    while (next) {
      const r = await d.cli([
        'search',
        'incidents',
        '--labels',
        'emea',
        '--q',
        'alert 1',
        '--limit',
        '2',
        '--cursor',
        next,
        '--json',
      ]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      seen.push(...(r.json as Page).items);
      next = (r.json as Page).next;
    }
    expect(seen.map(key).sort()).toEqual(truth((t, i) => t !== 'blue' && /^Alert 1/.test(i.name)));
    const text = await d.cli(['search', 'incidents', '--tenants', 'blue', '--limit', '1']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/TENANT\s+ID/);
    expect(text.stdout).toMatch(/more: --cursor \S+/);

    const both = await d.cli(['search', 'incidents', '--tenants', 'red', '--labels', 'emea']);
    expect(both.code).toBe(2);
    expect(both.stderr.trim().split('\n')).toHaveLength(1);
    expect(both.stderr).toContain('--tenants or --labels');
  });

  it('bad input is a 4xx JSON error naming the field', async () => {
    const cases: [string, number, string][] = [
      ['cursor=garbage', 400, 'cursor'],
      [`cursor=${Buffer.from('{"v":1,"h":"x","t":[["red","../1"]]}').toString('base64url')}`, 400, 'cursor'],
      ['tenants=red&labels=emea', 400, 'tenants'],
      ['tenants=red,no-such-tenant', 404, 'tenants'],
      ['tenants=Red', 400, 'tenants'],
      ['limit=0', 400, 'limit'],
      ['limit=201', 400, 'limit'],
      ['limit=abc', 400, 'limit'],
      ['timeoutMs=5', 400, 'timeoutMs'],
      ['severity=9', 400, 'severity'],
      ['status=maybe', 400, 'status'],
      ['bogus=1', 400, 'bogus'],
      ['q=a&q=b', 400, 'q'],
    ];
    for (const [q, status, field] of cases) {
      const r = await search(q);
      expect(r.status, `${q}: ${r.raw}`).toBe(status);
      expect(r.body.error.code, q).toEqual(expect.any(String));
      expect(r.body.error.message, q).toContain(field);
    }
    // Hostile values in every parameter: a 200 or a 4xx JSON error, never a 5xx.
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const hostile = [
      '',
      '%00',
      'A'.repeat(300),
      '%E2%80%AE',
      "'%3B--",
      '%5B%5D',
      'null',
      '-1',
      '1e3',
      '%20',
      ',',
      'a,,b',
      b64(null),
      b64([]),
      b64({ v: 1, h: 'x', t: [] }),
      b64({ v: 2 }),
      b64({
        v: 1,
        h: 'x',
        t: [
          ['red', '1'],
          ['red', '2'],
        ],
      }),
      b64('x'.repeat(5000)),
    ];
    for (const param of ['q', 'tenants', 'labels', 'status', 'severity', 'type', 'limit', 'cursor', 'timeoutMs']) {
      for (const v of hostile) {
        const r = await search(`${param}=${v}`);
        expect(
          r.status < 500 && (r.status === 200 || typeof r.body.error?.code === 'string'),
          `${param}=${v.slice(0, 40)} → ${r.status} ${r.raw.slice(0, 200)}`,
        ).toBe(true);
      }
    }
    // A cursor is bound to its query: reused with another filter it is refused, not silently skipping.
    const p = await search('limit=2&labels=emea');
    const reused = await search(`limit=2&labels=apac&cursor=${p.body.next}`);
    expect(reused.status).toBe(400);
    expect(reused.body.error).toMatchObject({ code: 'ERR_BAD_CURSOR' });
    expect(reused.body.error.message).toContain('cursor');
  });
});

describe('commands across tenants', () => {
  it('incidents.count, incidents.stats and indicators.lookup answer per tenant', async () => {
    const count = await d.api<CommandReply>('POST', '/commands', {
      command: 'incidents.count',
      args: { q: 'phishing' },
      labels: ['emea', 'apac'],
    });
    expect(count.status, count.raw).toBe(200);
    expect(count.body.results).toEqual(
      ['blue', 'green', 'red'].map((t) => ({
        tenant: t,
        ok: true,
        result: { count: created.get(t)!.filter((i) => i.name.startsWith('Phishing')).length },
      })),
    );

    const stats = await d.api<CommandReply>('POST', '/commands', { command: 'incidents.stats', tenants: ['green'] });
    expect(stats.body.results).toHaveLength(1);
    const g = created.get('green')!;
    expect(stats.body.results[0]).toMatchObject({
      tenant: 'green',
      ok: true,
      result: {
        total: g.length,
        byStatus: { open: g.length - 1, closed: 1 },
        bySeverity: { 4: g.filter((i) => i.severity === 4).length },
      },
    });

    await post('/tenants/red/api/indicators', { type: 'ip', value: '203.0.113.7', reputation: 'malicious' });
    const look = await d.api<CommandReply>('POST', '/commands', {
      command: 'indicators.lookup',
      args: { type: 'ip', value: '203.0.113.7' },
      tenants: ['red', 'blue'],
    });
    expect(look.body.results.map((r) => [r.tenant, r.ok, r.result?.found])).toEqual([
      ['blue', true, false],
      ['red', true, true],
    ]);
    expect(look.body.results[1].result).toMatchObject({ indicator: { value: '203.0.113.7', reputation: 'malicious' } });

    const cli = await d.cli([
      'commands',
      'run',
      'incidents.count',
      '--args',
      '{"status":"closed"}',
      '--tenants',
      'red,green',
      '--json',
    ]);
    expect(cli.code, cli.stdout + cli.stderr).toBe(0);
    expect((cli.json as CommandReply).results).toEqual([
      { tenant: 'green', ok: true, result: { count: 1 } },
      { tenant: 'red', ok: true, result: { count: 0 } },
    ]);
    const cliBad = await d.cli(['commands', 'run', 'incidents.count', '--args', '{nope']);
    expect(cliBad.code).toBe(2);
    expect(cliBad.stderr).toContain('--tenants or --labels');

    const audit = await d.api<{ action: string; target: string; detail: { tenants: string[] } }[]>(
      'GET',
      '/audit?action=commands.fanout&limit=10',
    );
    expect(audit.body.map((a) => a.target)).toEqual(
      expect.arrayContaining(['incidents.count', 'incidents.stats', 'indicators.lookup']),
    );
  });

  it('refuses bad commands before asking any tenant, naming the field', async () => {
    const cases: [unknown, number, string][] = [
      [{ command: 'incidents.delete', tenants: ['red'] }, 400, 'command'],
      [{ command: 'incidents.count', args: { status: 'gone' }, tenants: ['red'] }, 400, 'args.status'],
      [{ command: 'indicators.lookup', args: { type: 'ip' }, tenants: ['red'] }, 400, 'args.value'],
      [{ command: 'incidents.count', args: { extra: 1 }, tenants: ['red'] }, 400, 'args.extra'],
      [{ command: 'incidents.count' }, 400, 'tenants'],
      [{ command: 'incidents.count', tenants: ['red'], labels: ['emea'] }, 400, 'tenants'],
      [{ command: 'incidents.count', tenants: ['no-such'] }, 404, 'tenants'],
      [{ command: 'incidents.count', tenants: [] }, 400, 'tenants'],
      [{ command: 'incidents.count', tenants: ['red'], timeoutMs: 1 }, 400, 'timeoutMs'],
    ];
    for (const [body, status, field] of cases) {
      const r = await d.api<ErrorBody>('POST', '/commands', body);
      expect(r.status, `${JSON.stringify(body)}: ${r.raw}`).toBe(status);
      expect(r.body.error.message, JSON.stringify(body)).toContain(field);
    }
  });
});

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
