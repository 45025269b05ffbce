/**
 * Integration commands across tenants and fetching incidents, with real processes (main, hosts fx-a and
 * fx-b, tenants fa and fb) and one fake HTTP service per tenant that records the credentials it saw.
 * Across tenants: one `commands run integration:web.get` reaches each tenant's own fake with that tenant's
 * own bearer token; a write command is refused by every tenant and reaches no fake; a tenant without the
 * instance answers its own error while the others answer; a caller limited to one tenant cannot fan out
 * into another. Fetching: items become incidents once; neither a killed-and-restarted tenant nor a moved one
 * duplicates them; new items are added later; a source answering garbage leaves a shown error and creates
 * nothing; fetch settings are checked naming the field, and fetchArgs with a header or query key named like a
 * secret are refused (auth belongs in the connection); show and the audit line hold header names, not values.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { runCli, until, type CliResult } from '../harness/processes.js';
import type { ErrorBody } from '../harness/api-shapes.js';

interface Seen {
  method: string;
  path: string;
  authorization?: string;
}
/** A tenant's REST service: `/whoami` names it, `/alerts` answers `alerts` (or `garbage` when set). */
class FakeSource {
  readonly seen: Seen[] = [];
  alerts: unknown[] = [];
  garbage: string | undefined;
  private server!: Server;
  url = '';

  constructor(readonly name: string) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.seen.push({ method: req.method ?? '', path: req.url ?? '', authorization: req.headers.authorization });
      if (req.url === '/alerts' && this.garbage !== undefined) {
        res.setHeader('content-type', 'text/html');
        return void res.end(this.garbage);
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(req.url === '/alerts' ? { items: this.alerts } : { service: this.name }));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => (this.server ? this.server.close(r) : r(undefined)));
  }
}

interface CommandReply {
  results: { tenant: string; ok: boolean; result?: { result: { body: unknown } }; error?: { code: string } }[];
}
interface Incident {
  id: string;
  name: string;
  severity: number;
  labels?: Record<string, string>;
}
interface FetchState {
  outcome: string;
  created: number;
  pending: number;
  error?: { code: string; message: string };
}

let d: Deployment;
const sources = { fa: new FakeSource('source-of-fa'), fb: new FakeSource('source-of-fb') };
const tokens = { fa: `tok-fa-${randomBytes(12).toString('hex')}`, fb: `tok-fb-${randomBytes(12).toString('hex')}` };
const cli = (args: string[], stdin?: string): Promise<CliResult> => runCli(args, d.env, 60_000, stdin);
const ok = async (args: string[], stdin?: string): Promise<CliResult> => {
  const r = await cli(args, stdin);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
  return r;
};

/** The incidents `alerts` fetched into fa, by source id; fails on any source id there twice. */
async function fetched(): Promise<Map<string, Incident>> {
  const r = await d.api<{ items: Incident[] }>('GET', '/tenants/fa/api/incidents?limit=200');
  expect(r.status, r.raw).toBe(200);
  const mine = r.body.items.filter((i) => i.labels?.source === 'integration:alerts');
  const byId = new Map(mine.map((i) => [i.labels!.sourceId, i]));
  expect(byId.size, `duplicated: ${mine.map((i) => i.labels!.sourceId).join(',')}`).toBe(mine.length);
  return byId;
}
const fetchNow = async () =>
  (await ok(['integrations', 'fetch', 'alerts', '--tenant', 'fa', '--json'])).json as FetchState;
const alert = (id: string, severity: unknown = 'high') => ({
  id,
  name: `alert ${id}`,
  severity,
  details: `seen ${id}`,
});

