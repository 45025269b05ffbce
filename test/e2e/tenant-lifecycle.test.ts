/**
 * A tenant's life cycle and resources, end to end with real processes (main, host h1, tenants acme and
 * globex): `tenant stop` ends its process and keeps it down across a host restart while relayed requests
 * answer 503 ERR_TENANT_STOPPED at once, `tenant start` brings it back with its data; `--memory-mb` reaches
 * the tenant's process as its heap limit; `tenants` shows each running tenant's CPU and memory.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { Deployment, type TenantRow } from '../harness/deployment.js';
import type { ErrorBody } from '../harness/api-shapes.js';
import { alive, until } from '../harness/processes.js';
import { allIncidents, createIncident, tenantAnswering } from '../harness/tenant-api.js';
import { cliTenants } from './tenants-fixtures.js';

let d: Deployment;

beforeAll(async () => {
  d = await Deployment.create({ mainConfig: { heartbeatIntervalMs: 1000 } });
  await d.install('host', 'h1');
  await d.startAgent('h1');
  await d.createTenant('acme', 'h1', { memoryMb: 96 });
  await d.createTenant('globex', 'h1');
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

const cmdline = async (pid: number) => (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');

describe('tenant resources', () => {
  it("--memory-mb is the tenant process's heap limit, kept with the tenant and shown by tenants", async () => {
    const acme = await d.tenantRunning('acme');
    expect(acme.memoryMb).toBe(96);
    expect(await cmdline(acme.pid!)).toContain('--max-old-space-size=96');
    // Without --memory-mb: the default budget (256 MiB) is its limit.
    const globex = await d.tenantRunning('globex');
    expect(globex.memoryMb).toBe(256);
    expect(await cmdline(globex.pid!)).toContain('--max-old-space-size=256');
  });

  it("tenants (REST, --json and the table) shows each running tenant's CPU and resident memory", async () => {
    const rows = await until(
      'usage figures for both tenants',
      async () => {
        const r = await cliTenants(d);
        return r.every((t) => typeof t.cpuPercent === 'number' && typeof t.rssBytes === 'number') ? r : undefined;
      },
      30_000,
      200,
    );
    for (const t of rows) {
      expect(t.cpuPercent).toBeGreaterThanOrEqual(0);
      // A Node process with a LevelDB open holds tens of MiB; its own /proc figure is the same order.
      expect(t.rssBytes).toBeGreaterThan(10 * 1024 * 1024);
      expect(t.rssBytes).toBeLessThan(2 * 1024 * 1024 * 1024);
    }
    const table = await d.cli(['tenants']);
    expect(table.code, table.stderr).toBe(0);
    const header = table.stdout.split('\n')[0];
    for (const col of ['CPU', 'RSS', 'LIMIT']) expect(header).toContain(col);
    expect(table.stdout).toMatch(/acme\s.*\d+(\.\d)?%\s+\d+MiB\s+96MiB/);
    const show = await d.cli(['tenant', 'show', 'acme']);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/acme on host h1 .*: running\n\s+cpu \d+(\.\d)?%, rss \d+MiB, heap limit 96MiB/);
  });
});

describe('tenant stop and start', () => {
  it('stop: status stopped, no process, relayed requests 503 ERR_TENANT_STOPPED; a second stop says so', async () => {
    const before = await tenantAnswering(d, 'acme');
    await createIncident(d, 'acme', { name: 'kept across the stop' });
    const stop = await d.cli(['tenant', 'stop', 'acme']);
    expect(stop.code, stop.stderr).toBe(0);
    expect(stop.stdout).toContain('tenant acme stopped on host h1');
    await until(`acme pid ${before.pid} gone`, () => !alive(before.pid!), 15_000, 50);
    const row = (await cliTenants(d)).find((t) => t.name === 'acme')!;
    expect(row).toMatchObject({ status: 'stopped', pid: null, cpuPercent: null, rssBytes: null, memoryMb: 96 });

    const relayed = await d.api<ErrorBody>('GET', '/tenants/acme/api/incidents');
    expect(relayed.status, relayed.raw).toBe(503);
    expect(relayed.body.error.code).toBe('ERR_TENANT_STOPPED');

    const move = await d.api<ErrorBody>('POST', '/tenants/acme/move', { to: 'h1' });
    expect(move.status, move.raw).toBe(409);
    expect(move.body.error.code).toBe('ERR_TENANT_NOT_MOVABLE');

    const again = await d.cli(['tenant', 'stop', 'acme']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('already stopped');
    // The other tenant is untouched.
    expect((await d.tenant('globex'))!.status).toBe('running');
  });

  it('a stopped tenant stays stopped across a host agent restart', async () => {
    const host = d.agents.get('h1')!.proc!;
    expect(await host.stop('SIGTERM')).toBe(0);
    await d.startAgent('h1');
    const globex = await d.tenantRunning('globex'); // the host is back and has reported its tenants
    expect(globex.status).toBe('running');
    const acme = await until(
      'acme reported after the host restart',
      async () => ((await d.tenant('acme'))?.status === 'stopped' ? await d.tenant('acme') : undefined),
      30_000,
      200,
    );
    expect(acme).toMatchObject({ status: 'stopped', pid: null });
    const relayed = await d.api<ErrorBody>('GET', '/tenants/acme/api/incidents');
    expect(relayed.status, relayed.raw).toBe(503);
    expect(relayed.body.error.code).toBe('ERR_TENANT_STOPPED');
  });

  it('start brings it back with its data and its heap limit; a second start says it runs', async () => {
    const start = await d.cli(['tenant', 'start', 'acme']);
    expect(start.code, start.stderr).toBe(0);
    expect(start.stdout).toContain('tenant acme started on host h1');
    const acme: TenantRow = await tenantAnswering(d, 'acme');
    expect(await cmdline(acme.pid!)).toContain('--max-old-space-size=96');
    expect((await allIncidents(d, 'acme')).map((i) => i.name)).toContain('kept across the stop');
    const again = await d.api<TenantRow & { changed: boolean }>('POST', '/tenants/acme/start');
    expect(again.status, again.raw).toBe(200);
    expect(again.body).toMatchObject({ name: 'acme', status: 'running', changed: false });
  });

  it('stop and start are audited on main', async () => {
    const audit = await d.api<{ action: string; target: string; outcome: string; detail: { changed?: boolean } }[]>(
      'GET',
      '/audit?action=tenant.&limit=100',
    );
    const seen = audit.body
      .filter((a) => a.target === 'acme' && ['tenant.stop', 'tenant.start'].includes(a.action))
      .map((a) => `${a.action} ${a.outcome} ${a.detail.changed}`);
    expect(seen.sort()).toEqual(
      ['tenant.stop ok true', 'tenant.stop ok false', 'tenant.start ok true', 'tenant.start ok false'].sort(),
    );
  });

  it('an analyst (tenants:read, no tenants:write) may not stop or start a tenant', async () => {
    const key = await d.createKey((await d.createUser({ name: 'ops-analyst', roles: ['analyst'] })).id);
    for (const verb of ['stop', 'start']) {
      const r = await d.api<ErrorBody>('POST', `/tenants/globex/${verb}`, undefined, { key });
      expect(r.status, r.raw).toBe(403);
    }
    expect((await d.tenant('globex'))!.status).toBe('running');
  });

  it('a bad or unknown name, or a body, is refused with a 4xx naming the field, and nothing stops', async () => {
    const bad = await d.api<ErrorBody>('POST', '/tenants/Not_A..Name/stop');
    expect(bad.status, bad.raw).toBe(400);
    expect(bad.raw).toContain('name');
    const extra = await d.api<ErrorBody>('POST', '/tenants/globex/stop', { force: true });
    expect(extra.status, extra.raw).toBe(400);
    expect((await d.tenant('globex'))!.status).toBe('running');
    const unknown = await d.api<ErrorBody>('POST', '/tenants/nosuch/start');
    expect(unknown.status, unknown.raw).toBe(404);
    expect(unknown.body.error.code).toBe('ERR_TENANT_NOT_FOUND');
    const cli = await d.cli(['tenant', 'stop', 'nosuch']);
    expect(cli.code).toBe(2);
    expect(cli.stderr + cli.stdout).toContain('ERR_TENANT_NOT_FOUND');
  });
});
