/**
 * Connections authored on main with a scope (docs/connections.md#scoped-connections), end to end with real processes:
 * main, host h1, tenants ea and eb in region emea and oc in region apac, and a local HTTP fake recording the bearer
 * token of every call. `svc` is authored three times on main (region:emea, tenant:eb, site:ea/paris), ea also has
 * its own `svc`; one shared playbook calls `svc`. Runs in ea and eb each carry their own tenant's token; an incident
 * of ea at site paris gets the site's token, one at another site (or none) ea's own. `connections resolve` says which
 * one applies and why; oc (out of scope) never receives the items and cannot resolve them; moved into emea later, it
 * has no sealed copy (failed, rollup Incomplete) until the secret is re-sealed. No token is in clear in main's or the
 * host's data directory; a customer user of ea cannot resolve in eb.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { FakeService } from '../harness/playbook-service.js';
import { runCli, until, type CliResult } from '../harness/processes.js';
import { filesContaining } from '../harness/data-scan.js';

const PLAYBOOK = `
name: lookup
start: lookup
tasks:
  lookup:
    type: integration
    integration: http
    connection: svc
    command: get
    args: {path: /lookup/x, query: {incident: "\${incident.name}"}}
`;

const tok = (what: string) => `tok-${what}-${randomBytes(12).toString('hex')}`;
const tokens = { ea: tok('ea'), eb: tok('eb'), region: tok('region'), paris: tok('paris'), reg: tok('reg') };

let d: Deployment;
let svc: FakeService;
const items: Record<string, string> = {};

const cli = (args: string[], stdin?: string): Promise<CliResult> => runCli(args, d.env, 60_000, stdin);
const ok = async (args: string[], stdin?: string): Promise<CliResult> => {
  const r = await cli(args, stdin);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
  return r;
};

interface Resolution {
  name: string;
  chosen: { scope: string; source: string; contentId?: string; version?: number } | null;
  candidates: { scope: string; source: string; valid: boolean; reason: string }[];
  reason: string;
}
const resolve = async (tenant: string, name: string, site?: string) =>
  (await ok(['connections', 'resolve', name, '--tenant', tenant, ...(site ? ['--site', site] : []), '--json']))
    .json as Resolution;

interface Status {
  rollup: string;
  tenants: { tenant: string; state: string; reason: string | null }[];
}
const status = async (id: string) => (await ok(['content', 'status', id, '--json'])).json as Status;

async function author(name: string, scope: string, token: string): Promise<string> {
  const base = ['--type', 'http', '--scope', scope, '--set', `baseUrl=http://127.0.0.1:${svc.port}`];
  const r = await ok(
    ['connections', 'author', name, ...base, '--set', 'authType=bearer', '--secret-stdin', '--json'],
    `${token}\n`,
  );
  return (r.json as { id: string }).id;
}

/** Runs the shared playbook on a new incident of `tenant` (at `site`) and answers the token its call carried. */
async function tokenOfRun(tenant: string, site?: string): Promise<string | undefined> {
  const name = `${tenant}-${site ?? 'nosite'}-${randomBytes(4).toString('hex')}`; // the call names it
  const inc = await d.api<{ id: string }>('POST', `/tenants/${tenant}/api/incidents`, {
    name,
    type: 'phish',
    severity: 1,
    ...(site ? { site } : {}),
  });
  expect(inc.status, inc.raw).toBe(201);
  const run = (
    await ok(['playbooks', 'run', 'lookup', '--tenant', tenant, '--incident', inc.body.id, '--wait', '--json'])
  ).json as { status: string };
  expect(run.status).toBe('completed');
  const calls = svc.calls('/lookup/x', name);
  expect(calls).toHaveLength(1);
  return calls[0].authorization;
}

const holds = async (tenant: string, id: string) => {
  const r = await d.api<{ id: string }[]>('GET', `/tenants/${tenant}/api/content?type=connection`);
  return r.status === 200 && r.body.some((i) => i.id === id);
};