beforeAll(async () => {
  await Promise.all(Object.values(sources).map((s) => s.start()));
  d = await Deployment.create();
  // The fakes are on loopback, which a host lets its tenants reach only by name (integration-targets.test.ts).
  const allow = Object.values(sources).map((s) => new URL(s.url).host);
  for (const h of ['fx-a', 'fx-b']) {
    await d.install('host', h);
    d.configure(h, { integrationLoopbackAllow: allow });
    await d.startAgent(h);
  }
  for (const t of ['fa', 'fb'] as const) {
    await d.createTenant(t, 'fx-a', { labels: ['fx'] });
    await ok(
      [
        ...['connections', 'create', 'svc', '--tenant', t, '--type', 'http', '--set', `baseUrl=${sources[t].url}`],
        ...['--set', 'authType=bearer', '--secret-stdin'],
      ],
      `${tokens[t]}\n`,
    );
    await ok(['integrations', 'create', 'web', '--tenant', t, '--integration', 'http', '--connection', 'svc']);
  }
}, 300_000);
afterAll(async () => {
  await d?.stop();
  await Promise.all(Object.values(sources).map((s) => s.close()));
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('integration commands across tenants', () => {
  it("one fan-out reaches each tenant's own service with that tenant's own credentials", async () => {
    const r = await ok([
      ...['commands', 'run', 'integration:web.get', '--labels', 'fx', '--args', '{"path":"/whoami"}', '--json'],
    ]);
    const results = (r.json as CommandReply).results;
    expect(results.map((x) => [x.tenant, x.ok, x.result?.result.body])).toEqual([
      ['fa', true, { service: 'source-of-fa' }],
      ['fb', true, { service: 'source-of-fb' }],
    ]);
    for (const t of ['fa', 'fb'] as const)
      expect(sources[t].seen.filter((s) => s.path === '/whoami')).toEqual([
        { method: 'GET', path: '/whoami', authorization: `Bearer ${tokens[t]}` },
      ]);
    const audit = await d.api<{ action: string; target: string; detail: { tenants: string[] } }[]>(
      'GET',
      '/audit?action=commands.fanout&limit=5',
    );
    expect(audit.body[0]).toMatchObject({ target: 'integration:web.get', detail: { tenants: ['fa', 'fb'] } });
    expect(audit.raw).not.toContain('source-of-fa');
    const tenantAudit = await d.api<{ actor: string; action: string; detail: Record<string, unknown> }[]>(
      'GET',
      '/tenants/fb/api/audit?action=integration.run&limit=5',
    );
    expect(tenantAudit.body[0]).toMatchObject({ detail: { command: 'get', fanout: true } });
    expect(tenantAudit.body[0].actor).toMatch(/ \(via main\)$/);
  });

  it('a write command is refused by every tenant and reaches no service', async () => {
    const before = sources.fa.seen.length + sources.fb.seen.length;
    const args = JSON.stringify({ method: 'POST', path: '/tickets', body: { x: 1 } });
    const r = await cli(['commands', 'run', 'integration:web.request', '--tenants', 'fa,fb', '--args', args, '--json']);
    expect(r.code).toBe(1);
    const results = (r.json as CommandReply).results;
    expect(results.map((x) => [x.tenant, x.ok, x.error?.code])).toEqual([
      ['fa', false, 'ERR_INTEGRATION_WRITE_IN_FANOUT'],
      ['fb', false, 'ERR_INTEGRATION_WRITE_IN_FANOUT'],
    ]);
    expect(sources.fa.seen.length + sources.fb.seen.length).toBe(before);
    // The marker is main's to set: a caller cannot send its own.
    const own = await d.api<ErrorBody>('POST', '/commands', {
      command: 'integration:web.request',
      args: { method: 'POST', path: '/x' },
      tenants: ['fa'],
      fanout: false,
    });
    expect(own.status).toBe(400);
  });

  it("a tenant without the instance answers its own error; the others' results still come back", async () => {
    await ok(['integrations', 'create', 'only-fa', '--tenant', 'fa', '--integration', 'http', '--connection', 'svc']);
    const body = { command: 'integration:only-fa.get', args: { path: '/whoami' }, labels: ['fx'] };
    const r = await d.api<CommandReply>('POST', '/commands', body);
    expect(r.status, r.raw).toBe(200);
    expect(r.body.results.map((x) => [x.tenant, x.ok, x.error?.code])).toEqual([
      ['fa', true, undefined],
      ['fb', false, 'ERR_INTEGRATION_NOT_FOUND'],
    ]);
  });

  it('a caller limited to one tenant cannot fan out into another', async () => {
    const u = await d.createUser({ name: 'fa-analyst', roles: ['analyst'], tenants: ['fa'] });
    const key = await d.createKey(u.id);
    const before = sources.fb.seen.length;
    const body = { command: 'integration:web.get', args: { path: '/whoami' } };
    const named = await d.api<ErrorBody>('POST', '/commands', { ...body, tenants: ['fa', 'fb'] }, { key });
    expect(named.status).toBe(404);
    expect(named.body.error.code).toBe('ERR_TENANT_NOT_FOUND');
    const labelled = await d.api<CommandReply>('POST', '/commands', { ...body, labels: ['fx'] }, { key });
    expect(labelled.status, labelled.raw).toBe(200);
    expect(labelled.body.results.map((x) => x.tenant)).toEqual(['fa']);
    expect(sources.fb.seen.length).toBe(before);
  });
});

describe('fetching incidents', () => {
  it('checks the fetch settings, naming the field', async () => {
    const base = { name: 'bad', integration: 'http', connection: 'svc', fetchIncidents: true };
    const cases: [Record<string, unknown>, string, string][] = [
      [{ ...base, fetchInterval: '10s', fetchArgs: { path: '/a' } }, 'ERR_BAD_REQUEST', 'fetchInterval'],
      [{ ...base, fetchInterval: '2d', fetchArgs: { path: '/a' } }, 'ERR_BAD_REQUEST', 'fetchInterval'],
      [{ ...base, fetchInterval: 'soon', fetchArgs: { path: '/a' } }, 'ERR_BAD_DURATION', 'fetchInterval'],
      [{ ...base }, 'ERR_INTEGRATION_ARGS', 'fetchArgs'],
      [{ ...base, fetchIncidents: false, fetchInterval: '1m' }, 'ERR_BAD_REQUEST', 'fetchInterval'],
      [
        { ...base, fetchArgs: { path: '/a', headers: { Authorization: 'Bearer x' } } },
        'ERR_INTEGRATION_ARGS',
        'fetchArgs',
      ],
      [{ ...base, fetchArgs: { path: '/a', headers: { 'X-Api-Key': 'k' } } }, 'ERR_INTEGRATION_ARGS', 'fetchArgs'],
      [{ ...base, fetchArgs: { path: '/a', query: { access_token: 't' } } }, 'ERR_INTEGRATION_ARGS', 'fetchArgs'],
    ];
    for (const [body, code, field] of cases) {
      const r = await d.api<ErrorBody>('POST', '/tenants/fa/api/integrations', body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error.code, r.raw).toBe(code);
      expect(r.body.error.message).toMatch(new RegExp(`^${field}`));
      if (JSON.stringify(body).includes('headers') || JSON.stringify(body).includes('query'))
        expect(r.body.error.message).toContain('auth in the connection');
    }
    const none = await d.api<unknown[]>('GET', '/tenants/fa/api/integrations');
    expect(JSON.stringify(none.body)).not.toContain('"bad"');
  });

  it('items become incidents once; fetching again adds nothing', async () => {
    sources.fa.alerts = [alert('a-1'), alert('a-2', 2), alert('a-3', 'critical')];
    await ok([
      ...['integrations', 'create', 'alerts', '--tenant', 'fa', '--integration', 'http', '--connection', 'svc'],
      ...['--fetch-incidents', '--interval', '1m'],
      ...['--fetch-args', '{"path":"/alerts","headers":{"X-Scope":"scope-value-7"}}'],
    ]);
    // Created with fetchIncidents, the instance fetches at once.
    const first = await until('the first fetch', async () => ((await fetched()).size === 3 ? fetched() : undefined));
    expect([...first.values()].map((i) => [i.name, i.severity]).sort()).toEqual([
      ['alert a-1', 3],
      ['alert a-2', 2],
      ['alert a-3', 4],
    ]);
    expect(await fetchNow()).toMatchObject({ outcome: 'ok', created: 0, pending: 0 });
    expect((await fetched()).size).toBe(3);
    const shown = await ok(['integrations', 'show', 'alerts', '--tenant', 'fa']);
    expect(shown.stdout).toMatch(
      /fetches incidents every 1m with \{"path":"\/alerts","headers":\["X-Scope"\]\}; last fetch: \S+ ok, 0 created; next fetch at \S+/,
    );
    expect(shown.stdout).not.toContain('scope-value-7');
    const created = await d.api<{ detail: { fetchArgs: unknown } }[]>(
      'GET',
      '/tenants/fa/api/audit?action=integration.create&limit=20',
    );
    expect(JSON.stringify(created.body)).toContain('"X-Scope"');
    expect(JSON.stringify(created.body)).not.toContain('scope-value-7');
    expect(
      sources.fa.seen.filter((s) => s.path === '/alerts').every((s) => s.authorization === `Bearer ${tokens.fa}`),
    ).toBe(true);
  });

  it('a killed tenant, restarted by its host, does not fetch the same items again; new ones come', async () => {
    const before = await d.tenantRunning('fa');
    process.kill(before.pid!, 'SIGKILL');
    await d.tenantRunning('fa', { notPid: before.pid! });
    expect(await fetchNow()).toMatchObject({ outcome: 'ok', created: 0 });
    sources.fa.alerts.push(alert('a-4'));
    expect(await fetchNow()).toMatchObject({ outcome: 'ok', created: 1 });
    expect([...(await fetched()).keys()].sort()).toEqual(['a-1', 'a-2', 'a-3', 'a-4']);
  });

  it('a source answering garbage leaves the instance with a shown error and creates nothing', async () => {
    sources.fa.garbage = '<html>maintenance</html>';
    sources.fa.alerts.push(alert('a-never'));
    const r = await cli(['integrations', 'fetch', 'alerts', '--tenant', 'fa']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('failed: the source');
    const shown = await ok(['integrations', 'show', 'alerts', '--tenant', 'fa', '--json']);
    expect((shown.json as { lastFetch: FetchState }).lastFetch).toMatchObject({
      outcome: 'failed',
      created: 0,
      error: { code: 'ERR_INTEGRATION_FETCH_ITEMS', message: expect.stringContaining('no list at "body"') },
    });
    expect((await fetched()).has('a-never')).toBe(false);
    const log = await readFile(join(d.agents.get('fx-a')!.dir, 'tenants', 'fa', 'logs', 'tenant.log'), 'utf8');
    expect(log.split('\n').filter((l) => l.includes('"fetch failed"')).length).toBeGreaterThanOrEqual(1);
    expect(log).not.toContain(tokens.fa);
    sources.fa.garbage = undefined;
    sources.fa.alerts.pop();
  });

  it('a moved tenant does not fetch the same items again', async () => {
    const moved = await cli(['tenant', 'move', 'fa', '--to', 'fx-b', '--json']);
    expect(moved.code, moved.stdout + moved.stderr).toBe(0);
    expect((await d.tenantRunning('fa')).host).toBe('fx-b');
    expect(await fetchNow()).toMatchObject({ outcome: 'ok', created: 0 });
    sources.fa.alerts.push(alert('a-5', 0));
    expect(await fetchNow()).toMatchObject({ outcome: 'ok', created: 1 });
    const all = await fetched();
    expect([...all.keys()].sort()).toEqual(['a-1', 'a-2', 'a-3', 'a-4', 'a-5']);
    const audit = await d.api<{ action: string; outcome: string }[]>(
      'GET',
      '/tenants/fa/api/audit?action=integration.fetch&limit=20',
    );
    expect(audit.body.length).toBeGreaterThanOrEqual(5);
  });
});
