/**
 * The bird's-eye view end to end with real processes: main, one host, three tenants with labels
 * (search-fixtures.ts). Search across tenants merges newest first and pages with a cursor that yields every
 * incident exactly once; filters by text, status, tenants and labels; commands run on each chosen tenant;
 * bad input is a 4xx naming the field. Indicator search, partial results (a slow or killed tenant) and what
 * main's data directory holds afterwards are in search-indicators.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Deployment } from '../harness/deployment.js';
import { filesContaining } from '../harness/data-scan.js';
import type { ErrorBody, Incident } from '../harness/api-shapes.js';
import {
  BATCH,
  ROUNDS,
  expectMergedOrder,
  key,
  post as postOf,
  search as searchOf,
  searchAll as searchAllOf,
  seedIncidents,
  truth as truthOf,
  type CommandReply,
  type Page,
} from './search-fixtures.js';

let d: Deployment;
/** Every incident created, by tenant: the truth searches are checked against. */
let created: Map<string, Incident[]>;
/** A unique string in each incident's name: what main must never have written to its disk. */
let markers: string[];

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

const post = <T>(path: string, body: unknown, want?: number) => postOf<T>(d, path, body, want);
const search = (query: string) => searchOf(d, query);
const searchAll = (query: string, limit: number) => searchAllOf(d, query, limit);
const truth = (pred?: (t: string, i: Incident) => boolean) => truthOf(created, pred);

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

    // A limit out of range is refused before asking, in one line saying the range.
    for (const [args, range] of [
      [['search', 'incidents', '--limit', '1000'], '1 to 200'],
      [['search', 'indicators', '--value', '198.51.100.7', '--limit', '0'], '1 to 200'],
      [['search', 'events', '--limit', '501'], '1 to 500'],
      [['events', 'search', '--tenant', 'red', '--limit', '999999999'], '1 to 1000'],
      [['events', 'search', '--tenant', 'red', '--limit', '5000'], '1 to 1000'],
    ] as const) {
      const r = await d.cli([...args]);
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(`--limit must be a whole number from ${range}`);
    }

    const both = await d.cli(['search', 'incidents', '--tenants', 'red', '--labels', 'emea']);
    expect(both.code).toBe(2);
    expect(both.stderr.trim().split('\n')).toHaveLength(1);
    expect(both.stderr).toContain('--tenants or --labels');
  });

  it("a query parameter left empty is absent, on main's routes and on a tenant's through the relay", async () => {
    const blank = await search('q=&tenants=red,green&limit=&cursor=');
    expect(blank.status, blank.raw).toBe(200);
    expect(blank.body.items.length).toBeGreaterThan(0);
    expect(blank.body.items.every((i) => i.tenant === 'red' || i.tenant === 'green')).toBe(true);
    const events = await d.api('GET', '/search/events?domain=&q=&from=&to=&limit=&labels=');
    expect(events.status, events.raw).toBe(200);
    const relayed = await d.api<{ items: unknown[] }>('GET', '/tenants/red/api/events?domain=&q=&from=&to=&limit=');
    expect(relayed.status, relayed.raw).toBe(200);
    expect(relayed.body.items).toEqual(expect.any(Array));
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
      ['limit=1000', 400, 'limit: must be 1 to 200'],
      ['limit=0200', 400, 'limit: must be 1 to 200'],
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
    // A tenant's own event search says its range too, whatever the number of digits.
    for (const limit of ['0', '1001', '99999', '999999999']) {
      const r = await d.api<ErrorBody>('GET', `/tenants/red/api/events?limit=${limit}`);
      expect(r.status, r.raw).toBe(400);
      expect(r.body.error.message).toBe('limit: must be 1 to 1000');
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

describe('what main keeps', () => {
  it("main's data directory holds none of the incidents it searched, counted and ran commands over", async () => {
    expect(markers.length).toBe(ROUNDS * 3 + 3);
    for (const m of markers.filter((_, i) => i % 5 === 0 || i >= ROUNDS * 3)) {
      expect(await filesContaining(d.mainDir, m), m).toEqual([]);
    }
    // The markers are really on disk somewhere: the tenants' own stores hold them.
    expect((await filesContaining(d.agents.get('s1')!.dir, markers[0])).length).toBeGreaterThan(0);
  });
});