beforeAll(async () => {
  svc = new FakeService();
  await svc.start();
  d = await Deployment.create();
  await d.install('host', 'h1');
  d.configure('h1', { integrationLoopbackAllow: [`127.0.0.1:${svc.port}`] });
  await d.startAgent('h1');
  for (const [t, region] of [
    ['ea', 'emea'],
    ['eb', 'emea'],
    ['oc', 'apac'],
  ])
    await ok(['tenant', 'create', t, '--host', 'h1', '--region', region, '--json']);
  // Incidents name existing active sites (docs/sites.md): ea has paris and lyon, eb a paris of its own.
  for (const [t, site] of [
    ['ea', 'paris'],
    ['ea', 'lyon'],
    ['eb', 'paris'],
  ])
    await ok(['sites', 'create', site, '--tenant', t, '--json']);
  // ea's own svc is given DESIGN.md's setting name (auth, ours authType): its runs below go through it.
  const own = ['--type', 'http', '--set', `baseUrl=http://127.0.0.1:${svc.port}`, '--set', 'auth=bearer'];
  await ok(['connections', 'create', 'svc', '--tenant', 'ea', ...own, '--secret-stdin'], `${tokens.ea}\n`);
  items.region = await author('svc', 'region:emea', tokens.region);
  items.eb = await author('svc', 'tenant:eb', tokens.eb);
  items.paris = await author('svc', 'site:ea/paris', tokens.paris);
  // Authored without --json (a line, not JSON), with DESIGN.md's name auth as well.
  const reg = await ok(
    [
      ...['connections', 'author', 'reg', '--type', 'http', '--scope', 'region:emea'],
      ...['--set', `baseUrl=http://127.0.0.1:${svc.port}`, '--set', 'auth=bearer', '--secret-stdin'],
    ],
    `${tokens.reg}\n`,
  );
  const line = /^connection reg (\S+) v1 \(region:emea\) published, sealed for (ea, eb|eb, ea), shared: \w+\n$/.exec(
    reg.stdout,
  );
  expect(line, reg.stdout).not.toBeNull();
  items.reg = line![1];
  const pb = (
    await ok([
      'content',
      'create',
      '--type',
      'playbook',
      '--name',
      'lookup',
      '--labels',
      'all',
      '--body',
      PLAYBOOK,
      '--json',
    ])
  ).json as { id: string };
  await ok(['content', 'publish', pb.id]);
  items.lookup = pb.id;
  await ok(['content', 'share', pb.id]);
  for (const t of ['ea', 'eb', 'oc'])
    await until(`lookup shared to ${t}`, async () => {
      const r = await d.api<{ id: string }[]>('GET', `/tenants/${t}/api/content?type=playbook`);
      return r.status === 200 && r.body.some((i) => i.id === pb.id);
    });
}, 300_000);
afterAll(async () => {
  await d?.stop();
  await svc?.close();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('tenants with a region', () => {
  it('show their region and that they finished initialising', async () => {
    const rows = (await ok(['tenants', '--json'])).json as {
      name: string;
      region: string | null;
      initialised: boolean;
    }[];
    expect(rows.map((r) => [r.name, r.region, r.initialised]).sort()).toEqual([
      ['ea', 'emea', true],
      ['eb', 'emea', true],
      ['oc', 'apac', true],
    ]);
    expect((await ok(['tenants'])).stdout).toMatch(/\bea\b.*\byes\b.*\bemea\b/);
  });
});

describe('a shared playbook naming connection svc', () => {
  it("runs in ea and eb with each tenant's own credentials", async () => {
    expect(await tokenOfRun('ea')).toBe(`Bearer ${tokens.ea}`);
    expect(await tokenOfRun('eb')).toBe(`Bearer ${tokens.eb}`);
  });

  it("uses the site's connection for an incident at that site only", async () => {
    expect(await tokenOfRun('ea', 'paris')).toBe(`Bearer ${tokens.paris}`);
    expect(await tokenOfRun('ea', 'lyon')).toBe(`Bearer ${tokens.ea}`);
    // The site item is scoped to ea: eb never receives it, so its site paris changes nothing.
    expect(await holds('eb', items.paris)).toBe(false);
    expect(await tokenOfRun('eb', 'paris')).toBe(`Bearer ${tokens.eb}`);
  });
});

describe("DESIGN.md's http setting names", () => {
  it('are shown beside ours, and refused naming the field when both are given with different values', async () => {
    const shown = (await ok(['connections', 'show', 'svc', '--tenant', 'ea', '--json'])).json as {
      settings: Record<string, unknown>;
    };
    expect(shown.settings).toMatchObject({ authType: 'bearer', auth: 'bearer', tlsVerify: true, verifyTls: true });
    const both = { baseUrl: `http://127.0.0.1:${svc.port}`, auth: 'bearer', authType: 'none' };
    const r = await d.api<{ error: { code: string; message: string } }>('POST', '/tenants/eb/api/connections', {
      name: 'twice',
      type: 'http',
      settings: both,
      secret: 'x',
    });
    expect(r.status, r.raw).toBe(400);
    expect(r.body.error).toMatchObject({ code: 'ERR_CONNECTION_SETTING' });
    expect(r.body.error.message).toMatch(/^settings\.auth: /);
    const viaCli = await cli(
      [
        ...['connections', 'create', 'twice', '--tenant', 'eb', '--type', 'http'],
        ...['--set', `baseUrl=${both.baseUrl}`, '--set', 'auth=bearer', '--set', 'authType=none', '--secret-stdin'],
      ],
      'x\n',
    );
    expect(viaCli.code).toBe(2);
    expect(viaCli.stderr).toContain('settings.auth: ');
    const authored = await cli([
      ...['connections', 'author', 'twice', '--type', 'http', '--scope', 'tenant:eb'],
      ...['--set', `baseUrl=${both.baseUrl}`, '--set', 'verifyTls=false', '--set', 'tlsVerify=true'],
    ]);
    expect(authored.code).toBe(2);
    expect(authored.stderr).toContain('settings.verifyTls: ');
    expect((await d.api('GET', '/tenants/eb/api/connections/twice')).status).toBe(404);
  });
});

describe('playbooks test --site', () => {
  /** Tests the playbook item in `tenant` (at `site`) on an incident named for the call; answers its token. */
  async function tokenOfTest(tenant: string, site?: string): Promise<string | undefined> {
    const name = `test-${tenant}-${site ?? 'nosite'}-${randomBytes(4).toString('hex')}`;
    const file = join(d.dir, `${name}.json`);
    writeFileSync(file, JSON.stringify({ name }));
    const r = await ok([
      'playbooks',
      'test',
      items.lookup,
      '--tenant',
      tenant,
      '--incident-file',
      file,
      ...(site ? ['--site', site] : []),
      '--json',
    ]);
    expect((r.json as { status: string }).status).toBe('completed');
    const calls = svc.calls('/lookup/x', name);
    expect(calls).toHaveLength(1);
    return calls[0].authorization;
  }

  it("tests with the site's connection at that site and the tenant's without one", async () => {
    expect(await tokenOfTest('ea', 'paris')).toBe(`Bearer ${tokens.paris}`);
    expect(await tokenOfTest('ea')).toBe(`Bearer ${tokens.ea}`);
    expect(await tokenOfTest('ea', 'lyon')).toBe(`Bearer ${tokens.ea}`);
  });

  it('refuses a site the tenant does not have, naming the field, and calls nothing', async () => {
    const file = join(d.dir, 'nowhere.json');
    writeFileSync(file, JSON.stringify({ name: 'test-nowhere' }));
    const args = ['playbooks', 'test', items.lookup, '--tenant', 'ea', '--incident-file', file, '--site', 'nowhere'];
    const r = await cli([...args, '--json']);
    expect(r.code).not.toBe(0);
    expect((r.json as { error: { message: string } }).error.message).toContain('site');
    expect(svc.calls('/lookup/x', 'test-nowhere')).toHaveLength(0);
  });
});

describe('connections resolve', () => {
  it('says which connection applies and why, never the secret', async () => {
    const paris = await resolve('ea', 'svc', 'paris');
    expect(paris.chosen).toMatchObject({
      scope: 'site:ea/paris',
      source: 'shared',
      contentId: items.paris,
      version: 1,
    });
    expect(paris.reason).toBe('site paris beats tenant (local), region emea');
    expect(paris.candidates.map((c) => [c.scope, c.source, c.valid])).toEqual([
      ['site:ea/paris', 'shared', true],
      ['tenant:ea', 'local', true],
      ['region:emea', 'shared', true],
    ]);
    const plain = await resolve('ea', 'svc');
    expect(plain.chosen).toMatchObject({ scope: 'tenant:ea', source: 'local' });
    expect(plain.candidates[0]).toMatchObject({ scope: 'site:ea/paris', valid: false });
    expect(plain.candidates[0].reason).toContain('no site');
    expect((await resolve('eb', 'svc')).chosen).toMatchObject({ scope: 'tenant:eb', contentId: items.eb });
    expect((await resolve('eb', 'reg')).chosen).toMatchObject({ scope: 'region:emea', contentId: items.reg });
    const text = (await ok(['connections', 'resolve', 'svc', '--tenant', 'ea', '--site', 'paris'])).stdout;
    expect(text).toContain('site paris beats tenant (local), region emea');
    for (const t of Object.values(tokens)) expect(JSON.stringify(paris) + text).not.toContain(t);
  });

  it('is out of reach of a customer user of another tenant', async () => {
    const user = await d.createUser({ name: 'ea-customer', tenant: 'ea', roles: ['admin'] });
    const key = await d.createKey(user.id);
    const own = await d.api<Resolution>('GET', '/tenants/ea/api/connections/resolve?name=svc', undefined, { key });
    expect(own.status, own.raw).toBe(200);
    const other = await d.api('GET', '/tenants/eb/api/connections/resolve?name=svc', undefined, { key });
    expect(other.status).toBe(404);
    expect(other.raw).not.toContain('tenant:eb');
  });
});

describe('a tenant out of scope', () => {
  it('never receives the items and cannot resolve them', async () => {
    for (const id of Object.values(items)) expect(await holds('oc', id)).toBe(false);
    const r = await resolve('oc', 'svc');
    expect(r.chosen).toBeNull();
    expect(r.candidates).toEqual([]);
    const run = await d.api<{ id: string }>('POST', '/tenants/oc/api/incidents', {
      name: 'oc-x',
      type: 'p',
      severity: 1,
    });
    const failed = await cli(['playbooks', 'run', 'lookup', '--tenant', 'oc', '--incident', run.body.id, '--wait']);
    expect(failed.code).toBe(1);
    expect(svc.calls('/lookup/x', 'oc-x')).toEqual([]);
    const st = await status(items.region);
    expect(st.rollup).toBe('Successful');
    expect(st.tenants.find((t) => t.tenant === 'oc')).toMatchObject({
      state: 'not-shared',
      reason: 'out of scope region:emea (its region is apac)',
    });
  });

  it('moved into the region has no sealed copy until the secret is re-sealed', async () => {
    const moved = (await ok(['tenant', 'set-region', 'oc', 'emea', '--json'])).json as { region: string };
    expect(moved.region).toBe('emea');
    const failed = await until('oc failed for the region item', async () => {
      const s = await status(items.reg);
      return s.tenants.find((t) => t.tenant === 'oc')?.state === 'failed' ? s : undefined;
    });
    expect(failed.rollup).toBe('Incomplete');
    expect(failed.tenants.find((t) => t.tenant === 'oc')?.reason).toContain(
      'secret not sealed for this tenant; re-seal',
    );
    expect(await holds('oc', items.reg)).toBe(false);

    await ok(['connections', 'author', 'reg', '--update', items.reg, '--secret-stdin', '--json'], `${tokens.reg}\n`);
    await until('reg re-sealed for oc', async () => (await status(items.reg)).rollup === 'Successful');
    expect(await holds('oc', items.reg)).toBe(true);
    expect((await resolve('oc', 'reg')).chosen).toMatchObject({ scope: 'region:emea', version: 2 });
  });
});

describe('a new version sending the secret elsewhere', () => {
  it('is refused by the CLI without the secret and by main at publish; the service keeps its token', async () => {
    const cliMoved = await cli([
      'connections',
      'author',
      'svc',
      '--update',
      items.eb,
      '--set',
      'authType=bearer',
      '--set',
      'baseUrl=https://attacker.example',
      '--json',
    ]);
    expect(cliMoved.code).toBe(2);
    expect(cliMoved.stderr + cliMoved.stdout).toMatch(/--secret-stdin or --secret-file/);
    const item = await d.api<{ version: number; versions: { version: number; body: string }[] }>(
      'GET',
      `/content/${items.eb}`,
    );
    const latest = JSON.parse(item.body.versions.find((v) => v.version === item.body.version)!.body);
    const put = await d.api('PUT', `/content/${items.eb}`, {
      body: JSON.stringify({ ...latest, fields: { ...latest.fields, baseUrl: 'https://attacker.example' } }),
    });
    expect(put.status, put.raw).toBe(200);
    const pub = await d.api<{ error: { code: string; message: string } }>('POST', `/content/${items.eb}/publish`, {});
    expect(pub.status, pub.raw).toBe(400);
    expect(pub.body.error.code).toBe('ERR_CONNECTION_SEALED');
    expect(pub.body.error.message).toMatch(/^sealed: .*--secret-stdin/);
    expect(await tokenOfRun('eb')).toBe(`Bearer ${tokens.eb}`);
  });
});

describe('secrets at rest', () => {
  it("are in no clear form in main's or the host's data directory, nor in any log", async () => {
    for (const t of ['ea', 'eb', 'oc']) expect((await d.api('POST', `/tenants/${t}/stop`, {})).status).toBe(200);
    // The scan finds what is there: main holds the items' ids, the host the site's name in ea's store.
    expect(await filesContaining(d.mainDir, items.paris)).not.toEqual([]);
    expect(await filesContaining(d.agents.get('h1')!.dir, items.paris)).not.toEqual([]);
    for (const t of Object.values(tokens)) {
      expect(await filesContaining(d.mainDir, t), t).toEqual([]);
      expect(await filesContaining(d.agents.get('h1')!.dir, t), t).toEqual([]);
      expect(d.logs()).not.toContain(t);
    }
  });
});
