/**
 * Integration instances that run on an engine (`--run-on engine:E|group:G`), end to end with real main, host,
 * tenant and engine processes and local fakes (AWS with SigV4 checked, IMDSv2, a REST service). Engines a1, a2
 * (group a) may reach the fakes, the IMDS fake by its exact address; b1 (group b) may reach only the REST service and
 * 127.0.0.0/8, a CIDR, which never opens a loopback (or link-local, metadata) address. Shown: the same AWS command
 * reaches the fake through a1/a2 and is refused through b1 (403 naming the destination, nothing recorded by the fake,
 * the refusal in main's audit); AWS's own failures come back from an engine exactly as from a tenant; keyless AWS
 * uses the engine's instance role over IMDSv2 only where the allow-list names IMDS exactly (on a tenant it stays
 * refused); the http integration runs on an engine; a read-only command moves to the other engine of its group when
 * its engine is killed, a write command is never run twice, and with no engine of the group left nothing lands on
 * b1. No secret is found in any file or log of the deployment, the engines' and
 * host's logs read explicitly.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Deployment } from '../harness/deployment.js';
import { runCli, until, type CliResult } from '../harness/processes.js';
import { FakeAws, type FakeIdentity } from '../harness/aws-fake.js';
import { FakeImds } from '../harness/imds-fake.js';
import { socketOwner } from '../harness/socket-owner.js';
import { filesContaining } from '../harness/data-scan.js';
import type { ErrorBody } from '../harness/api-shapes.js';
import type { AuditRow } from './tunnel-suite.js';

interface Ran {
  engine: string;
  group: string | null;
  failedOver?: string[];
  result: Record<string, unknown>;
}

let d: Deployment;
let aws: FakeAws;
let imds: FakeImds;
let rest: Server;
let mssp: FakeIdentity;
let instanceRole: FakeIdentity;
const restSeen: { path: string; authorization?: string; remotePort: number }[] = [];
const held: ServerResponse[] = [];
const BEARER = `bearer-${randomBytes(16).toString('hex')}`;
const portOf = (s: { address(): unknown }) => (s.address() as AddressInfo).port;
const imdsPort = () => Number(new URL(imds.url).port);
let engineEnv: NodeJS.ProcessEnv = {};

const cli = (args: string[], stdin?: string): Promise<CliResult> => runCli(args, d.env, 60_000, stdin);
const ok = async (args: string[], stdin?: string): Promise<CliResult> => {
  const r = await cli(args, stdin);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
  return r;
};
const run = <T = Ran>(instance: string, command: string, args?: unknown) =>
  d.api<T>('POST', `/tenants/cust/api/integrations/${instance}/run`, { command, ...(args ? { args } : {}) });
const enginePids = () => Object.fromEntries(['a1', 'a2'].map((n) => [n, d.agents.get(n)!.proc!.child.pid!]));
const sessionNames = async () => (await d.engineSessions('cust')).map((s) => s.name).sort();
const kill = async (name: string) => {
  await d.agents.get(name)!.proc!.stop('SIGKILL');
  await until(`${name}'s session gone`, async () => !(await sessionNames()).includes(name), 30_000);
};
/** Main's audit rows of refusals by engines of integration calls. */
const refusals = async () =>
  ((await d.cli(['audit', '--json'])).json as AuditRow[]).filter((e) => e.action === 'engine.integration.run');

async function instance(name: string, integration: string, connection: string, runOn: string): Promise<void> {
  await ok(
    ['integrations', 'create', name, '--tenant', 'cust', '--integration', integration].concat([
      ...['--connection', connection, '--run-on', runOn],
    ]),
  );
}

