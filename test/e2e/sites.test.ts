/**
 * Sites inside tenants end to end (docs/sites.md) with a real main, one host and two tenants (acme labelled eu,
 * globex): sites are created, listed, activated and deactivated through the CLI and REST; a share reaches every
 * active site (synced, last synced) while an inactive one makes the item's rollup Incomplete and the sharing log
 * names it, until the site is active again and the item shared again; deactivating with confirmation removes that
 * site's incidents, their runs and timelines, and nothing else, while without it nothing changes; globex's users cannot
 * see or change acme's sites, a read-only user of acme may list but not change them; bad input is a 4xx that changes
 * nothing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SitePurgeCounts, SiteView } from '#common/sites.js';
import { Deployment } from '../harness/deployment.js';
import { runCli, type CliResult } from '../harness/processes.js';
import type { ErrorBody } from '../harness/api-shapes.js';
import type { Item, Status } from './content-fixtures.js';

let d: Deployment;

const cli = (args: string[]): Promise<CliResult> => runCli(['sites', ...args], d.env, 60_000);
const sites = (tenant: string, rest = '') => `/tenants/${tenant}/api/sites${rest}`;
interface Incident {
  id: string;
  name: string;
  site?: string;
}

async function siteList(tenant = 'acme'): Promise<Map<string, SiteView>> {
  const r = await d.api<SiteView[]>('GET', sites(tenant));
  if (r.status !== 200) throw new Error(`sites of ${tenant}: ${r.status} ${r.raw}`);
  return new Map(r.body.map((s) => [s.name, s]));
}
async function incidents(tenant = 'acme'): Promise<Incident[]> {
  const r = await d.api<{ items: Incident[] }>('GET', `/tenants/${tenant}/api/incidents?limit=1000`);
  if (r.status !== 200) throw new Error(`incidents of ${tenant}: ${r.status} ${r.raw}`);
  return r.body.items;
}
async function incident(name: string, site?: string): Promise<Incident> {
  const r = await d.api<Incident>('POST', '/tenants/acme/api/incidents', {
    name,
    type: 'phishing',
    severity: 2,
    ...(site ? { site } : {}),
  });
  if (r.status !== 201) throw new Error(`incident ${name}: ${r.status} ${r.raw}`);
  return r.body;
}
async function share(id: string): Promise<Status> {
  const r = await d.api<Status>('POST', `/content/${id}/share`);
  if (r.status !== 200) throw new Error(`share ${id}: ${r.status} ${r.raw}`);
  return r.body;
}

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'h1');
  await d.startAgent('h1');
  await d.createTenant('acme', 'h1', { labels: ['eu'] });
  await d.createTenant('globex', 'h1', { labels: ['us'] });
}, 180_000);
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('sites', () => {
  it('are created, listed, activated and deactivated through the CLI and REST', async () => {
    const made = await cli(['create', 'paris', '--tenant', 'acme', '--json']);
    expect(made.code, made.stderr).toBe(0);
    expect(made.json).toMatchObject({ name: 'paris', active: true, syncStatus: 'pending', lastSynced: null });
    const text = await cli(['create', 'lyon', '--tenant', 'acme']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout.trim()).toBe('site lyon created in tenant acme (active, pending)');
    const rest = await d.api<SiteView>('POST', sites('acme'), { name: 'berlin' });
    expect(rest.status, rest.raw).toBe(201);

    const table = await cli(['list', '--tenant', 'acme']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^NAME\s+ACTIVE\s+SYNC STATUS\s+LAST SYNCED$/m);
    expect(table.stdout).toMatch(/^paris\s+yes\s+pending\s+never$/m);
    const json = await cli(['list', '--tenant', 'acme', '--json']);
    expect((json.json as SiteView[]).map((s) => [s.name, s.active, s.syncStatus]).sort()).toEqual([
      ['berlin', true, 'pending'],
      ['lyon', true, 'pending'],
      ['paris', true, 'pending'],
    ]);

    // berlin holds nothing: deactivating it still needs the confirmation, and says it removed nothing.
    const unconfirmed = await cli(['deactivate', 'berlin', '--tenant', 'acme']);
    expect(unconfirmed.code).toBe(2);
    expect(unconfirmed.stderr.trim().split('\n')).toHaveLength(1);
    expect(unconfirmed.stderr).toContain('ERR_SITE_CONFIRM');
    expect(unconfirmed.stderr).toContain('--yes');
    expect((await siteList()).get('berlin')!.active).toBe(true);
    const off = await cli(['deactivate', 'berlin', '--tenant', 'acme', '--yes']);
    expect(off.code, off.stderr).toBe(0);
    expect(off.stdout.trim()).toBe(
      'site berlin deactivated in tenant acme; removed 0 incidents, 0 playbook runs, 0 timeline entries, ' +
        '0 pending automation rules, 0 indicator links',
    );
    expect((await siteList()).get('berlin')).toMatchObject({ active: false, syncStatus: 'inactive' });
    const on = await cli(['activate', 'berlin', '--tenant', 'acme', '--json']);
    expect(on.code, on.stderr).toBe(0);
    expect(on.json).toMatchObject({ name: 'berlin', active: true, syncStatus: 'pending' });
    // Over REST, activating needs no body; deactivating without one only says what it would remove.
    expect((await d.api<SiteView>('POST', sites('acme', '/berlin/activate'))).body.active).toBe(true);
    const bare = await d.api<ErrorBody>('POST', sites('acme', '/berlin/deactivate'));
    expect(bare.status, bare.raw).toBe(409);
    expect(bare.body.error.code).toBe('ERR_SITE_CONFIRM');
    const restOff = await d.api<{ site: SiteView; removed: SitePurgeCounts }>(
      'POST',
      sites('acme', '/berlin/deactivate'),
      { confirm: true },
    );
    expect(restOff.status, restOff.raw).toBe(200);
    expect(restOff.body.site).toMatchObject({ active: false, syncStatus: 'inactive' });
    expect(restOff.body.removed).toEqual({
      incidents: 0,
      runs: 0,
      timelineEntries: 0,
      pendingRules: 0,
      indicatorLinks: 0,
    });
    // The changes are in acme's audit log with their caller.
    const audit = await d.api<{ action: string; target: string; outcome: string }[]>(
      'GET',
      '/tenants/acme/api/audit?action=site.&limit=50',
    );
    expect(audit.body.map((e) => `${e.action} ${e.target}`)).toEqual(
      expect.arrayContaining(['site.create paris', 'site.activate berlin', 'site.deactivate berlin']),
    );
  });

  it('a share reaches every active site; an inactive one makes the rollup Incomplete until it is shared again', async () => {
    const item = (
      await d.api<Item>('POST', '/content', {
        type: 'list',
        name: 'Blocked hosts',
        body: 'evil.example',
        labels: ['eu'],
      })
    ).body;
    expect((await d.api('POST', `/content/${item.id}/publish`)).status).toBe(200);
    const before = Date.now();
    const s = await share(item.id);
    expect(s.rollup).toBe('Incomplete');
    const acme = s.tenants.find((t) => t.tenant === 'acme')!;
    expect(acme).toMatchObject({ state: 'shared', version: 1 });
    expect(acme.reason).toBe('tenant acme: site berlin inactive');
    const push = s.log.filter((l) => l.action === 'push' && l.tenant === 'acme').at(-1)!;
    expect(push).toMatchObject({ outcome: 'ok', reason: 'tenant acme: site berlin inactive' });
    const status = await d.api<Status>('GET', `/content/${item.id}/status`);
    expect(status.body.rollup).toBe('Incomplete');
    const shown = await runCli(['content', 'status', item.id], d.env);
    expect(shown.stdout).toMatch(/^acme\s+shared\s+1\s+1\s+tenant acme: site berlin inactive$/m);
    expect(shown.stdout).toMatch(/push acme v1 ok: tenant acme: site berlin inactive$/m);

    const after = await siteList();
    for (const name of ['paris', 'lyon']) {
      const site = after.get(name)!;
      expect(site.syncStatus).toBe('synced');
      expect(Date.parse(site.lastSynced!)).toBeGreaterThanOrEqual(before - 1000);
      expect(site.lastSyncedItem).toEqual({ id: item.id, version: 1 });
    }
    expect(after.get('berlin')).toMatchObject({ syncStatus: 'inactive', lastSynced: null });
    const listed = await cli(['list', '--tenant', 'acme']);
    expect(listed.stdout).toMatch(/^lyon\s+yes\s+synced\s+\d{4}-\d\d-\d\dT/m);
    expect(listed.stdout).toMatch(/^berlin\s+no\s+inactive\s+never$/m);

    expect((await cli(['activate', 'berlin', '--tenant', 'acme'])).code).toBe(0);
    const again = await share(item.id);
    expect(again.rollup).toBe('Successful');
    expect(again.tenants.find((t) => t.tenant === 'acme')).toMatchObject({ state: 'shared', reason: null });
    expect((await siteList()).get('berlin')).toMatchObject({
      active: true,
      syncStatus: 'synced',
      lastSyncedItem: { id: item.id, version: 1 },
    });
  });

  it("deactivating with confirmation removes that site's incidents, runs and timelines, and nothing else", async () => {
    const pb = await d.api<{ id: string }>('POST', '/tenants/acme/api/content', {
      type: 'playbook',
      name: 'ask-analyst',
      body: 'name: ask-analyst\nstart: ask\ntasks:\n  ask: {type: manual, prompt: contain it}\n',
    });
    expect(pb.status, pb.raw).toBe(201);
    const p1 = await incident('paris phish 1', 'paris');
    const p2 = await incident('paris phish 2', 'paris');
    const made = await runCli(
      [
        'incidents',
        'create',
        '--tenant',
        'acme',
        '--name',
        'lyon phish',
        '--type',
        'phishing',
        '--site',
        'lyon',
        '--json',
      ],
      d.env,
    );
    expect(made.code, made.stderr).toBe(0);
    const l1 = made.json as Incident;
    expect(l1.site).toBe('lyon');
    const none = await incident('no site');
    expect(p1.site).toBe('paris');
    expect(none.site).toBeUndefined();
    const batch = await d.api<{ ids: string[] }>('POST', '/tenants/acme/api/incidents', {
      items: [
        { name: 'paris batch', type: 'phishing', severity: 1, site: 'paris' },
        { name: 'lyon batch', type: 'phishing', severity: 1, site: 'lyon' },
      ],
    });
    expect(batch.status, batch.raw).toBe(201);
    const runs: Record<string, string> = {};
    for (const i of [p1, l1]) {
      const r = await d.api<{ id: string; site?: string }>('POST', '/tenants/acme/api/playbooks/ask-analyst/runs', {
        incident: i.id,
      });
      expect(r.status, r.raw).toBe(201);
      expect(r.body.site).toBe(i.site);
      runs[i.id] = r.body.id;
    }
    const ind = await d.api('POST', '/tenants/acme/api/indicators', {
      value: '203.0.113.7',
      type: 'ip',
      incident: p2.id,
    });
    expect(ind.status, ind.raw).toBe(201);
    const bySite = await runCli(['incidents', 'list', '--tenant', 'acme', '--site', 'paris', '--json'], d.env);
    expect((bySite.json as { items: Incident[] }).items.map((i) => i.name).sort()).toEqual([
      'paris batch',
      'paris phish 1',
      'paris phish 2',
    ]);
    const found = await d.api<{ items: Incident[] }>('GET', '/search/incidents?tenants=acme&q=lyon');
    expect(found.body.items.map((i) => [i.name, i.site]).sort()).toEqual([
      ['lyon batch', 'lyon'],
      ['lyon phish', 'lyon'],
    ]);

    const all = await incidents();
    const ask = await cli(['deactivate', 'paris', '--tenant', 'acme', '--json']);
    expect(ask.code).toBe(2);
    const err = (ask.json as ErrorBody).error;
    expect(err.code).toBe('ERR_SITE_CONFIRM');
    expect(err.message).toContain('3 incidents, 1 playbook run, ');
    expect(err.message).toContain('1 indicator link');
    expect(await incidents()).toEqual(all);
    expect((await siteList()).get('paris')!.active).toBe(true);

    const done = await cli(['deactivate', 'paris', '--tenant', 'acme', '--yes', '--json']);
    expect(done.code, done.stderr).toBe(0);
    const out = done.json as { site: SiteView; removed: SitePurgeCounts };
    expect(out.site).toMatchObject({ name: 'paris', active: false, syncStatus: 'inactive' });
    expect(out.removed).toMatchObject({ incidents: 3, runs: 1, pendingRules: 0, indicatorLinks: 1 });
    expect(out.removed.timelineEntries).toBeGreaterThanOrEqual(2); // the run's start and its waiting task

    const left = await incidents();
    expect(left.map((i) => i.name).sort()).toEqual(['lyon batch', 'lyon phish', 'no site']);
    expect((await d.api('GET', `/tenants/acme/api/incidents/${p1.id}`)).status).toBe(404);
    expect((await d.api('GET', `/tenants/acme/api/playbooks/runs/${runs[p1.id]}`)).status).toBe(404);
    expect((await d.api<unknown[]>('GET', `/tenants/acme/api/incidents/${p1.id}/timeline`)).status).toBe(404);
    const lyonRun = await d.api<{ status: string; site?: string }>(
      'GET',
      `/tenants/acme/api/playbooks/runs/${runs[l1.id]}`,
    );
    expect(lyonRun.body).toMatchObject({ status: 'waiting', site: 'lyon' });
    const kept = await d.api<{ incidents: string[] }[]>(
      'GET',
      '/tenants/acme/api/indicators?type=ip&value=203.0.113.7',
    );
    expect(kept.body[0].incidents).toEqual([]);

    // Inactive: no incident may name it; active again, it starts empty and takes incidents again.
    const refused = await d.api<ErrorBody>('POST', '/tenants/acme/api/incidents', {
      name: 'late',
      type: 'phishing',
      severity: 1,
      site: 'paris',
    });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({ code: 'ERR_SITE_INACTIVE' });
    expect(refused.body.error.message).toMatch(/^site: site paris is inactive/);
    expect((await cli(['activate', 'paris', '--tenant', 'acme'])).stdout.trim()).toBe(
      'site paris is active in tenant acme (pending)',
    );
    expect((await d.api<{ items: Incident[] }>('GET', '/tenants/acme/api/incidents?site=paris')).body.items).toEqual(
      [],
    );
    expect((await incident('paris again', 'paris')).site).toBe('paris');
  });

  it("are out of reach of another tenant's users; a read-only user lists them but cannot change them", async () => {
    const before = await d.api<SiteView[]>('GET', sites('acme'));
    const gAdmin = await d.createUser({ name: 'globex-admin', roles: ['admin'] }, '/tenants/globex/api/users');
    const gTenantKey = await d.createKey(gAdmin.id, '/tenants/globex/api/apikeys');
    const gMain = await d.createUser({ name: 'globex-main', tenant: 'globex', roles: ['admin'] });
    const gMainKey = await d.createKey(gMain.id);
    for (const key of [gTenantKey, gMainKey]) {
      for (const [method, path, body] of [
        ['GET', sites('acme'), undefined],
        ['POST', sites('acme'), { name: 'stolen' }],
        ['POST', sites('acme', '/lyon/deactivate'), { confirm: true }],
        ['POST', sites('acme', '/berlin/activate'), {}],
      ] as const) {
        const r = await d.api(method, path, body, { key });
        expect(r.status, `${method} ${path}: ${r.raw}`).toBe(404);
        expect(r.raw).not.toContain('lyon');
      }
      // In its own tenant a customer admin manages sites.
      expect((await d.api('GET', sites('globex'), undefined, { key })).status).toBe(200);
    }
    const own = await d.api<SiteView>('POST', sites('globex'), { name: 'nyc' }, { key: gTenantKey });
    expect(own.status, own.raw).toBe(201);

    const ro = await d.createUser({ name: 'acme-ro', roles: ['read-only'] }, '/tenants/acme/api/users');
    const roKey = await d.createKey(ro.id, '/tenants/acme/api/apikeys');
    expect((await d.api('GET', sites('acme'), undefined, { key: roKey })).status).toBe(200);
    for (const [path, body] of [
      [sites('acme'), { name: 'ro-site' }],
      [sites('acme', '/lyon/deactivate'), { confirm: true }],
      [sites('acme', '/lyon/activate'), {}],
    ] as const) {
      const r = await d.api<ErrorBody>('POST', path, body, { key: roKey });
      expect(r.status, `${path}: ${r.raw}`).toBe(403);
    }
    const roCli = await runCli(['sites', 'deactivate', 'lyon', '--tenant', 'acme', '--yes'], {
      ...d.env,
      PALISADE_API_KEY: roKey,
    });
    expect(roCli.code).toBe(2);
    expect((await d.api<SiteView[]>('GET', sites('acme'))).body).toEqual(before.body);
    expect((await incidents()).some((i) => i.site === 'lyon')).toBe(true);
  });

  it('refuse bad input with a 4xx naming the field (CLI exit 2) and change nothing', async () => {
    const before = await d.api<SiteView[]>('GET', sites('acme'));
    const incidentsBefore = await incidents();
    const cases: [string, string, unknown, number, string, string][] = [
      ['POST', sites('acme'), { name: 'Bad_Name' }, 400, 'ERR_BAD_REQUEST', 'body.name'],
      ['POST', sites('acme'), { name: 'ok', colour: 'red' }, 400, 'ERR_BAD_REQUEST', 'body.colour'],
      ['POST', sites('acme'), { name: 7 }, 400, 'ERR_BAD_REQUEST', 'body.name'],
      ['POST', sites('acme'), {}, 400, 'ERR_BAD_REQUEST', 'body.name'],
      ['POST', sites('acme'), { name: 'lyon' }, 409, 'ERR_SITE_EXISTS', 'name'],
      ['POST', sites('acme', '/nowhere/deactivate'), { confirm: true }, 404, 'ERR_SITE_NOT_FOUND', 'no site nowhere'],
      ['POST', sites('acme', '/lyon/deactivate'), { confirm: 'yes' }, 400, 'ERR_BAD_REQUEST', 'body.confirm'],
      ['POST', sites('acme', '/lyon/deactivate'), {}, 409, 'ERR_SITE_CONFIRM', 'deactivating site lyon'],
      ['POST', sites('acme', '/lyon/deactivate'), { confirm: false }, 409, 'ERR_SITE_CONFIRM', 'deactivating'],
      ['POST', sites('acme', '/..%2f..%2fetc/activate'), {}, 400, 'ERR_BAD_REQUEST', 'params.name'],
      [
        'POST',
        '/tenants/acme/api/incidents',
        { name: 'x', type: 'phishing', severity: 1, site: 'atlantis' },
        400,
        'ERR_SITE_INACTIVE',
        'site: no site atlantis',
      ],
      [
        'POST',
        '/tenants/acme/api/incidents',
        {
          items: [
            { name: 'x', type: 'phishing', severity: 1, site: 'lyon' },
            { name: 'y', type: 'phishing', severity: 1, site: 'atlantis' },
          ],
        },
        400,
        'ERR_SITE_INACTIVE',
        'items.1.site',
      ],
      ['POST', '/tenants/acme/api/incidents', { name: 'x', type: 't', severity: 1, site: 'A B' }, 400, '', 'body.site'],
      ['PATCH', `/tenants/acme/api/incidents/${incidentsBefore[0].id}`, { site: 'lyon' }, 400, '', 'body.site'],
    ];
    for (const [method, path, body, status, code, text] of cases) {
      const r = await d.api<ErrorBody>(method, path, body);
      expect(r.status, `${method} ${path} ${JSON.stringify(body)}: ${r.raw}`).toBe(status);
      if (code) expect(r.body.error.code).toBe(code);
      expect(r.body.error.message, r.raw).toContain(text);
    }
    for (const [args, text] of [
      [['create', 'Bad_Name'], 'site'],
      [['activate', 'nowhere'], 'ERR_SITE_NOT_FOUND'],
      [['deactivate', 'lyon'], 'ERR_SITE_CONFIRM'],
    ] as const) {
      const r = await cli([...args, '--tenant', 'acme']);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(text);
    }
    expect((await d.api<SiteView[]>('GET', sites('acme'))).body).toEqual(before.body);
    expect(await incidents()).toEqual(incidentsBefore);
  });
});
