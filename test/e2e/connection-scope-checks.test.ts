/**
 * A connection authored on main names a scope that must exist (docs/connections.md#scoped-connections), end to end
 * with real processes: main, host h1 and tenant ea (region emea) with sites paris (active) and lyon (inactive).
 * `connections author` with a tenant main does not know, or a site ea does not have (main asks ea through the relay),
 * exits 2 with one line naming `scope` and stores nothing; REST answers 404 naming `scope`. A region no tenant has is
 * taken with a warning in the answer (`warnings`), an inactive site too. With ea stopped, a site scope in it cannot be
 * checked: 503 `ERR_CONNECTION_SCOPE_UNCHECKED` naming `scope` (CLI exit 1).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Deployment } from '../harness/deployment.js';
import { runCli, type CliResult } from '../harness/processes.js';

let d: Deployment;
const cli = (args: string[]): Promise<CliResult> => runCli(args, d.env, 60_000);
const ok = async (args: string[]): Promise<CliResult> => {
  const r = await cli(args);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
  return r;
};
/** `connections author NAME --scope SCOPE` of a connection with no secret (`--json` unless told). */
const author = (name: string, scope: string, json = true) =>
  cli([
    ...['connections', 'author', name, '--type', 'http', '--scope', scope],
    ...['--set', 'baseUrl=https://svc.example', '--set', 'authType=none', ...(json ? ['--json'] : [])],
  ]);
const items = async () =>
  ((await ok(['content', 'list', '--type', 'connection', '--json'])).json as { name: string }[]).map((i) => i.name);
const body = (scope: Record<string, string>) =>
  JSON.stringify({ type: 'http', fields: { baseUrl: 'https://svc.example', authType: 'none' }, scope });
type Err = { error: { code: string; message: string } };

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'h1');
  await d.startAgent('h1');
  await ok(['tenant', 'create', 'ea', '--host', 'h1', '--region', 'emea', '--json']);
  for (const site of ['paris', 'lyon']) await ok(['sites', 'create', site, '--tenant', 'ea', '--json']);
  await ok(['sites', 'deactivate', 'lyon', '--tenant', 'ea', '--yes', '--json']);
}, 300_000);
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('a connection scope', () => {
  it('naming an unknown tenant or site is refused (exit 2, one line naming scope); nothing is stored', async () => {
    for (const [scope, why] of [
      ['tenant:nosuch', 'palisade: scope: no tenant named "nosuch"; '],
      ['site:nosuch/paris', 'palisade: scope: no tenant named "nosuch"; '],
      ['site:ea/nosite', 'palisade: scope: tenant ea has no site "nosite"; '],
    ]) {
      const r = await author('ghost', scope, false);
      expect(r.code, `${scope}: ${r.stdout}${r.stderr}`).toBe(2);
      expect(r.stderr.startsWith(why), r.stderr).toBe(true);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    }
    expect(await items()).toEqual([]);
    const site = await d.api<Err>('POST', '/content', {
      type: 'connection',
      name: 'ghost',
      body: body({ kind: 'site', tenant: 'ea', site: 'nosite' }),
    });
    expect(site.status, site.raw).toBe(404);
    expect(site.body.error).toMatchObject({ code: 'ERR_SITE_NOT_FOUND' });
    expect(site.body.error.message).toMatch(/^scope: /);
  });

  it('naming a known tenant and site is taken without a warning', async () => {
    for (const [name, scope] of [
      ['own', 'tenant:ea'],
      ['paris', 'site:ea/paris'],
      ['emea', 'region:emea'],
    ]) {
      const r = await author(name, scope);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect((r.json as { warnings: string[] }).warnings).toEqual([]);
    }
  });

  it('naming a region no tenant has, or an inactive site, is taken with a warning in the answer', async () => {
    const far = await author('far', 'region:nowhere');
    expect(far.code, far.stdout + far.stderr).toBe(0);
    expect((far.json as { warnings: string[] }).warnings).toEqual([
      'scope: no tenant is in region nowhere yet; the connection reaches tenants placed there later',
    ]);
    // Publishing the same version again still answers the warning, the problem being still there; sent as a
    // bodiless POST with a JSON content type, which is a bodiless POST.
    const id = (far.json as { id: string }).id;
    const again = await d.api<{ warnings?: string[] }>('POST', `/content/${id}/publish`, undefined, { rawBody: '' });
    expect(again.status, again.raw).toBe(200);
    expect(again.body.warnings).toEqual([
      'scope: no tenant is in region nowhere yet; the connection reaches tenants placed there later',
    ]);
    const lyon = await author('lyon', 'site:ea/lyon', false);
    expect(lyon.code, lyon.stdout + lyon.stderr).toBe(0);
    expect(lyon.stdout.split('\n')[1]).toBe(
      'warning: scope: site lyon of tenant ea is inactive; it applies once activated',
    );
    // And the tenant agrees: at that site it is not valid until the site is activated.
    const resolved = (await ok(['connections', 'resolve', 'lyon', '--tenant', 'ea', '--site', 'lyon', '--json']))
      .json as { chosen: unknown; candidates: { scope: string; valid: boolean; reason: string }[] };
    expect(resolved.chosen).toBeNull();
    expect(resolved.candidates).toMatchObject([
      { scope: 'site:ea/lyon', valid: false, reason: 'for site lyon, which is inactive; it applies once activated' },
    ]);
  });

  it('an empty JSON body is no body: taken where none is needed, 400 naming the field where one is', async () => {
    const own = (await author('bodiless', 'tenant:ea', true)).json as { id: string };
    const share = await d.api('POST', `/content/${own.id}/share`, undefined, { rawBody: '' });
    expect(share.status, share.raw).toBe(200);
    const create = await d.api<Err>('POST', '/content', undefined, { rawBody: '' });
    expect(create.status, create.raw).toBe(400);
    expect(create.body.error.message).toMatch(/^body /);
    const named = await d.api<Err>('POST', '/content', { type: 'connection', body: '{}' });
    expect(named.status, named.raw).toBe(400);
    expect(named.body.error.message).toContain('name');
  });

  it('naming a site of a tenant that cannot be asked is refused with 503 naming scope', async () => {
    expect((await d.api('POST', '/tenants/ea/stop', {})).status).toBe(200);
    const r = await author('stopped', 'site:ea/paris', false);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^palisade: scope: cannot ask tenant ea whether it has site paris \(ERR_TENANT_STOPPED: /);
    const api = await d.api<Err>('POST', '/content', {
      type: 'connection',
      name: 'stopped',
      body: body({ kind: 'site', tenant: 'ea', site: 'paris' }),
    });
    expect(api.status, api.raw).toBe(503);
    expect(api.body.error.code).toBe('ERR_CONNECTION_SCOPE_UNCHECKED');
    // A tenant scope needs no question to the tenant: still taken.
    expect((await author('own2', 'tenant:ea')).code).toBe(0);
  });
});
