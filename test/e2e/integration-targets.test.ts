/**
 * What an integration run on a tenant may reach of the MSSP host, and what of the host's AWS setup it sees, with
 * real processes: host h1 runs its tenants ta and tb as its own user (`tenantUsers: false`), allows one loopback
 * fake in agent.json (`integrationLoopbackAllow`) and starts with AWS keys in its environment and a HOME whose
 * ~/.aws holds a profile with keys and an endpoint. A fake the host does not allow, the other tenant's API port,
 * main's port and the host's own addresses are refused (ERR_INTEGRATION_TARGET_REFUSED) and receive nothing; the
 * tenant's process starts with the AWS SDK's shared files pointed nowhere and no AWS_* variable; a keyless AWS
 * connection is still refused the instance role, and no request anywhere is signed with the host's keys.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readFile, mkdir, writeFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { runCli, tempDir, type CliResult } from '../harness/processes.js';
import { FakeAws, type FakeIdentity } from '../harness/aws-fake.js';
import type { ErrorBody } from '../harness/api-shapes.js';

let d: Deployment;
let aws: FakeAws;
let unlisted: FakeAws;
let soc: FakeIdentity;
let allowed: Server;
let other: Server;
let home: string;
const seen = { allowed: 0, other: 0 };
/** The host's own AWS keys: in its environment, and in ~/.aws/credentials. Neither may sign anything. */
const ENV_KEY = { id: 'AKIAHOSTENVFAKE00001', secret: randomBytes(30).toString('base64') };
const PROFILE_KEY = { id: 'AKIAHOSTPROFILE00001', secret: randomBytes(30).toString('base64') };

