/**
 * Integration instances end to end with real processes (main, host h1, tenants ia and ib) and local fakes:
 * the AWS fake (STS, S3; SigV4 checked with the secret it was given) reached through each connection's
 * endpointUrl and stsEndpointUrl, and an HTTPS REST fake for the http integration. Instances are created,
 * tested and run through the CLI; AssumeRole sends the tenant's own ExternalId, the one `integrations show`
 * prints; tenant ib cannot assume ia's role; runs are audited with their caller; bad args answer 400 naming
 * the field; a malformed custom integration is refused at publish, a good one runs once shared. At the end,
 * with every process stopped, no file (stores, logs, a restored `main backup`) holds a secret in any form.
 * The fakes are on loopback, which the host lets its tenants reach only by name in its agent.json
 * (integrationLoopbackAllow; integration-targets.test.ts shows the refusal). IMDS is not exercised here: a
 * tenant is refused the instance role; the AWS library's own tests cover it (test/integration/aws-auth.test.ts).
 * Instances on engines: integrations-engine.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createCa, issueServerCert } from '#common/pki.js';
import { Deployment } from '../harness/deployment.js';
import { runCli, until, type CliResult } from '../harness/processes.js';
import { FakeAws, type FakeIdentity } from '../harness/aws-fake.js';
import type { ErrorBody } from '../harness/api-shapes.js';
import { filesContaining, filesUnder } from '../harness/data-scan.js';

let d: Deployment;
let aws: FakeAws;
let mssp: FakeIdentity;
let rest: Server;
const restSeen: { path: string; authorization?: string }[] = [];
// Long and random: LevelDB compresses its files (snappy), and only an incompressible secret is sure to lie there as is.
const BEARER = `bearer-${randomBytes(48).toString('base64url')}`;
const PASSPHRASE = `backup passphrase ${randomBytes(12).toString('hex')}`;
const ROLE_A = 'arn:aws:iam::111122223333:role/PalisadeReadOnly';

const cli = (args: string[], stdin?: string): Promise<CliResult> => runCli(args, d.env, 60_000, stdin);
const ok = async (args: string[], stdin?: string): Promise<CliResult> => {
  const r = await cli(args, stdin);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
  return r;
};

async function awsConnection(tenant: string): Promise<void> {
  await ok(
    [
      ...['connections', 'create', 'acct', '--tenant', tenant, '--type', 'aws'],
      ...['--set', 'region=eu-west-1', '--set', `accessKeyId=${mssp.accessKeyId}`],
      ...['--set', `endpointUrl=${aws.url}`, '--set', `stsEndpointUrl=${aws.url}`, '--secret-stdin'],
    ],
    `${mssp.secretAccessKey}\n`,
  );
  await ok(['integrations', 'create', 'aws1', '--tenant', tenant, '--integration', 'aws', '--connection', 'acct']);
}

beforeAll(async () => {
  aws = new FakeAws();
  await aws.start();
  mssp = aws.addIdentity({
    accessKeyId: 'AKIAMSSPFAKE00000001',
    secretAccessKey: `mssp/${randomBytes(30).toString('base64')}`,
    arn: 'arn:aws:iam::999988887777:user/palisade',
    account: '999988887777',
  });
  const ca = await createCa('fake REST CA');
  const leaf = await issueServerCert(ca, ['127.0.0.1', 'localhost']);
  rest = createServer({ key: leaf.keyPem, cert: leaf.certPem }, (req, res) => {
    restSeen.push({ path: req.url ?? '', authorization: req.headers.authorization });
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ tickets: [{ id: 7, title: 'phish' }] }));
  });
  await new Promise<void>((r) => rest.listen(0, '127.0.0.1', r));
  d = await Deployment.create();
  await d.install('host', 'h1');
  // The fakes listen on loopback, the host itself, which its tenants' integrations reach only where it says so
  // (and port 9, where nothing listens); integration-targets.test.ts shows the refusal.
  const restPort = (rest.address() as AddressInfo).port;
  d.configure('h1', { integrationLoopbackAllow: [`127.0.0.1:${aws.port}`, `127.0.0.1:${restPort}`, '127.0.0.1:9'] });
  await d.startAgent('h1');
  await d.createTenant('ia', 'h1');
  await d.createTenant('ib', 'h1');
  await awsConnection('ia');
  await awsConnection('ib');
}, 240_000);
afterAll(async () => {
  await d?.stop();
  await aws?.close();
  rest?.closeAllConnections();
  await new Promise((r) => (rest ? rest.close(r) : r(undefined)));
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('aws instances', () => {
  it('test prints the account and ARN; run s3.list-buckets returns the buckets', async () => {
    const t = await ok(['integrations', 'test', 'aws1', '--tenant', 'ia']);
    expect(t.stdout).toContain(`account 999988887777 as ${mssp.arn}`);
    const run = await ok(['integrations', 'run', 'aws1', 's3.list-buckets', '--tenant', 'ia', '--json']);
    const r = run.json as { command: string; result: { buckets: { name: string }[] } };
    expect(r.command).toBe('s3.list-buckets');
    expect(r.result.buckets.map((b) => b.name)).toEqual(['logs-999988887777']);
    expect(aws.of('s3').at(-1)?.verified).toBe(true);
  });

  it("AssumeRole with roleArn sends the tenant's ExternalId, the one show prints; another tenant is refused", async () => {
    const shown = await ok(['integrations', 'show', 'aws1', '--tenant', 'ia', '--json']);
    const externalIdA = (shown.json as { externalId: string }).externalId;
    expect(externalIdA).toMatch(/^palisade-ia-[0-9a-f]{32}$/);
    const text = await ok(['integrations', 'show', 'aws1', '--tenant', 'ia']);
    expect(text.stdout).toContain(`(sts:ExternalId): ${externalIdA}`);
    expect(text.stdout).not.toContain('{'); // a person's view; JSON only with --json
    aws.addRole({ arn: ROLE_A, trusts: [mssp.arn], externalId: externalIdA });

    const args = JSON.stringify({ roleArn: ROLE_A });
    const run = await ok(['integrations', 'run', 'aws1', 'sts.get-caller-identity', '--tenant', 'ia', '--args', args]);
    expect(run.stdout).toContain('assumed-role/PalisadeReadOnly/palisade-ia');
    const assumed = aws.of('AssumeRole').at(-1)!.form;
    expect(assumed).toMatchObject({ RoleArn: ROLE_A, ExternalId: externalIdA, RoleSessionName: 'palisade-ia' });
    expect(assumed.DurationSeconds).toBe('900');

    const externalIdB = (
      (await ok(['integrations', 'show', 'aws1', '--tenant', 'ib', '--json'])).json as {
        externalId: string;
      }
    ).externalId;
    expect(externalIdB).not.toBe(externalIdA);
    const path = '/tenants/ib/api/integrations/aws1/run';
    const refused = await d.api<ErrorBody>('POST', path, { command: 's3.list-buckets', args: { roleArn: ROLE_A } });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('ERR_AWS_ASSUME_ROLE_DENIED');
    expect(refused.body.error.message).toContain(`AssumeRole denied for ${ROLE_A} — is ExternalId ${externalIdB}`);
    expect(aws.of('AssumeRole').at(-1)!.form.ExternalId).toBe(externalIdB);
  });

  it('bad args answer 400 naming the field; an unknown command names the commands there are', async () => {
    const path = '/tenants/ia/api/integrations/aws1/run';
    const bad = await d.api<ErrorBody>('POST', path, { command: 's3.list-buckets', args: { maxResults: 0 } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'ERR_INTEGRATION_ARGS' });
    expect(bad.body.error.message).toMatch(/^args\.maxResults: /);
    const extra = await cli(['integrations', 'run', 'aws1', 's3.list-buckets', '--tenant', 'ia', '--args', '{"x":1}']);
    expect(extra.code).toBe(2);
    expect(extra.stderr).toContain('args.x: is not a known field (ERR_INTEGRATION_ARGS)');
    const unknown = await d.api<ErrorBody>('POST', path, { command: 's3.delete-bucket' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toContain('it has sts.get-caller-identity, s3.list-buckets');
  });

  it('temporary keys, given as SECRET@@@SESSIONTOKEN, sign with the key and send the session token', async () => {
    const temp = aws.addIdentity({
      accessKeyId: 'ASIATEMPFAKE00000001',
      secretAccessKey: randomBytes(30).toString('base64'),
      sessionToken: randomBytes(96).toString('base64'),
      arn: 'arn:aws:sts::999988887777:assumed-role/Soc/temp',
      account: '999988887777',
    });
    await ok(
      [
        ...['connections', 'create', 'temp', '--tenant', 'ib', '--type', 'aws', '--set', 'region=eu-west-1'],
        ...['--set', `accessKeyId=${temp.accessKeyId}`, '--set', `stsEndpointUrl=${aws.url}`, '--secret-stdin'],
      ],
      `${temp.secretAccessKey}@@@${temp.sessionToken}\n`,
    );
    await ok(['integrations', 'create', 'aws-temp', '--tenant', 'ib', '--integration', 'aws', '--connection', 'temp']);
    const run = await ok(['integrations', 'run', 'aws-temp', 'sts.get-caller-identity', '--tenant', 'ib', '--json']);
    expect((run.json as { result: { arn: string } }).result.arn).toBe(temp.arn);
    const seen = aws.of('GetCallerIdentity').at(-1)!;
    expect(seen.verified).toBe(true);
    expect(seen.headers['x-amz-security-token']).toBe(temp.sessionToken);
  });

  it("a connection set with DESIGN.md's names is used under them: endpoint, stsEndpoint, retries", async () => {
    await ok(
      [
        ...['connections', 'create', 'design', '--tenant', 'ia', '--type', 'aws', '--set', 'region=eu-west-1'],
        ...[
          '--set',
          `accessKeyId=${mssp.accessKeyId}`,
          '--set',
          `endpoint=${aws.url}`,
          '--set',
          `stsEndpoint=${aws.url}`,
        ],
        ...['--set', 'retries=1', '--set', 'stsRegionalEndpoint=on', '--secret-stdin'],
      ],
      `${mssp.secretAccessKey}\n`,
    );
    const shown = (await ok(['connections', 'show', 'design', '--tenant', 'ia', '--json'])).json as {
      settings: Record<string, unknown>;
    };
    expect(shown.settings).toMatchObject({ endpoint: aws.url, endpointUrl: aws.url, stsEndpoint: aws.url });
    expect(shown.settings).toMatchObject({ retries: 1, maxAttempts: 2, stsRegionalEndpoint: 'on' });
    await ok([
      'integrations',
      'create',
      'aws-design',
      '--tenant',
      'ia',
      '--integration',
      'aws',
      '--connection',
      'design',
    ]);
    const before = aws.of('s3').length;
    await ok(['integrations', 'run', 'aws-design', 's3.list-buckets', '--tenant', 'ia']);
    expect(aws.of('s3').length - before).toBe(1);
    // retries 1 is two attempts; set to 0 over REST, one.
    aws.override = (r) =>
      r.form.Action === 'GetCallerIdentity' ? { status: 503, code: 'ServiceUnavailable' } : undefined;
    try {
      const path = '/tenants/ia/api/integrations/aws-design/run';
      for (const [retries, attempts] of [
        [1, 2],
        [0, 1],
      ]) {
        if (retries === 0) {
          const u = await d.api<{ settings: Record<string, unknown> }>('PATCH', '/tenants/ia/api/connections/design', {
            settings: { retries },
          });
          expect(u.body.settings).toMatchObject({ retries: 0, maxAttempts: 1 });
        }
        const from = aws.of('GetCallerIdentity').length;
        const r = await d.api<ErrorBody>('POST', path, { command: 'sts.get-caller-identity' });
        expect(r.body.error).toMatchObject({ code: 'ERR_AWS_SERVICE' });
        expect(aws.of('GetCallerIdentity').length - from).toBe(attempts);
      }
    } finally {
      aws.override = undefined;
    }
    await ok(['integrations', 'remove', 'aws-design', '--tenant', 'ia']);
  });

  it('an unreachable AWS endpoint is a 424 (a dependency failed), naming the host', async () => {
    // A new endpoint takes the secret again (it decides where the secret's signatures and token go).
    await ok(
      ['connections', 'update', 'acct', '--tenant', 'ib', '--set', 'endpointUrl=http://127.0.0.1:9', '--secret-stdin'],
      `${mssp.secretAccessKey}\n`,
    );
    const r = await d.api<ErrorBody>('POST', '/tenants/ib/api/integrations/aws1/run', { command: 's3.list-buckets' });
    expect(r.status).toBe(424);
    expect(r.body.error).toMatchObject({ code: 'ERR_AWS_UNREACHABLE' });
    expect(r.body.error.message).toContain('cannot reach 127.0.0.1:9');
  });

  it('analysts may run instances, viewers may not; the audit names each caller', async () => {
    const analyst = await d.createUser({ name: 'soc-ana', roles: ['analyst'] });
    const viewer = await d.createUser({ name: 'soc-view', roles: ['viewer'] });
    const body = { command: 'iam.list-users', args: { maxResults: 5 } };
    const path = '/tenants/ia/api/integrations/aws1/run';
    const ran = await d.api<{ result: { users: { userName: string }[] } }>('POST', path, body, {
      key: await d.createKey(analyst.id),
    });
    expect(ran.status, ran.raw).toBe(200);
    expect(ran.body.result.users.map((u) => u.userName)).toEqual(['alice']);
    const refused = await d.api<ErrorBody>('POST', path, body, { key: await d.createKey(viewer.id) });
    expect(refused.status).toBe(403);
    expect(refused.body.error.message).toContain('lacks "integrations:run"');
    const audit = await d.api<{ actor: string; action: string; outcome: string; detail?: Record<string, unknown> }[]>(
      'GET',
      '/tenants/ia/api/audit?action=integration.run&limit=20',
    );
    expect(audit.body.find((e) => e.actor === 'soc-ana (via main)')).toMatchObject({
      outcome: 'ok',
      detail: { command: 'iam.list-users', args: { maxResults: 5 } },
    });
  });

  it('the audit has each run with its caller, command, args and outcome, and no secret', async () => {
    const audit = await d.api<{ actor: string; action: string; outcome: string; detail?: Record<string, unknown> }[]>(
      'GET',
      '/tenants/ia/api/audit?action=integration.&limit=50',
    );
    const runs = audit.body.filter((e) => e.action === 'integration.run');
    const assumed = runs.find((e) => (e.detail?.args as { roleArn?: string })?.roleArn === ROLE_A);
    expect(assumed).toMatchObject({ outcome: 'ok' });
    expect(assumed?.actor).toMatch(/^\S+ \(via main\)$/);
    expect(assumed?.detail).toMatchObject({ command: 'sts.get-caller-identity' });
    expect(typeof assumed?.detail?.durationMs).toBe('number');
    expect(runs.some((e) => e.outcome === 'failed' && e.detail?.command === 's3.list-buckets')).toBe(true);
    expect(audit.body.some((e) => e.action === 'integration.test')).toBe(true);
    expect(audit.raw).not.toContain(mssp.secretAccessKey);
  });

  it('an instance bound to an engine or group the tenant has no session with says so, and runs nowhere else', async () => {
    const before = aws.requests.length;
    for (const [name, runOn] of [
      ['aws-eng', 'engine:e1'],
      ['aws-grp', 'group:g1'],
    ])
      await ok(
        ['integrations', 'create', name, '--tenant', 'ia', '--integration', 'aws', '--connection', 'acct'].concat([
          '--run-on',
          runOn,
        ]),
      );
    const engine = await d.api<ErrorBody>('POST', '/tenants/ia/api/integrations/aws-eng/test', {});
    expect(engine.status).toBe(503);
    expect(engine.body.error.code).toBe('ERR_ENGINE_OFFLINE');
    expect(engine.body.error.message).toContain('engine "e1" has no session with tenant ia');
    const group = await cli(['integrations', 'run', 'aws-grp', 's3.list-buckets', '--tenant', 'ia']);
    expect(group.code).toBe(2);
    expect(group.stderr).toContain('no engine of group "g1" has connected to tenant ia since it started');
    expect(group.stderr).toContain('ERR_ENGINE_GROUP_UNKNOWN');
    expect(aws.requests).toHaveLength(before);
    const list = await ok(['integrations', 'list', '--tenant', 'ia', '--json']);
    expect((list.json as { name: string }[]).map((i) => i.name)).toEqual(['aws-eng', 'aws-grp', 'aws1']);
    for (const name of ['aws-eng', 'aws-grp']) await ok(['integrations', 'remove', name, '--tenant', 'ia']);
  });
});

describe('http instances and custom integrations', () => {
  const baseUrl = () => `https://127.0.0.1:${(rest.address() as AddressInfo).port}/api`;

  it('sends the bearer token to the service; TLS verification is on unless the connection turns it off', async () => {
    await ok(
      [
        ...['connections', 'create', 'tickets', '--tenant', 'ia', '--type', 'http', '--set', `baseUrl=${baseUrl()}`],
        ...['--set', 'authType=bearer', '--secret-stdin'],
      ],
      `${BEARER}\n`,
    );
    await ok(['integrations', 'create', 'web', '--tenant', 'ia', '--integration', 'http', '--connection', 'tickets']);
    const args = { method: 'GET', path: '/tickets', query: { open: 'true' } };
    const path = '/tenants/ia/api/integrations/web/run';
    const untrusted = await d.api<ErrorBody>('POST', path, { command: 'request', args });
    expect(untrusted.status).toBe(424);
    expect(untrusted.body.error.code).toBe('ERR_INTEGRATION_HTTP_UNREACHABLE');
    expect(untrusted.body.error.message).toContain('tlsVerify=false');

    const kept = await cli(['connections', 'update', 'tickets', '--tenant', 'ia', '--set', 'tlsVerify=false']);
    expect(kept.code, 'turning TLS verification off needs the secret again').toBe(2);
    await ok(
      ['connections', 'update', 'tickets', '--tenant', 'ia', '--set', 'tlsVerify=false', '--secret-stdin'],
      `${BEARER}\n`,
    );
    const r = await d.api<{ result: { status: number; body: unknown } }>('POST', path, { command: 'request', args });
    expect(r.status, r.raw).toBe(200);
    expect(r.body.result).toMatchObject({ status: 200, body: { tickets: [{ id: 7, title: 'phish' }] } });
    expect(restSeen.at(-1)).toEqual({ path: '/api/tickets?open=true', authorization: `Bearer ${BEARER}` });
    expect(r.raw).not.toContain(BEARER);
  });

  it('a malformed custom integration is refused at publish naming the field; a good one runs once shared', async () => {
    const def = {
      name: 'ticketing',
      connectionType: 'http',
      commands: [
        {
          name: 'list-tickets',
          readOnly: true,
          args: { type: 'object', additionalProperties: false, properties: { query: { type: 'object' } } },
          runs: 'request',
          with: { method: 'GET', path: '/tickets' },
        },
      ],
    };
    const bad = { ...def, commands: [{ ...def.commands[0], runs: 'delete-everything' }] };
    const create = async (body: unknown) =>
      (
        await ok(
          ['content', 'create', '--type', 'integration', '--name', 'Ticketing', '--labels', 'all'].concat([
            '--body',
            JSON.stringify(body),
            '--json',
          ]),
        )
      ).json as { id: string };
    const malformed = await create(bad);
    const refused = await cli(['content', 'publish', malformed.id]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('commands[0].runs: must be a command of the http integration: request');
    expect(refused.stderr).toContain('ERR_INTEGRATION_DEFINITION');

    const good = await create(def);
    await ok(['content', 'publish', good.id]);
    await ok(['content', 'share', good.id]);
    await until('ticketing shared to ia', async () => {
      const r = await d.api<{ id: string }[]>('GET', '/tenants/ia/api/content?type=integration');
      return r.status === 200 && r.body.some((i) => i.id === good.id);
    });
    await ok([
      'integrations',
      'create',
      'tix',
      '--tenant',
      'ia',
      '--integration',
      'ticketing',
      '--connection',
      'tickets',
    ]);
    const run = await ok(['integrations', 'run', 'tix', 'list-tickets', '--tenant', 'ia', '--json']);
    expect((run.json as { result: { body: unknown } }).result.body).toEqual({ tickets: [{ id: 7, title: 'phish' }] });
    expect(restSeen.at(-1)?.path).toBe('/api/tickets');
    const wrong = await cli(
      ['integrations', 'create', 'tix2', '--tenant', 'ia', '--integration', 'ticketing'].concat([
        '--connection',
        'acct',
      ]),
    );
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('connection: acct is of type aws; ticketing needs an http connection');
  });
});

describe('after the runs', () => {
  it("no file, log or backup of the deployment holds a secret: the keys, the tokens, the assumed roles'", async () => {
    const temporary = [...aws.identities.values()].filter((i) => i.accessKeyId.startsWith('ASIA'));
    expect(temporary.length, 'temporary keys and assumed roles were used').toBeGreaterThan(1);
    const secrets = [mssp.secretAccessKey, BEARER, ...temporary.flatMap((i) => [i.secretAccessKey, i.sessionToken!])];
    // Main's backup, taken live and restored into a directory of its own: secrets never reach main.
    const pass = join(d.dir, 'backup-passphrase');
    await writeFile(pass, `${PASSPHRASE}\n`, { mode: 0o600 });
    const archive = join(d.dir, 'main.backup');
    await ok(['main', 'backup', '--data', d.mainDir, '--out', archive, '--passphrase-file', pass]);
    await ok(['main', 'restore', '--in', archive, '--data', join(d.dir, 'main-restored'), '--passphrase-file', pass]);
    // Every process stopped: logs flushed, stores closed (the host stops its tenants first).
    await d.agents.get('h1')!.proc!.stop();
    await d.main!.stop();
    const files = await filesUnder(d.dir);
    expect(files.some((f) => f.endsWith('tenant.log'))).toBe(true);
    expect(files.some((f) => f.includes('main-restored'))).toBe(true);
    for (const s of secrets)
      for (const form of [s, Buffer.from(s).toString('hex'), Buffer.from(s).toString('base64')])
        expect(await filesContaining(d.dir, form), `a secret as ${form}`).toEqual([]);
    for (const s of secrets) expect(d.logs().includes(s), 'a secret in a log').toBe(false);
  });
});
