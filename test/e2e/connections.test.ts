/**
 * Connections end to end with real processes (main, host h1, tenants ca and cb): created, listed, shown,
 * updated and removed through the CLI (secrets sealed to the tenant) and REST (a clear secret over HTTPS);
 * the secret never comes back; bad input exits 2 or answers 400 naming the field and changes nothing; a
 * user of cb cannot reach ca's connections; every change is audited with its caller; and at the end no
 * file of the deployment (main's data, the host, the tenants' stores and logs) holds a secret in clear,
 * in base64 or in hex.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sealSecretFor } from '#common/sealed-secret.js';
import type { ConnectionView } from '#common/connections.js';
import { Deployment } from '../harness/deployment.js';
import { runCli, tempDir, type CliResult } from '../harness/processes.js';
import type { ErrorBody } from '../harness/api-shapes.js';
import { filesContaining } from '../harness/data-scan.js';
import { tenantDir } from './tenants-fixtures.js';

let d: Deployment;
let inputs: string;
/** Every secret handed to a tenant here: none may show up anywhere. */
const secrets: string[] = [];
const newSecret = (kind: string) => {
  const s = `${kind}-${randomUUID()}-${randomUUID()}`;
  secrets.push(s);
  return s;
};
const ACCESS_KEY_ID = `AKIA${randomUUID().replace(/-/g, '').toUpperCase().slice(0, 16)}`;

const cli = (args: string[], stdin?: string): Promise<CliResult> =>
  runCli(['connections', ...args], d.env, 60_000, stdin);
const conns = (tenant: string, rest = '') => `/tenants/${tenant}/api/connections${rest}`;
const noSecretIn = (text: string) => {
  for (const s of secrets) expect(text.includes(s), 'a secret came back').toBe(false);
};

