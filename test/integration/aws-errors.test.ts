/**
 * Every way an AWS call fails comes back as a typed error with an ERR_AWS_… code (a 4xx when the caller
 * must fix something) and a message a person can act on, against the local fakes: keys AWS does not accept,
 * a denied action, throttling and server errors through the retries, a timeout (the connection's, or the call's
 * budget when that is sooner), an endpoint that does not resolve or answer, an endpoint on the host itself or at
 * instance metadata (refused before anything is sent), and args or settings that break their schema. Retries are
 * the SDK's, bounded by maxAttempts, which the fake's request count shows.
 */
import { get as httpGet, type ClientRequestArgs } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpStatusOf } from '#common/error-codes.js';
import { type AwsCallRequest, runAwsCommand } from '../../agent/integrations/aws/run.js';
import { allowLocalTargets, GuardedHttpAgent } from '../../agent/integrations/target-guard.js';
import { FakeAws, type FakeIdentity } from '../harness/aws-fake.js';
import { isolateAwsEnv, restoreAwsEnv } from '../harness/aws-env.js';

let fake: FakeAws;
let soc: FakeIdentity;

beforeAll(() => isolateAwsEnv());
afterAll(() => {
  restoreAwsEnv();
  allowLocalTargets([]);
});

async function startFake(): Promise<void> {
  fake = new FakeAws();
  await fake.start();
  // Loopback is reached only where the host says so: the fake, and port 9 where nothing listens.
  allowLocalTargets([`127.0.0.1:${fake.port}`, '127.0.0.1:9']);
  soc = fake.addIdentity({
    accessKeyId: 'AKIASOCFAKE000000001',
    secretAccessKey: 'soc-secret-0123456789',
    arn: 'arn:aws:iam::444455556666:user/soc',
    account: '444455556666',
    denied: ['ec2:DescribeInstances'],
  });
}