const ok = async (args: string[], stdin?: string): Promise<CliResult> => {
  const r = await runCli(args, d.env, 60_000, stdin);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
  return r;
};
const counting = (key: keyof typeof seen): Promise<Server> =>
  new Promise((resolve) => {
    const s = createServer((_req, res) => {
      seen[key] += 1;
      res.setHeader('content-type', 'application/json');
      res.end('{"ok":true}');
    });
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
const portOf = (s: Server) => (s.address() as AddressInfo).port;

/** An http instance `name` on `tenant` whose connection's baseUrl is `baseUrl`; answers the run's reply. */
async function runHttp(tenant: string, name: string, baseUrl: string) {
  await ok(['connections', 'create', name, '--tenant', tenant, '--type', 'http', '--set', `baseUrl=${baseUrl}`]);
  await ok(['integrations', 'create', name, '--tenant', tenant, '--integration', 'http', '--connection', name]);
  return d.api<ErrorBody & { result: { status: number } }>('POST', `/tenants/${tenant}/api/integrations/${name}/run`, {
    command: 'request',
    args: { method: 'GET', path: '/' },
  });
}

beforeAll(async () => {
  [aws, unlisted] = [new FakeAws(), new FakeAws()];
  await Promise.all([aws.start(), unlisted.start()]);
  const socSecret = randomBytes(30).toString('base64');
  for (const f of [aws, unlisted]) {
    soc = f.addIdentity({
      accessKeyId: 'AKIASOCFAKE000000003',
      secretAccessKey: socSecret,
      arn: 'arn:aws:iam::444455556666:user/soc',
      account: '444455556666',
    });
    // Known to the fakes, so a request signed with the host's keys would verify and be plain to see.
    for (const k of [ENV_KEY, PROFILE_KEY])
      f.addIdentity({ accessKeyId: k.id, secretAccessKey: k.secret, arn: `arn:aws:iam::1:user/${k.id}`, account: '1' });
  }
  [allowed, other] = await Promise.all([counting('allowed'), counting('other')]);
  home = await tempDir('palisade-host-home-');
  await mkdir(join(home, '.aws'));
  await writeFile(join(home, '.aws', 'config'), `[default]\nregion = eu-west-1\nendpoint_url = ${aws.url}\n`);
  await writeFile(
    join(home, '.aws', 'credentials'),
    `[default]\naws_access_key_id = ${PROFILE_KEY.id}\naws_secret_access_key = ${PROFILE_KEY.secret}\n`,
  );
  d = await Deployment.create();
  await d.install('host', 'h1');
  d.configure('h1', {
    tenantUsers: false,
    integrationLoopbackAllow: [`127.0.0.1:${portOf(allowed)}`, `127.0.0.1:${aws.port}`],
  });
  await d.startAgent('h1', true, 'unit', {
    HOME: home,
    AWS_ACCESS_KEY_ID: ENV_KEY.id,
    AWS_SECRET_ACCESS_KEY: ENV_KEY.secret,
    AWS_ENDPOINT_URL: aws.url,
    AWS_REGION: 'eu-west-1',
  });
  await d.createTenant('ta', 'h1');
  await d.createTenant('tb', 'h1');
}, 240_000);
afterAll(async () => {
  await d?.stop();
  await Promise.all([aws?.close(), unlisted?.close()]);
  for (const s of [allowed, other]) await new Promise((r) => (s ? s.close(r) : r(undefined)));
  if (home) await rm(home, { recursive: true, force: true });
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe("an integration on a tenant and the host's own ports", () => {
  it('reaches the loopback service the host allows; one it does not is refused, saying how, and gets nothing', async () => {
    const yes = await runHttp('ta', 'allowed', `http://127.0.0.1:${portOf(allowed)}/api`);
    expect(yes.status, yes.raw).toBe(200);
    expect(yes.body.result.status).toBe(200);
    expect(seen.allowed).toBe(1);

    const no = await runHttp('ta', 'other', `http://127.0.0.1:${portOf(other)}/api`);
    expect(no.status).toBe(403);
    expect(no.body.error.code).toBe('ERR_INTEGRATION_TARGET_REFUSED');
    expect(no.body.error.message).toContain(
      `is the MSSP host itself (loopback or one of its addresses), where Palisade's own services listen`,
    );
    expect(no.body.error.message).toContain(`lists "127.0.0.1:${portOf(other)}" in integrationLoopbackAllow`);
    expect(seen.other, 'the unlisted service received nothing').toBe(0);
  });

  it("refuses the other tenant's API, main's port and the host's addresses, by address or by name", async () => {
    const tb = await d.tenant('tb');
    const own = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && !i.internal && i.family === 'IPv4')?.address;
    const targets = [
      `http://127.0.0.1:${tb!.port}`,
      `http://localhost:${tb!.port}`,
      `https://127.0.0.1:${d.port}/api/v1`,
      `http://[::1]:${tb!.port}`,
      ...(own ? [`http://${own}:${tb!.port}`] : []),
    ];
    for (const [i, baseUrl] of targets.entries()) {
      const r = await runHttp('ta', `host${i}`, baseUrl);
      expect(r.status, baseUrl).toBe(403);
      expect(r.body.error.code, baseUrl).toBe('ERR_INTEGRATION_TARGET_REFUSED');
    }
  });

  it('refuses an AWS endpoint on a loopback port the host does not allow; the fake there gets nothing', async () => {
    await ok(
      [
        ...['connections', 'create', 'unlisted', '--tenant', 'ta', '--type', 'aws', '--set', 'region=eu-west-1'],
        ...['--set', `accessKeyId=${soc.accessKeyId}`, '--set', `endpointUrl=${unlisted.url}`],
        ...['--set', `stsEndpointUrl=${unlisted.url}`, '--secret-stdin'],
      ],
      `${soc.secretAccessKey}\n`,
    );
    await ok([
      'integrations',
      'create',
      'unlisted',
      '--tenant',
      'ta',
      '--integration',
      'aws',
      '--connection',
      'unlisted',
    ]);
    const r = await d.api<ErrorBody>('POST', '/tenants/ta/api/integrations/unlisted/run', {
      command: 's3.list-buckets',
    });
    expect(r.status).toBe(403);
    expect(r.body.error).toMatchObject({ code: 'ERR_INTEGRATION_TARGET_REFUSED' });
    expect(unlisted.requests).toEqual([]);
  });
});

describe("a tenant and the host's AWS setup", () => {
  it('starts with the shared files pointed nowhere, and none of AWS_* or HOME', async () => {
    const ta = await d.tenant('ta');
    const environ = (await readFile(`/proc/${ta!.pid}/environ`, 'utf8')).split('\0');
    expect(environ).toContain('AWS_CONFIG_FILE=/dev/null/palisade-no-aws-config');
    expect(environ).toContain('AWS_SHARED_CREDENTIALS_FILE=/dev/null/palisade-no-aws-credentials');
    expect(environ.filter((v) => /^(AWS_(?!CONFIG_FILE|SHARED_CREDENTIALS_FILE)|HOME=)/.test(v))).toEqual([]);
  });

  it("a keyless connection is refused the instance role; no request anywhere is signed with the host's keys", async () => {
    await ok([
      ...['connections', 'create', 'keyless', '--tenant', 'ta', '--type', 'aws', '--set', 'region=eu-west-1'],
      ...['--set', `stsEndpointUrl=${aws.url}`, '--set', `endpointUrl=${aws.url}`],
    ]);
    await ok([
      'integrations',
      'create',
      'keyless',
      '--tenant',
      'ta',
      '--integration',
      'aws',
      '--connection',
      'keyless',
    ]);
    const r = await d.api<ErrorBody>('POST', '/tenants/ta/api/integrations/keyless/run', {
      command: 'sts.get-caller-identity',
    });
    expect(r.status).toBe(403);
    expect(r.body.error.code).toBe('ERR_AWS_INSTANCE_ROLE_REFUSED');

    // With keys of its own, the call is signed with them: the fakes see the connection's key and nothing else.
    await ok(
      [
        ...['connections', 'create', 'keyed', '--tenant', 'ta', '--type', 'aws', '--set', 'region=eu-west-1'],
        ...['--set', `accessKeyId=${soc.accessKeyId}`, '--set', `stsEndpointUrl=${aws.url}`, '--secret-stdin'],
      ],
      `${soc.secretAccessKey}\n`,
    );
    await ok(['integrations', 'create', 'keyed', '--tenant', 'ta', '--integration', 'aws', '--connection', 'keyed']);
    const who = await d.api<{ result: { arn: string } }>('POST', '/tenants/ta/api/integrations/keyed/run', {
      command: 'sts.get-caller-identity',
    });
    expect(who.status, who.raw).toBe(200);
    expect(who.body.result.arn).toBe(soc.arn);
    const signers = [...aws.requests, ...unlisted.requests].map((q) => q.signed?.accessKeyId);
    expect(signers).toEqual([soc.accessKeyId]);
  });
});
