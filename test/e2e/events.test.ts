/**
 * Events, domains, log sources and custom properties end to end with real processes (main, host h1, tenants ea
 * and eb): configured through the CLI and REST via main's relay, listed with `id` and `name`, searched in one
 * tenant and across tenants (partial when a tenant is down); bad input exits 2 or answers 4xx and changes nothing;
 * a customer user reads events but does not configure domains, and never reaches another tenant's events.
 * Events themselves enter through the engine's syslog transport (issue 19, E1); until that is merged, the pipeline's
 * own tests (test/integration/event-pipeline.test.ts) ingest through it in-process.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Deployment } from '../harness/deployment.js';
import type { CliResult } from '../harness/processes.js';

let d: Deployment;
const cli = (...args: string[]): Promise<CliResult> => d.cli([...args, '--json']);
type Items<T> = { items: T[] };
type Domain = { id: string; name: string; mappings: { id: string }[] };

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'h1');
  await d.startAgent('h1');
  await d.createTenant('ea', 'h1', { labels: ['events'] });
  await d.createTenant('eb', 'h1', { labels: ['events'] });
}, 180_000);
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('events configuration through the CLI', () => {
  it('creates domains, properties, groups and mappings, and lists them with id and name', async () => {
    const created = await cli('domains', 'create', 'Branch Office', '--tenant', 'ea', '--description', 'branch');
    expect(created.code, created.stdout + created.stderr).toBe(0);
    expect(created.json).toMatchObject({ name: 'Branch Office' });
    expect((await cli('domains', 'create', 'hq', '--tenant', 'ea')).code).toBe(0);
    const prop = await cli('properties', 'create', 'customer', '--tenant', 'ea', '--regex', 'cust=(\\w+)');
    expect(prop.code, prop.stdout).toBe(0);
    const grouped = await cli('log-sources', 'group', 'fw2@eng-a', '--tenant', 'ea', '--group', 'branch');
    expect(grouped.code, grouped.stdout).toBe(0);
    expect(grouped.json).toMatchObject({ name: 'fw2@eng-a', groups: ['branch'] });
    const maps: string[][] = [
      ['Branch Office', '--property', 'customer=acme'],
      ['Branch Office', '--log-source-group', 'branch'],
      ['hq', '--log-source', 'fw1@eng-a'],
      ['hq', '--event-collector', 'eng-a'],
      ['hq', '--vlan', '12'],
      ['hq', '--flow-source', 'probe1'],
    ];
    for (const [domain, flag, value] of maps) {
      const r = await cli('domains', 'map', domain, '--tenant', 'ea', flag, value);
      expect(r.code, `${flag} ${value}: ${r.stdout}`).toBe(0);
    }
    const list = (await cli('domains', 'list', '--tenant', 'ea')).json as Items<Domain>;
    expect(list.items.map((x) => [x.id, x.name])).toEqual([
      ['0', 'Default Domain'],
      ['1', 'Branch Office'],
      ['2', 'hq'],
    ]);
    expect(list.items[2].mappings.map((m) => m.id).sort()).toEqual([
      'event-collector~eng-a',
      'flow-source~probe1',
      'log-source~fw1@eng-a',
      'vlan~12',
    ]);
    const sources = (await cli('log-sources', 'list', '--tenant', 'ea')).json as Items<{ id: string; name: string }>;
    expect(sources.items).toEqual([expect.objectContaining({ id: '1', name: 'fw2@eng-a' })]);
    // The other tenant has none of it.
    const other = (await cli('domains', 'list', '--tenant', 'eb')).json as Items<Domain>;
    expect(other.items.map((x) => x.name)).toEqual(['Default Domain']);
  });

  it('changes the CEP fall-through and the retention, and shows them', async () => {
    expect((await cli('domains', 'settings', '--tenant', 'ea')).json).toMatchObject({ cepFallthrough: false });
    const on = await cli('domains', 'settings', '--tenant', 'ea', '--cep-fallthrough', 'on');
    expect(on.json).toMatchObject({ cepFallthrough: true });
    // The examples a refused retention suggests are themselves taken.
    for (const [ex, days] of [
      ['24h', 1],
      ['90d', 90],
    ] as const)
      expect((await cli('events', 'settings', '--tenant', 'ea', '--retention', ex)).json).toMatchObject({
        retentionMs: days * 86_400_000,
      });
    const ret = await cli('events', 'settings', '--tenant', 'ea', '--retention', '7d');
    expect(ret.json).toMatchObject({
      retention: '7d',
      retentionMs: 7 * 86_400_000,
      cepFallthrough: true,
      fsync: true,
    });
    // fsync before each acknowledgement: on by default, off and on again, the retention left as it was.
    const unsynced = await cli('events', 'settings', '--tenant', 'ea', '--fsync', 'off');
    expect(unsynced.json).toMatchObject({ fsync: false, retention: '7d' });
    expect((await cli('events', 'settings', '--tenant', 'ea')).json).toMatchObject({ fsync: false });
    expect((await cli('events', 'settings', '--tenant', 'ea', '--fsync', 'on')).json).toMatchObject({ fsync: true });
  });

  it('refuses bad input with exit 2 and one line, and changes nothing', async () => {
    const bad: string[][] = [
      ['domains', 'map', 'hq', '--tenant', 'ea'],
      ['domains', 'map', 'hq', '--tenant', 'ea', '--vlan', '1', '--log-source', 'x@eng-a'],
      ['domains', 'map', 'hq', '--tenant', 'ea', '--property', 'novalue'],
      ['domains', 'map', 'hq', '--tenant', 'ea', '--vlan', '9999'],
      ['domains', 'create', ' spaced', '--tenant', 'ea'],
      ['domains', 'settings', '--tenant', 'ea', '--cep-fallthrough', 'maybe'],
      ['properties', 'create', 'backref', '--tenant', 'ea', '--regex', '(a)\\1'],
      ['properties', 'create', 'broken', '--tenant', 'ea', '--regex', '(unclosed'],
      ['events', 'search', '--tenant', 'ea', '--from', 'yesterday'],
      ['events', 'settings', '--tenant', 'ea', '--retention', '5m'],
      ['events', 'settings', '--tenant', 'ea', '--fsync', 'always'],
      ['log-sources', 'group', 'no-engine', '--tenant', 'ea', '--group', 'g'],
    ];
    for (const args of bad) {
      const r = await cli(...args);
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(2);
      expect((r.json as { error: { code: string } }).error.code).toMatch(/^ERR_/);
    }
    // Without --json, one line on stderr; its examples are within the range (1h to 3650d), which is said too.
    const abc = await d.cli(['events', 'settings', '--tenant', 'ea', '--retention', 'abc']);
    expect(abc.code).toBe(2);
    expect(abc.stderr).toContain('--retention: "abc" is not a duration; use e.g. 24h, 7d or 90d');
    const short = await d.cli(['events', 'settings', '--tenant', 'ea', '--retention', '30m']);
    expect(short.code).toBe(2);
    expect(short.stderr).toContain('--retention: from 1h to 3650d');
    const props = (await cli('properties', 'list', '--tenant', 'ea')).json as Items<{ name: string }>;
    expect(props.items.map((p) => p.name)).toEqual(['customer']);
    const list = (await cli('domains', 'list', '--tenant', 'ea')).json as Items<Domain>;
    expect(list.items.find((x) => x.name === 'hq')?.mappings).toHaveLength(4);
    expect((await cli('events', 'settings', '--tenant', 'ea')).json).toMatchObject({ retention: '7d' });
  });

  it('removes a mapping, a domain with its mappings, and a property once unmapped', async () => {
    expect((await cli('domains', 'unmap', 'hq', '--tenant', 'ea', '--vlan', '12')).code).toBe(0);
    const inUse = await cli('properties', 'remove', 'customer', '--tenant', 'ea');
    expect([inUse.code, (inUse.json as { error: { code: string } }).error.code]).toEqual([2, 'ERR_PROPERTY_IN_USE']);
    const removed = await cli('domains', 'remove', 'Branch Office', '--tenant', 'ea');
    expect(removed.json).toMatchObject({ name: 'Branch Office', mappingsRemoved: 2 });
    expect((await cli('properties', 'remove', 'customer', '--tenant', 'ea')).code).toBe(0);
    const list = (await cli('domains', 'list', '--tenant', 'ea')).json as Items<Domain>;
    expect(list.items.map((x) => x.name)).toEqual(['Default Domain', 'hq']);
  });
});

describe('event search', () => {
  it('answers one tenant and many, through the CLI and REST, in the shapes the design gives', async () => {
    const one = await cli('events', 'search', '--tenant', 'ea', '--domain', 'hq', '--q', 'login', '--limit', '5');
    expect(one.code, one.stdout).toBe(0);
    expect(one.json).toEqual({ items: [], next: null });
    const rest = await d.api<Items<unknown>>('GET', '/tenants/ea/api/events?domain=hq&q=x&limit=10');
    expect([rest.status, rest.body.items]).toEqual([200, []]);
    const missing = await d.api<{ error: { code: string } }>('GET', '/tenants/ea/api/events?domain=nowhere');
    expect([missing.status, missing.body.error.code]).toEqual([404, 'ERR_DOMAIN_NOT_FOUND']);
    const many = await cli('search', 'events', '--labels', 'events', '--domain', 'hq');
    expect(many.code, many.stdout).toBe(0);
    expect(many.json).toEqual({ items: [], errors: [], next: null });
    // A window that ends before it starts is refused once, by main, not by each tenant under a 200.
    const window = 'from=2026-12-08T00:00:00Z&to=2026-12-01T00:00:00Z';
    const backwards = await d.api<{ error: { code: string; message: string } }>('GET', `/search/events?${window}`);
    expect([backwards.status, backwards.body.error.message]).toEqual([400, 'from: after to; give from ≤ to']);
  });

  it('is partial when a tenant is down: the rest still answer, the down one is named', async () => {
    expect((await d.api('POST', '/tenants/eb/stop', {})).status).toBe(200);
    try {
      const r = await cli('search', 'events', '--tenants', 'ea,eb');
      expect(r.code, r.stdout).toBe(0);
      const page = r.json as { items: unknown[]; errors: { tenant: string; code: string }[] };
      expect(page.errors.map((e) => e.tenant)).toEqual(['eb']);
    } finally {
      expect((await d.api('POST', '/tenants/eb/start', {})).status).toBe(200);
    }
  });

  it('lets a customer user read its own events but not configure domains, nor reach another tenant', async () => {
    const u = await d.createUser({ name: 'eb-reader', tenant: 'eb', roles: ['read-only'] });
    const key = await d.createKey(u.id);
    const as = (method: string, path: string, body?: unknown) => d.api(method, path, body, { key });
    await d.tenantRunning('eb');
    let own = await as('GET', '/tenants/eb/api/events');
    for (let i = 0; i < 50 && own.status === 503; i++) own = await as('GET', '/tenants/eb/api/events');
    expect(own.status).toBe(200);
    expect((await as('POST', '/tenants/eb/api/domains', { name: 'mine' })).status).toBe(403);
    expect((await as('GET', '/tenants/ea/api/events')).status).toBe(404);
    expect((await as('POST', '/tenants/ea/api/domains', { name: 'theirs' })).status).toBe(404);
    expect((await as('GET', '/search/events?tenants=ea')).status).toBe(404); // main's search reaches eb only
    // A tenant key main cannot check may only use the relay (where the tenant refuses a made-up one).
    const forged = 'ptk_eb~abcdef.xxxxxxxxxxxxxxxxxxxxxxxx';
    expect((await d.api('GET', '/search/events', undefined, { key: forged })).status).toBe(403);
    const mine = await d.api<{ items: { tenant: string }[] }>('GET', '/search/events', undefined, { key });
    expect(mine.status).toBe(200);
    expect(mine.body.items.every((e) => e.tenant === 'eb')).toBe(true);
    const ea = (await cli('domains', 'list', '--tenant', 'ea')).json as Items<Domain>;
    expect(ea.items.map((x) => x.name)).toEqual(['Default Domain', 'hq']);
  });
});