beforeAll(async () => {
  d = await Deployment.create();
  inputs = await tempDir('palisade-conn-inputs-'); // outside the deployment: the scan must not find these files
  await d.install('host', 'h1');
  await d.startAgent('h1');
  await d.createTenant('ca', 'h1');
  await d.createTenant('cb', 'h1');
}, 180_000);
afterAll(async () => {
  if (inputs) await rm(inputs, { recursive: true, force: true });
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('connections', () => {
  it('are created, listed, shown, updated and removed through the CLI; the secret never comes back', async () => {
    const file = join(inputs, 'aws-secret');
    await writeFile(file, `${newSecret('AWSSECRET')}\n`, { mode: 0o600 });
    const created = await cli([
      'create',
      'prod',
      '--tenant',
      'ca',
      '--type',
      'aws',
      '--set',
      'region=eu-west-1',
      '--set',
      `accessKeyId=${ACCESS_KEY_ID}`,
      '--set',
      'roleArn=arn:aws:iam::123456789012:role/SocReader',
      '--set',
      'sessionDuration=1800',
      '--secret-file',
      file,
      '--json',
    ]);
    expect(created.code, created.stderr).toBe(0);
    const c = created.json as ConnectionView & Record<string, unknown>;
    expect(c).toMatchObject({ name: 'prod', type: 'aws', hasSecret: true });
    expect(c.settings).toEqual({
      region: 'eu-west-1',
      accessKeyId: ACCESS_KEY_ID,
      roleArn: 'arn:aws:iam::123456789012:role/SocReader',
      sessionDuration: 1800,
      stsRegionalEndpoints: true,
      // DESIGN.md's names beside ours, in their form.
      roleSessionDuration: 1800,
      stsRegionalEndpoint: 'on',
    });
    expect(Object.keys(c)).not.toContain('secret');
    expect(Object.keys(c)).not.toContain('sealedSecret');
    await rm(file);

    const bearer = await cli(
      [
        'create',
        'ticketing',
        '--tenant',
        'ca',
        '--type',
        'http',
        '--set',
        'baseUrl=https://tickets.example/api',
        '--set',
        'authType=bearer',
        '--secret-stdin',
      ],
      `${newSecret('BEARER')}\n`,
    );
    expect(bearer.code, bearer.stderr).toBe(0);
    expect(bearer.stdout).toMatch(/connection ticketing \(http\) created in tenant ca: .*secret set/);

    const list = await cli(['list', '--tenant', 'ca', '--json']);
    expect(list.code).toBe(0);
    expect((list.json as ConnectionView[]).map((x) => [x.name, x.hasSecret])).toEqual([
      ['prod', true],
      ['ticketing', true],
    ]);
    const text = await cli(['list', '--tenant', 'ca']);
    expect(text.stdout).toMatch(/^prod\s+aws\s+set\s/m);

    const updated = await cli(
      ['update', 'prod', '--tenant', 'ca', '--set', 'maxAttempts=5', '--unset', 'roleArn', '--secret-stdin', '--json'],
      newSecret('AWSSECRET2'),
    );
    expect(updated.code, updated.stderr).toBe(0);
    const u = updated.json as ConnectionView;
    expect(u.settings).toMatchObject({ maxAttempts: 5, retries: 4 });
    expect(u.settings.roleArn).toBeUndefined();
    // DESIGN.md's names on the CLI: retries N is maxAttempts N+1; --unset takes them too.
    const design = await cli([
      'update',
      'prod',
      '--tenant',
      'ca',
      '--set',
      'retries=1',
      '--unset',
      'roleSessionDuration',
    ]);
    expect(design.code, design.stderr).toBe(0);
    const after = (await cli(['show', 'prod', '--tenant', 'ca', '--json'])).json as ConnectionView;
    expect(after.settings).toMatchObject({ maxAttempts: 2, retries: 1 });
    expect(after.settings.sessionDuration).toBeUndefined();
    expect(u.hasSecret).toBe(true);
    expect(u.updatedAt >= u.createdAt).toBe(true);

    const cleared = await cli(
      ['update', 'ticketing', '--tenant', 'ca', '--set', 'authType=none', '--clear-secret', '--json'],
      undefined,
    );
    expect(cleared.code, cleared.stderr).toBe(0);
    expect((cleared.json as ConnectionView).hasSecret).toBe(false);

    const show = await cli(['show', 'prod', '--tenant', 'ca']);
    expect(show.code).toBe(0);
    // For a person: what it is and whether it has a secret, then a setting a line (JSON only with --json).
    expect(show.stdout).toMatch(/^connection prod \(aws\), secret set\n {2}region +eu-west-1\n/);
    expect(show.stdout).not.toContain('{');
    const removed = await cli(['remove', 'ticketing', '--tenant', 'ca']);
    expect(removed.stdout.trim()).toBe('connection ticketing removed from tenant ca');
    const gone = await cli(['show', 'ticketing', '--tenant', 'ca']);
    expect(gone.code).toBe(2);
    expect(gone.stderr).toContain('ERR_CONNECTION_NOT_FOUND');
    for (const r of [created, bearer, list, text, updated, cleared, show, removed, gone])
      noSecretIn(r.stdout + r.stderr);
  });

  it('take a clear secret over REST and never answer with it', async () => {
    const r = await d.api<ConnectionView>('POST', conns('ca'), {
      name: 'itsm',
      type: 'http',
      settings: { baseUrl: 'https://itsm.example', authType: 'basic', username: 'svc-palisade', tlsVerify: false },
      secret: newSecret('BASICPW'),
    });
    expect(r.status, r.raw).toBe(201);
    expect(r.body).toMatchObject({ name: 'itsm', hasSecret: true, updatedBy: expect.any(String) as string });
    const p = await d.api<ConnectionView>('PATCH', conns('ca', '/itsm'), { secret: newSecret('BASICPW2') });
    expect(p.status, p.raw).toBe(200);
    const all = await d.api<ConnectionView[]>('GET', conns('ca'));
    const one = await d.api<ConnectionView>('GET', conns('ca', '/itsm'));
    // Ours, and DESIGN.md's names beside them (auth, verifyTls).
    expect(one.body.settings).toEqual({
      baseUrl: 'https://itsm.example',
      authType: 'basic',
      username: 'svc-palisade',
      tlsVerify: false,
      auth: 'basic',
      verifyTls: false,
    });
    for (const x of [r, p, all, one]) noSecretIn(x.raw);
    // Its secret does not follow it elsewhere: a new baseUrl (or auth) needs the secret again, or changes nothing.
    const moved = await d.api<{ error: { code: string; message: string } }>('PATCH', conns('ca', '/itsm'), {
      settings: { baseUrl: 'https://collector.attacker.example' },
    });
    expect(moved.status, moved.raw).toBe(400);
    expect(moved.body.error.code).toBe('ERR_CONNECTION_SECRET');
    expect(moved.body.error.message).toContain('changing baseUrl changes where the secret goes');
    expect((await d.api<ConnectionView>('GET', conns('ca', '/itsm'))).body.settings.baseUrl).toBe(
      'https://itsm.example',
    );
    const withSecret = await d.api<ConnectionView>('PATCH', conns('ca', '/itsm'), {
      settings: { baseUrl: 'https://itsm2.example' },
      secret: newSecret('BASICPW3'),
    });
    expect(withSecret.status, withSecret.raw).toBe(200);
    expect(withSecret.body).toMatchObject({ hasSecret: true, settings: { baseUrl: 'https://itsm2.example' } });
  });

  it('refuse bad input naming the field (CLI exit 2, REST 400) and change nothing', async () => {
    const before = await d.api<ConnectionView[]>('GET', conns('ca'));
    const cliCases: [string[], string][] = [
      [['create', 'bad', '--type', 'aws', '--set', 'region=Europe'], 'settings.region'],
      [['create', 'bad', '--type', 'ftp', '--set', 'region=eu-west-1'], 'type'],
      [['create', 'bad', '--type', 'aws', '--set', 'region=eu-west-1', '--set', 'externalId=x'], 'settings.externalId'],
      [['create', 'bad', '--type', 'aws', '--set', 'region'], '--set region'],
      [['create', 'Bad_Name', '--type', 'aws', '--set', 'region=eu-west-1'], 'name'],
      [
        ['create', 'bad', '--type', 'aws', '--set', 'region=eu-west-1', '--set', 'accessKeyId=AKIAIOSFODNN7EXAMPLE'],
        'secret',
      ],
      [['update', 'prod', '--set', 'sessionDuration=60'], 'settings.sessionDuration'],
      [['update', 'prod', '--unset', 'colour'], 'settings.colour'],
      [['update', 'prod', '--clear-secret'], 'secret'], // prod has an access key id: it needs its secret
      [['update', 'prod'], '--set'],
    ];
    for (const [args, field] of cliCases) {
      const r = await cli([...args, '--tenant', 'ca']);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toContain(field);
    }
    const empty = await cli(
      [
        'create',
        'bad',
        '--tenant',
        'ca',
        '--type',
        'http',
        '--set',
        'baseUrl=https://x.example',
        '--set',
        'authType=bearer',
        '--secret-stdin',
      ],
      '',
    );
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('secret: is empty');

    const sealedForProd = sealSecretFor(
      (await d.api<{ publicKey: string }>('GET', '/tenants/ca/api/info')).body.publicKey,
      'ca',
      'prod',
      newSecret('REPLAYED'),
    );
    const restCases: [string, string, unknown, string, string][] = [
      [
        'POST',
        conns('ca'),
        { name: 'bad', type: 'aws', settings: { region: 'eu-west-1', colour: 'red' } },
        'ERR_CONNECTION_SETTING',
        'settings.colour',
      ],
      ['POST', conns('ca'), { name: 'bad', type: 'smtp' }, 'ERR_BAD_REQUEST', 'body.type'],
      [
        'POST',
        conns('ca'),
        { name: 'bad', type: 'aws', settings: { region: 'eu-west-1' }, secret: 'a', sealedSecret: 'b' },
        'ERR_CONNECTION_SECRET',
        'secret',
      ],
      // Sealed for connection prod: replayed into another name it does not open.
      [
        'POST',
        conns('ca'),
        {
          name: 'bad',
          type: 'aws',
          settings: { region: 'eu-west-1', accessKeyId: ACCESS_KEY_ID },
          sealedSecret: sealedForProd,
        },
        'ERR_CONNECTION_SEALED',
        'sealedSecret',
      ],
      [
        'POST',
        conns('cb'),
        {
          name: 'prod',
          type: 'aws',
          settings: { region: 'eu-west-1', accessKeyId: ACCESS_KEY_ID },
          sealedSecret: sealedForProd,
        },
        'ERR_CONNECTION_SEALED',
        'sealedSecret',
      ],
      ['PATCH', conns('ca', '/prod'), { unset: ['region'] }, 'ERR_CONNECTION_SETTING', 'settings.region'],
      [
        'PATCH',
        conns('ca', '/prod'),
        { settings: { maxAttempts: 0 } },
        'ERR_CONNECTION_SETTING',
        'settings.maxAttempts',
      ],
      ['PATCH', conns('ca', '/prod'), { type: 'http' }, 'ERR_BAD_REQUEST', 'body.type'],
    ];
    for (const [method, path, body, code, field] of restCases) {
      const r = await d.api<ErrorBody>(method, path, body);
      expect(r.status, `${method} ${path} ${JSON.stringify(body)}: ${r.raw}`).toBe(400);
      expect(r.body.error.code).toBe(code);
      expect(r.body.error.message.startsWith(field), r.body.error.message).toBe(true);
    }
    expect((await d.api<ConnectionView[]>('GET', conns('ca'))).body).toEqual(before.body);
    expect((await d.api<ConnectionView[]>('GET', conns('cb'))).body).toEqual([]);
  });

  it("are out of reach of tenant cb's users, and need the connections permissions in their own tenant", async () => {
    const cbAdmin = await d.createUser({ name: 'cb-admin', roles: ['admin'] }, '/tenants/cb/api/users');
    const tenantKey = await d.createKey(cbAdmin.id, '/tenants/cb/api/apikeys');
    const mainCustomer = await d.createUser({ name: 'cb-main', tenant: 'cb', roles: ['admin'] });
    const mainKey = await d.createKey(mainCustomer.id);
    for (const key of [tenantKey, mainKey]) {
      for (const [method, path] of [
        ['GET', conns('ca')],
        ['GET', conns('ca', '/prod')],
        ['DELETE', conns('ca', '/prod')],
      ] as const) {
        const r = await d.api(method, path, undefined, { key });
        expect(r.status, `${method} ${path}`).toBe(404);
        expect(r.raw).not.toContain('eu-west-1');
      }
      // In their own tenant, a customer admin manages connections.
      expect((await d.api('GET', conns('cb'), undefined, { key })).status).toBe(200);
    }
    const own = await d.api<ConnectionView>(
      'POST',
      conns('cb'),
      {
        name: 'siem',
        type: 'http',
        settings: { baseUrl: 'https://siem.example', authType: 'bearer' },
        secret: newSecret('CBTOKEN'),
      },
      { key: tenantKey },
    );
    expect(own.status, own.raw).toBe(201);
    expect(own.body.updatedBy).toBe('cb-admin');
    // A read-only user of ca may neither read nor write them.
    const ro = await d.createUser({ name: 'ca-ro', roles: ['read-only'] }, '/tenants/ca/api/users');
    const roKey = await d.createKey(ro.id, '/tenants/ca/api/apikeys');
    expect((await d.api('GET', conns('ca'), undefined, { key: roKey })).status).toBe(403);
    expect((await d.api('DELETE', conns('ca', '/prod'), undefined, { key: roKey })).status).toBe(403);
    expect((await d.api('GET', conns('ca', '/prod'))).status).toBe(200);
  });

  it('are audited in their tenant with the caller and never the secret', async () => {
    const a = await d.api<{ actor: string; action: string; target: string; detail?: Record<string, unknown> }[]>(
      'GET',
      '/tenants/ca/api/audit?action=connection.&limit=100',
    );
    expect(a.status).toBe(200);
    const seen = a.body.map((e) => `${e.action} ${e.target}`);
    for (const want of [
      'connection.create prod',
      'connection.update prod',
      'connection.remove ticketing',
      'connection.create itsm',
    ])
      expect(seen).toContain(want);
    const create = a.body.find((e) => e.action === 'connection.create' && e.target === 'prod')!;
    expect(create.actor).toMatch(/\S/);
    expect(create.detail).toMatchObject({ type: 'aws', secret: 'sealed' });
    expect(a.body.find((e) => e.action === 'connection.create' && e.target === 'itsm')!.detail).toMatchObject({
      secret: 'clear',
    });
    noSecretIn(a.raw);
  });

  it('leave no secret in clear, base64 or hex in any file of the deployment or any process output', async () => {
    // Stopped: the tenants' logs are flushed and their stores closed before the scan.
    for (const t of ['ca', 'cb']) expect((await d.api('POST', `/tenants/${t}/stop`, {})).status).toBe(200);
    // The scan can find what is there: the access key id (not a secret) is in ca's store.
    expect(await filesContaining(join(tenantDir(d, 'ca'), 'store'), ACCESS_KEY_ID)).not.toEqual([]);
    expect(secrets.length).toBeGreaterThanOrEqual(7);
    for (const s of secrets)
      for (const form of [s, Buffer.from(s).toString('hex')])
        expect(await filesContaining(d.dir, form), `${s} as ${form === s ? 'text' : 'hex'}`).toEqual([]);
    noSecretIn(d.logs());
  });
});