beforeAll(async () => {
  aws = new FakeAws();
  await aws.start();
  mssp = aws.addIdentity({
    accessKeyId: 'AKIAMSSPFAKE00000002',
    secretAccessKey: `mssp/${randomBytes(12).toString('base64')}`,
    arn: 'arn:aws:iam::999988887777:user/palisade',
    account: '999988887777',
  });
  instanceRole = aws.addIdentity({
    accessKeyId: 'ASIAENGINEROLE000001',
    secretAccessKey: `role/${randomBytes(12).toString('base64')}`,
    sessionToken: `token/${randomBytes(24).toString('base64')}`,
    arn: 'arn:aws:sts::111122223333:assumed-role/engine-soc/i-0abc',
    account: '111122223333',
  });
  imds = new FakeImds('engine-soc', instanceRole);
  await imds.start();
  rest = createServer((req, res) => {
    restSeen.push({
      path: req.url ?? '',
      authorization: req.headers.authorization,
      remotePort: req.socket.remotePort!,
    });
    if (req.url?.startsWith('/api/slow')) return void held.push(res); // never answered
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ tickets: [{ id: 7 }] }));
  });
  await new Promise<void>((r) => rest.listen(0, '127.0.0.1', r));
  d = await Deployment.create();
  await d.install('host', 'h1');
  // aws-tenant compares a tenant's answers with an engine's: its tenant may reach the loopback fake by name.
  d.configure('h1', { integrationLoopbackAllow: [`127.0.0.1:${aws.port}`] });
  await d.startAgent('h1');
  await d.createTenant('cust', 'h1');
  // The engines' SDK finds instance metadata at the fake, and reads no AWS file of the machine's.
  engineEnv = {
    AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
    AWS_CONFIG_FILE: '/nonexistent/palisade-test/aws-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/palisade-test/aws-credentials',
  };
  const open = [`127.0.0.1:${aws.port}`, `127.0.0.1:${portOf(rest)}`, `127.0.0.1:${imdsPort()}`];
  for (const name of ['a1', 'a2']) await d.startEngine(name, 'cust', { allow: open, group: 'a', env: engineEnv });
  const narrow = [`127.0.0.1:${portOf(rest)}`, '127.0.0.0/8'];
  await d.startEngine('b1', 'cust', { allow: narrow, group: 'b', env: engineEnv });

  const awsSettings = ['--set', 'region=eu-west-1', '--set', `endpointUrl=${aws.url}`];
  await ok(
    ['connections', 'create', 'keys', '--tenant', 'cust', '--type', 'aws', ...awsSettings].concat([
      ...['--set', `stsEndpointUrl=${aws.url}`, '--set', `accessKeyId=${mssp.accessKeyId}`, '--secret-stdin'],
    ]),
    `${mssp.secretAccessKey}\n`,
  );
  await ok(
    ['connections', 'create', 'role', '--tenant', 'cust', '--type', 'aws', ...awsSettings].concat([
      ...['--set', `stsEndpointUrl=${aws.url}`],
    ]),
  );
  await ok(
    ['connections', 'create', 'tickets', '--tenant', 'cust', '--type', 'http'].concat([
      ...['--set', `baseUrl=http://127.0.0.1:${portOf(rest)}/api`, '--set', 'authType=bearer', '--secret-stdin'],
    ]),
    `${BEARER}\n`,
  );
  await instance('aws-a', 'aws', 'keys', 'group:a');
  await instance('aws-b1', 'aws', 'keys', 'engine:b1');
  await instance('aws-tenant', 'aws', 'keys', 'tenant');
  await instance('imds-a1', 'aws', 'role', 'engine:a1');
  await instance('imds-b1', 'aws', 'role', 'engine:b1');
  await instance('imds-tenant', 'aws', 'role', 'tenant');
  await instance('web-a', 'http', 'tickets', 'group:a');
}, 300_000);
afterAll(async () => {
  for (const res of held) res.destroy();
  rest?.closeAllConnections();
  await d?.stop();
  await aws?.close();
  await imds?.close();
  await new Promise((r) => (rest ? rest.close(r) : r(undefined)));
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('binding an instance to engines', () => {
  it('an engine or group with no session here is taken with a warning naming it (a typo, another tenant’s engine)', async () => {
    const create = (name: string, runOn: string, json: boolean) =>
      ok(
        ['integrations', 'create', name, '--tenant', 'cust', '--integration', 'http', '--connection', 'tickets'].concat(
          [...['--run-on', runOn, ...(json ? ['--json'] : [])]],
        ),
      );
    const typo = await create('web-typo', 'engine:nosuch', false);
    expect(typo.stdout).toMatch(/warning: runOn: no engine named nosuch has a session with this tenant now/);
    const group = JSON.parse((await create('web-nogroup', 'group:zz', true)).stdout) as { warnings?: string[] };
    expect(group.warnings?.join()).toMatch(/no engine of group zz/);
    const live = JSON.parse((await create('web-b1', 'engine:b1', true)).stdout) as { warnings?: string[] };
    expect(live.warnings).toBeUndefined();
    for (const name of ['web-typo', 'web-nogroup', 'web-b1'])
      await ok(['integrations', 'remove', name, '--tenant', 'cust']);
  });
});

describe('aws through an engine and its allow-list', () => {
  it('runs on an engine of its group and reaches the fake; the result names the engine', async () => {
    for (let i = 0; i < 4; i++) {
      const r = await run('aws-a', 's3.list-buckets');
      expect(r.status, r.raw).toBe(200);
      expect(['a1', 'a2']).toContain(r.body.engine);
      expect(r.body).toMatchObject({ group: 'a', result: { buckets: [{ name: 'logs-999988887777' }] } });
      expect(aws.of('s3').at(-1)).toMatchObject({ verified: true, signed: { accessKeyId: mssp.accessKeyId } });
    }
  });

  it("is refused by an engine whose allow-list lacks the fake: 403 naming both, nothing sent, main's audit has it", async () => {
    const before = aws.requests.length;
    const r = await run<ErrorBody>('aws-b1', 's3.list-buckets');
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('ERR_TUNNEL_NOT_ALLOWED');
    expect(r.body.error.message).toBe(`destination 127.0.0.1:${aws.port} is not in this engine's allow-list`);
    expect(aws.requests).toHaveLength(before);
    const audited = await until('the refusal in main audit', async () =>
      (await refusals()).find((e) => e.target === `127.0.0.1:${aws.port}`),
    );
    expect(audited).toMatchObject({
      actor: 'engine:b1',
      outcome: 'denied',
      detail: { code: 'ERR_TUNNEL_NOT_ALLOWED' },
    });
  });

  it("AWS's failures come back from an engine as from a tenant: the same status, code and message", async () => {
    const both = async (command: string, args?: unknown) => {
      const [engine, tenant] = [
        await run<ErrorBody>('aws-a', command, args),
        await run<ErrorBody>('aws-tenant', command, args),
      ];
      expect(engine.body).toEqual(tenant.body);
      expect(engine.status).toBe(tenant.status);
      return engine;
    };
    aws.override = (q) => (q.signed?.service === 's3' ? { status: 503, code: 'ServiceUnavailable' } : undefined);
    try {
      const failed = await both('s3.list-buckets');
      expect(failed.status).toBe(424);
      expect(failed.body.error.code).toBe('ERR_AWS_SERVICE');
    } finally {
      aws.override = undefined;
    }
    const roleArn = 'arn:aws:iam::111122223333:role/NotTrustingUs';
    aws.addRole({ arn: roleArn, trusts: ['arn:aws:iam::000000000000:user/someone-else'] });
    const denied = await both('sts.get-caller-identity', { roleArn });
    expect(denied.status).toBe(403);
    expect(denied.body.error.code).toBe('ERR_AWS_ASSUME_ROLE_DENIED');
    expect(denied.body.error.message).toContain(`AssumeRole denied for ${roleArn} — is ExternalId palisade-cust-`);
  });
});

describe("keyless aws: the engine's instance role over IMDSv2", () => {
  it('works through an engine whose allow-list names the IMDS address exactly: token PUT, then GETs with it', async () => {
    const r = await run('imds-a1', 'sts.get-caller-identity');
    expect(r.status, r.raw).toBe(200);
    expect(r.body).toMatchObject({ engine: 'a1', result: { arn: instanceRole.arn, account: '111122223333' } });
    expect(imds.requests[0]).toMatchObject({ method: 'PUT', path: '/latest/api/token' });
    expect(imds.requests.filter((q) => q.method === 'GET').length).toBeGreaterThan(0);
    expect(imds.v1Calls).toEqual([]);
    const signed = aws.of('GetCallerIdentity').at(-1)!;
    expect(signed.signed?.accessKeyId).toBe(instanceRole.accessKeyId);
    expect(signed.headers['x-amz-security-token']).toBe(instanceRole.sessionToken);
  });

  it('is refused where a CIDR (127.0.0.0/8) covers the IMDS address, and on a tenant; IMDS is never asked', async () => {
    const before = imds.requests.length;
    const r = await run<ErrorBody>('imds-b1', 'sts.get-caller-identity');
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('ERR_TUNNEL_NOT_ALLOWED');
    expect(r.body.error.message).toContain(`instance metadata is reachable only when the allow-list names 127.0.0.1:`);
    expect(r.body.error.message).toContain(`destination 127.0.0.1:${imdsPort()} is not in this engine's allow-list`);
    const onTenant = await run<ErrorBody>('imds-tenant', 'sts.get-caller-identity');
    expect(onTenant.status).toBe(403);
    expect(onTenant.body.error.code).toBe('ERR_AWS_INSTANCE_ROLE_REFUSED');
    expect(imds.requests).toHaveLength(before);
    const audited = await until('the refusal in main audit', async () =>
      (await refusals()).find((e) => e.target === `127.0.0.1:${imdsPort()}`),
    );
    expect(audited).toMatchObject({ actor: 'engine:b1', outcome: 'denied' });
  });
});

describe('http through an engine, and work bound to a group when engines die', () => {
  it('the http integration runs on an engine: the bearer token reaches the service, its answer comes back', async () => {
    const r = await run('web-a', 'request', { method: 'GET', path: '/tickets' });
    expect(r.status, r.raw).toBe(200);
    expect(['a1', 'a2']).toContain(r.body.engine);
    expect(r.body.result).toMatchObject({ status: 200, body: { tickets: [{ id: 7 }] } });
    expect(restSeen.at(-1)).toMatchObject({ path: '/api/tickets', authorization: `Bearer ${BEARER}` });
    expect(r.raw).not.toContain(BEARER);
  });

  it('a write command (http request) is not run again when its engine is killed before answering', async () => {
    const pids = enginePids();
    const running = run<ErrorBody>('web-a', 'request', { method: 'GET', path: '/slow' });
    await until('the request at the service', () => restSeen.some((s) => s.path === '/api/slow'), 20_000);
    const owner = socketOwner(restSeen.find((s) => s.path === '/api/slow')!.remotePort, pids)!;
    expect(['a1', 'a2']).toContain(owner);
    await kill(owner);
    const r = await running;
    expect(r.status).toBe(503);
    expect(r.body.error.code).toBe('ERR_SESSION_CLOSED');
    expect(restSeen.filter((s) => s.path === '/api/slow')).toHaveLength(1);
    await d.startAgent(owner, true, 'unit', engineEnv);
    await until(`${owner} back in session`, async () => (await sessionNames()).includes(owner), 30_000);
  });

  it('a read-only command moves to the other engine of its group when its engine is killed before answering', async () => {
    const pids = enginePids();
    let hung: number | undefined;
    aws.override = (q) =>
      q.signed?.service === 's3' && hung === undefined ? ((hung = q.remotePort), 'hang') : undefined;
    const running = run('aws-a', 's3.list-buckets');
    await until('the s3 call held at the fake', () => hung !== undefined, 20_000);
    const first = socketOwner(hung!, pids)!;
    expect(['a1', 'a2']).toContain(first);
    const second = first === 'a1' ? 'a2' : 'a1';
    await kill(first);
    const r = await running;
    aws.override = undefined;
    expect(r.status, r.raw).toBe(200);
    expect(r.body).toMatchObject({ engine: second, group: 'a', failedOver: [first] });
    expect(r.body.result).toMatchObject({ buckets: [{ name: 'logs-999988887777' }] });

    await kill(second);
    const before = aws.requests.length;
    const refusedBefore = (await refusals()).length;
    const offline = await run<ErrorBody>('aws-a', 's3.list-buckets');
    expect(offline.status).toBe(503);
    expect(offline.body.error.code).toBe('ERR_ENGINE_GROUP_OFFLINE');
    expect(offline.body.error.message).toContain(`no engine of group "a"`);
    expect(aws.requests).toHaveLength(before); // b1 (which would be refused, and audited) was not asked either
    expect(await refusals()).toHaveLength(refusedBefore);
  });
});

describe('after the runs', () => {
  it("no file of the deployment and no log holds a secret; the engines' and host's logs read explicitly", async () => {
    expect((await d.api('POST', '/tenants/cust/stop', {})).status).toBe(200);
    const secrets = [mssp.secretAccessKey, BEARER, instanceRole.secretAccessKey, instanceRole.sessionToken!];
    const logs = ['a1', 'a2', 'b1', 'h1'].map((n) => readFileSync(d.agentLog(n), 'utf8'));
    expect(logs.every((l) => l.length > 0)).toBe(true);
    for (const s of secrets) {
      for (const log of logs) expect(log.includes(s), 'a secret in an agent log').toBe(false);
      for (const form of [s, Buffer.from(s).toString('hex'), Buffer.from(s).toString('base64')])
        expect(await filesContaining(d.dir, form), `a secret as ${form}`).toEqual([]);
      expect(d.logs().includes(s), 'a secret in a log').toBe(false);
    }
  });
});