/** The error a call fails with, given settings over acme's connection (its keys, endpoints at the fake). */
async function failure(command: string, settings: Record<string, unknown> = {}, over: Partial<AwsCallRequest> = {}) {
  const err = await runAwsCommand({
    tenant: 'acme',
    externalId: 'palisade-acme-0123456789abcdef0123456789abcdef',
    command,
    connection: {
      region: 'eu-west-1',
      accessKeyId: soc.accessKeyId,
      secret: soc.secretAccessKey,
      endpointUrl: fake.url,
      stsEndpointUrl: fake.url,
      maxAttempts: 1,
      ...settings,
    },
    ...over,
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the call should have failed').toBeDefined();
  return err as Error & { code: string; category: string };
}

const status = (e: { code: string; category: string }) => httpStatusOf(e as Parameters<typeof httpStatusOf>[0]);

describe('AWS failures are typed 4xx errors that say what to fix', () => {
  beforeAll(async () => startFake());
  afterAll(async () => fake.close());

  it('a wrong secret: SignatureDoesNotMatch, naming the access key id', async () => {
    const err = await failure('sts.get-caller-identity', { secret: 'not-the-secret' });
    expect(err).toMatchObject({ code: 'ERR_AWS_KEYS', category: 'access-denied' });
    expect(err.message).toContain(`access key ${soc.accessKeyId} (SignatureDoesNotMatch)`);
    expect(err.message).not.toContain('not-the-secret');
    expect(status(err)).toBe(403);
    expect(fake.requests.at(-1)?.verified).toBe(false);
  });

  it('an unknown key id, on each service: InvalidClientTokenId, InvalidAccessKeyId, AuthFailure', async () => {
    const unknown = { accessKeyId: 'AKIAUNKNOWN000000001' };
    for (const command of ['iam.list-users', 's3.list-buckets', 'ec2.describe-instances']) {
      const err = await failure(command, unknown);
      expect(err).toMatchObject({ code: 'ERR_AWS_KEYS' });
      expect(err.message).toContain('access key AKIAUNKNOWN000000001');
    }
  });

  it('an action the identity may not call: names the IAM action', async () => {
    const err = await failure('ec2.describe-instances');
    expect(err).toMatchObject({ code: 'ERR_AWS_ACCESS_DENIED' });
    expect(err.message).toContain(`access key ${soc.accessKeyId} may not call ec2:DescribeInstances`);
    expect(status(err)).toBe(403);
  });

  it('throttling through every attempt: ERR_AWS_THROTTLED after maxAttempts requests', async () => {
    fake.override = (r) => (r.form.Action === 'ListUsers' ? { status: 400, code: 'Throttling' } : undefined);
    const before = fake.of('ListUsers').length;
    const err = await failure('iam.list-users', { maxAttempts: 2 }).finally(() => (fake.override = undefined));
    expect(err).toMatchObject({ code: 'ERR_AWS_THROTTLED' });
    expect(status(err)).toBe(429);
    expect(fake.of('ListUsers').length - before).toBe(2);
  });

  it('a server error is retried, and a later success is the answer', async () => {
    let failures = 1;
    fake.override = (r) =>
      r.form.Action === 'GetCallerIdentity' && failures-- > 0 ? { status: 503, code: 'ServiceUnavailable' } : undefined;
    const before = fake.of('GetCallerIdentity').length;
    const out = await runAwsCommand({
      tenant: 'acme',
      externalId: 'palisade-acme-0123456789abcdef0123456789abcdef',
      command: 'sts.get-caller-identity',
      connection: {
        region: 'eu-west-1',
        accessKeyId: soc.accessKeyId,
        secret: soc.secretAccessKey,
        stsEndpointUrl: fake.url,
      },
    }).finally(() => (fake.override = undefined));
    expect(out.result).toMatchObject({ arn: soc.arn });
    expect(fake.of('GetCallerIdentity').length - before).toBe(2);
  });

  it('server errors through every attempt: ERR_AWS_SERVICE, a 424 (a dependency failed)', async () => {
    fake.override = () => ({ status: 500, code: 'InternalFailure' });
    const err = await failure('sts.get-caller-identity').finally(() => (fake.override = undefined));
    expect(err).toMatchObject({ code: 'ERR_AWS_SERVICE', category: 'dependency' });
    expect(status(err)).toBe(424);
  });

  it('no answer within timeoutMs: ERR_AWS_TIMEOUT naming the host', async () => {
    fake.override = () => 'hang';
    const err = await failure('s3.list-buckets', { timeoutMs: 300 }).finally(() => (fake.override = undefined));
    expect(err).toMatchObject({ code: 'ERR_AWS_TIMEOUT', category: 'dependency' });
    expect(err.message).toContain(`no answer from 127.0.0.1:${fake.port} within 300 ms`);
    expect(status(err)).toBe(424);
  });

  it("a connection's timeoutMs longer than the call's budget gives way to it: ERR_AWS_TIMEOUT at the budget", async () => {
    fake.override = () => 'hang';
    const started = performance.now();
    const err = await failure('s3.list-buckets', { timeoutMs: 300_000 }, { budgetMs: 300 }).finally(
      () => (fake.override = undefined),
    );
    expect(err).toMatchObject({ code: 'ERR_AWS_TIMEOUT', category: 'dependency' });
    expect(err.message).toContain(`no answer from 127.0.0.1:${fake.port} within 300 ms`);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('an endpoint at instance metadata is refused before anything is sent', async () => {
    for (const field of ['endpointUrl', 'stsEndpointUrl']) {
      const err = await failure('s3.list-buckets', { [field]: 'http://169.254.169.254' });
      expect(err, field).toMatchObject({ code: 'ERR_INTEGRATION_TARGET_REFUSED', field });
      expect(status(err)).toBe(403);
    }
  });

  it('an endpoint on the host itself is refused unless its exact IP:PORT is allowed, by address or name', async () => {
    const before = fake.requests.length;
    const literal = await failure('s3.list-buckets', { endpointUrl: `http://127.0.0.2:${fake.port}` });
    expect(literal).toMatchObject({ code: 'ERR_INTEGRATION_TARGET_REFUSED', field: 'endpointUrl' });
    expect(literal.message).toContain(`lists "127.0.0.2:${fake.port}" in integrationLoopbackAllow`);
    allowLocalTargets(['127.0.0.1:9']);
    try {
      // A name is judged by what it resolves to, when the SDK's socket connects.
      const named = await failure('sts.get-caller-identity', { stsEndpointUrl: `http://localhost:${fake.port}` });
      expect(named).toMatchObject({ code: 'ERR_INTEGRATION_TARGET_REFUSED' });
      expect(status(named)).toBe(403);
      expect(named.message).toContain('is the MSSP host itself');
    } finally {
      allowLocalTargets([`127.0.0.1:${fake.port}`, '127.0.0.1:9']);
    }
    expect(fake.requests.length, 'the fake received nothing').toBe(before);
  });

  it("the guarded agent the SDK's requests go through judges every socket, an IP literal included", async () => {
    const agent = new GuardedHttpAgent({}, 'endpointUrl');
    const before = fake.requests.length;
    const err = await new Promise<{ code?: string; field?: string }>((resolve, reject) => {
      try {
        httpGet({ host: '127.0.0.2', port: fake.port, agent }, () => reject(new Error('answered'))).on(
          'error',
          resolve,
        );
      } catch (e) {
        resolve(e as { code?: string; field?: string }); // refused while the request was made
      }
    });
    expect(err).toMatchObject({ code: 'ERR_INTEGRATION_TARGET_REFUSED', field: 'endpointUrl' });
    expect(fake.requests.length).toBe(before);
    agent.destroy();
  });

  it('no keys and no instance metadata: ERR_AWS_IMDS_UNREACHABLE, saying what to set', async () => {
    const err = await failure(
      'sts.get-caller-identity',
      { accessKeyId: undefined, secret: undefined },
      { instanceRole: 'allowed' },
    );
    expect(err).toMatchObject({ code: 'ERR_AWS_IMDS_UNREACHABLE' });
    expect(err.message).toContain('the EC2 instance role is used, and instance metadata at http://127.0.0.1:9');
    expect(err.message).toContain('set accessKeyId and secret');
    expect(status(err)).toBe(400);
  });

  it('an endpoint nothing answers on: ERR_AWS_UNREACHABLE', async () => {
    const err = await failure('sts.get-caller-identity', { stsEndpointUrl: 'http://127.0.0.1:9' });
    expect(err).toMatchObject({ code: 'ERR_AWS_UNREACHABLE' });
    expect(err.message).toContain('cannot reach 127.0.0.1:9 (ECONNREFUSED)');
    expect(status(err)).toBe(424);
  });

  it("a region whose STS host does not resolve: ERR_AWS_REGION (DNS answered by the transport's lookup)", async () => {
    const noDns = new HttpsAgent({
      lookup: ((_host: string, _o: unknown, cb: (e: Error) => void) =>
        cb(Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }))) as ClientRequestArgs['lookup'],
    });
    const err = await failure(
      'sts.get-caller-identity',
      { region: 'xx-nowhere-9', stsEndpointUrl: undefined },
      { transport: { httpsAgent: noDns } },
    );
    expect(err).toMatchObject({ code: 'ERR_AWS_REGION' });
    expect(err.message).toContain('sts.xx-nowhere-9.amazonaws.com does not resolve: is xx-nowhere-9 an AWS region');
    expect(status(err)).toBe(400);
    noDns.destroy();
  });
});

describe('settings and args are checked before any request', () => {
  beforeAll(async () => startFake());
  afterAll(async () => fake.close());

  it('names every bad setting at once, and never the secret', async () => {
    const err = await failure('sts.get-caller-identity', {
      sessionDuration: '60',
      stsEndpointUrl: 'ftp://x',
      roleArn: 'arn:aws:iam::1:user/x',
      secret: 'only-a-secret',
      accessKeyId: undefined,
    });
    expect(err).toMatchObject({ code: 'ERR_AWS_CONFIG' });
    for (const key of ['sessionDuration', 'stsEndpointUrl', 'roleArn', 'accessKeyId'])
      expect(err.message).toContain(key);
    expect(err.message).not.toContain('only-a-secret');
    expect(fake.requests).toEqual([]);
  });

  it('a missing or malformed region is ERR_AWS_REGION', async () => {
    expect(await failure('sts.get-caller-identity', { region: undefined })).toMatchObject({ code: 'ERR_AWS_REGION' });
    expect(await failure('sts.get-caller-identity', { region: 'Europe' })).toMatchObject({ code: 'ERR_AWS_REGION' });
  });

  it('args that break the schema are ERR_AWS_ARGS naming the field; an unknown command says which exist', async () => {
    const bad = await failure('ec2.describe-instances', {}, { args: { instanceIds: ['web-1'] } });
    expect(bad).toMatchObject({ code: 'ERR_AWS_ARGS' });
    expect(bad.message).toContain('/instanceIds/0');
    const role = await failure('s3.list-buckets', {}, { args: { roleArn: 'admin' } });
    expect(role).toMatchObject({ code: 'ERR_AWS_ARGS' });
    const unknown = await failure('s3.delete-bucket');
    expect(unknown).toMatchObject({ code: 'ERR_COMMAND_UNKNOWN' });
    expect(unknown.message).toContain('sts.get-caller-identity, s3.list-buckets');
    expect(fake.requests).toEqual([]);
  });
});
