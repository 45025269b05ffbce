/**
 * AWS authentication, every way, against local fakes of STS, S3, EC2, IAM and instance
 * metadata that verify SigV4 with the secret they hold and record what they received: one test per mode,
 * asserting what reached the fake — the key id in the credential scope, the session token header,
 * IMDSv2's token and no IMDSv1 call, AssumeRole's parameters with the tenant's ExternalId, a per-call
 * role overriding the connection's, the regional, global or custom host — and that tenant B cannot
 * assume tenant A's role.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCa, issueServerCert } from '#common/pki.js';
import { deriveExternalId } from '../../agent/integrations/aws/external-id.js';
import { type AwsCallRequest, runAwsCommand } from '../../agent/integrations/aws/run.js';
import { allowLocalTargets } from '../../agent/integrations/target-guard.js';
import { FakeAws, type FakeIdentity } from '../harness/aws-fake.js';
import { isolateAwsEnv, LoopbackRouteAgent, restoreAwsEnv } from '../harness/aws-env.js';
import { FakeImds } from '../harness/imds-fake.js';

const ACCOUNT_A = '111122223333';
const tenantKeyA = randomBytes(32);
const tenantKeyB = randomBytes(32);
const externalIdA = deriveExternalId(tenantKeyA, 'acme');
const externalIdB = deriveExternalId(tenantKeyB, 'globex');
const ROLE_A = `arn:aws:iam::${ACCOUNT_A}:role/palisade-readonly`;
const ROLE_OTHER = `arn:aws:iam::${ACCOUNT_A}:role/palisade-audit`;

let fake: FakeAws;
let mssp: FakeIdentity;
const closers: (() => Promise<void>)[] = [];

beforeAll(() => isolateAwsEnv());
afterAll(() => {
  restoreAwsEnv();
  allowLocalTargets([]);
});
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
  process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = 'http://127.0.0.1:9';
});

async function startFake(tls?: { key: string; cert: string }): Promise<FakeAws> {
  fake = new FakeAws();
  await fake.start(tls);
  closers.push(() => fake.close());
  // The fake listens on loopback, which an integration on a tenant reaches only where the host says so.
  allowLocalTargets([`127.0.0.1:${fake.port}`]);
  mssp = fake.addIdentity({
    accessKeyId: 'AKIAMSSPFAKE00000001',
    secretAccessKey: 'mssp/secret+key/0123456789abcdefghijklmn',
    arn: 'arn:aws:iam::999988887777:user/palisade',
    account: '999988887777',
  });
  fake.addRole({ arn: ROLE_A, trusts: [mssp.arn], externalId: externalIdA });
  fake.addRole({ arn: ROLE_OTHER, trusts: [mssp.arn], externalId: externalIdA });
  return fake;
}

/** A call of tenant acme with its keys, every endpoint at the fake. */
function call(command: string, over: Partial<AwsCallRequest> = {}, settings: Record<string, unknown> = {}) {
  return runAwsCommand({
    tenant: 'acme',
    externalId: externalIdA,
    command,
    connection: {
      region: 'eu-west-1',
      accessKeyId: mssp.accessKeyId,
      secret: mssp.secretAccessKey,
      endpointUrl: fake.url,
      stsEndpointUrl: fake.url,
      ...settings,
    },
    ...over,
  });
}

describe('access key + secret', () => {
  it('signs every service with the key id in the credential scope and no session token', async () => {
    await startFake();
    const who = await call('sts.get-caller-identity');
    expect(who.result).toEqual({ account: mssp.account, arn: mssp.arn, userId: 'AIDFAKE' });
    const buckets = await call('s3.list-buckets');
    expect(buckets.result).toMatchObject({ buckets: [{ name: `logs-${mssp.account}` }] });
    const ec2 = await call('ec2.describe-instances', {
      args: { instanceIds: ['i-0123456789abcdef0'], filters: [{ name: 'tag:Name', values: ['web-1'] }] },
    });
    expect(ec2.result).toEqual({
      instances: [
        expect.objectContaining({ instanceId: 'i-0123456789abcdef0', state: 'running', tags: { Name: 'web-1' } }),
      ],
    });
    const users = await call('iam.list-users');
    expect(users.result).toMatchObject({
      users: [{ userName: 'alice', arn: `arn:aws:iam::${mssp.account}:user/alice` }],
    });

    expect(fake.requests.map((r) => r.signed?.service)).toEqual(['sts', 's3', 'ec2', 'iam']);
    for (const r of fake.requests) {
      expect(r.verified).toBe(true);
      expect(r.signed?.accessKeyId).toBe(mssp.accessKeyId);
      expect(r.headers['x-amz-security-token']).toBeUndefined();
      expect(r.host).toBe(`127.0.0.1:${fake.port}`); // the custom service and STS endpoints
    }
    expect(fake.of('sts')[0].signed?.region).toBe('eu-west-1');
    expect(fake.of('DescribeInstances')[0].form).toMatchObject({
      'InstanceId.1': 'i-0123456789abcdef0',
      'Filter.1.Name': 'tag:Name',
      'Filter.1.Value.1': 'web-1',
    });
  });
});

describe('key + SECRET@@@SESSIONTOKEN', () => {
  it('sends the session token as X-Amz-Security-Token, signed with the secret before @@@', async () => {
    await startFake();
    const temp = fake.addIdentity({
      accessKeyId: 'ASIATEMPFAKE00000001',
      secretAccessKey: 'temp-secret-0123456789',
      sessionToken: 'FwoGZXIvYXdzEXAMPLE//token==',
      arn: 'arn:aws:sts::999988887777:assumed-role/soc/someone',
      account: '999988887777',
    });
    const out = await call(
      'sts.get-caller-identity',
      {},
      { accessKeyId: temp.accessKeyId, secret: `${temp.secretAccessKey}@@@${temp.sessionToken}` },
    );
    expect(out.result).toMatchObject({ arn: temp.arn });
    const [r] = fake.requests;
    expect(r.verified).toBe(true);
    expect(r.signed?.accessKeyId).toBe(temp.accessKeyId);
    expect(r.headers['x-amz-security-token']).toBe(temp.sessionToken);
    expect(r.signed?.signedHeaders).toContain('x-amz-security-token');
  });
});

describe('no keys: the EC2 instance role over IMDSv2 (where the caller allows it: an engine)', () => {
  const ENGINE: Partial<AwsCallRequest> = { instanceRole: 'allowed' };
  async function startImds(opts: { v1Only?: boolean } = {}): Promise<{ imds: FakeImds; role: FakeIdentity }> {
    await startFake();
    const role = fake.addIdentity({
      accessKeyId: 'ASIAINSTANCEROLE0001',
      secretAccessKey: 'instance-role-secret',
      sessionToken: 'instance-role-session-token',
      arn: `arn:aws:sts::${ACCOUNT_A}:assumed-role/ec2-soc/i-0abc`,
      account: ACCOUNT_A,
    });
    const imds = new FakeImds('ec2-soc', role, opts);
    await imds.start();
    closers.push(() => imds.close());
    process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
    return { imds, role };
  }

  it("is refused unless the caller allows it (on a tenant it would be the MSSP host's role), asking nothing", async () => {
    const { imds } = await startImds();
    const err = await call('sts.get-caller-identity', {}, { accessKeyId: undefined, secret: undefined }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'ERR_AWS_INSTANCE_ROLE_REFUSED' });
    expect(imds.requests).toEqual([]);
    expect(fake.requests).toEqual([]);
  });

  it('fetches a token with PUT, then reads the role with it; never a token-less GET', async () => {
    const { imds, role } = await startImds();
    const out = await call('sts.get-caller-identity', ENGINE, { accessKeyId: undefined, secret: undefined });
    expect(out.result).toMatchObject({ arn: role.arn });
    expect(imds.requests[0]).toMatchObject({ method: 'PUT', path: '/latest/api/token', ttl: '21600' });
    const gets = imds.requests.filter((r) => r.method === 'GET');
    expect(gets.map((g) => g.path)).toEqual([
      '/latest/meta-data/iam/security-credentials/',
      '/latest/meta-data/iam/security-credentials/ec2-soc',
    ]);
    for (const g of gets) expect(imds.tokens.has(g.token!)).toBe(true);
    expect(imds.v1Calls).toEqual([]);
    const [r] = fake.requests;
    expect(r.signed?.accessKeyId).toBe(role.accessKeyId);
    expect(r.headers['x-amz-security-token']).toBe(role.sessionToken);
  });

  it('does not fall back to IMDSv1 when the token PUT is refused: the instance role is unreachable', async () => {
    const { imds } = await startImds({ v1Only: true });
    const err = await call('sts.get-caller-identity', ENGINE, { accessKeyId: undefined, secret: undefined }).catch(
      (e) => e,
    );
    expect(err).toMatchObject({ code: 'ERR_AWS_IMDS_UNREACHABLE' });
    expect(err.message).toMatch(/instance role/);
    expect(imds.requests.map((r) => r.method)).toEqual(['PUT']);
    expect(imds.v1Calls).toEqual([]);
    expect(fake.requests).toEqual([]);
  });

  it('AssumeRole on top of the instance role signs with its credentials', async () => {
    const { role } = await startImds();
    fake.addRole({ arn: ROLE_A, trusts: [role.arn], externalId: externalIdA });
    const out = await call('sts.get-caller-identity', ENGINE, {
      accessKeyId: undefined,
      secret: undefined,
      roleArn: ROLE_A,
    });
    expect(out.assumedRoleArn).toBe(ROLE_A);
    const [assume] = fake.of('AssumeRole');
    expect(assume.signed?.accessKeyId).toBe(role.accessKeyId);
    expect(assume.headers['x-amz-security-token']).toBe(role.sessionToken);
  });
});

describe('STS AssumeRole with the tenant ExternalId', () => {
  it("assumes the connection's role with RoleSessionName palisade-<tenant>, 900 s and the ExternalId", async () => {
    await startFake();
    const out = await call('ec2.describe-instances', {}, { roleArn: ROLE_A });
    expect(out.assumedRoleArn).toBe(ROLE_A);
    const [assume] = fake.of('AssumeRole');
    expect(assume.verified).toBe(true);
    expect(assume.signed?.accessKeyId).toBe(mssp.accessKeyId);
    expect(assume.form).toMatchObject({
      RoleArn: ROLE_A,
      RoleSessionName: 'palisade-acme',
      DurationSeconds: '900',
      ExternalId: externalIdA,
    });
    // The service call is signed with the role's temporary credentials, not the MSSP's key.
    const [ec2] = fake.of('ec2');
    const temp = fake.identities.get(ec2.signed!.accessKeyId)!;
    expect(temp.arn).toBe(`arn:aws:sts::${ACCOUNT_A}:assumed-role/palisade-readonly/palisade-acme`);
    expect(ec2.headers['x-amz-security-token']).toBe(temp.sessionToken);
  });

  it("a per-call roleArn overrides the connection's role for that call only", async () => {
    await startFake();
    await call('sts.get-caller-identity', { args: { roleArn: ROLE_OTHER } }, { roleArn: ROLE_A });
    await call('sts.get-caller-identity', {}, { roleArn: ROLE_A });
    expect(fake.of('AssumeRole').map((r) => r.form.RoleArn)).toEqual([ROLE_OTHER, ROLE_A]);
    expect(fake.of('GetCallerIdentity')[0].signed?.accessKeyId).toMatch(/^ASIA/);
  });

  it("tenant B cannot assume tenant A's role: its ExternalId differs and the trust policy refuses it", async () => {
    await startFake();
    expect(externalIdB).not.toBe(externalIdA);
    expect(deriveExternalId(tenantKeyA, 'acme')).toBe(externalIdA); // stable for a tenant
    const err = await call(
      'sts.get-caller-identity',
      { tenant: 'globex', externalId: externalIdB },
      { roleArn: ROLE_A },
    ).catch((e) => e);
    expect(err).toMatchObject({ code: 'ERR_AWS_ASSUME_ROLE_DENIED', category: 'access-denied' });
    expect(err.message).toContain(
      `AssumeRole denied for ${ROLE_A} — is ExternalId ${externalIdB} in the role's trust policy`,
    );
    expect(fake.of('AssumeRole')[0].form).toMatchObject({
      ExternalId: externalIdB,
      RoleSessionName: 'palisade-globex',
    });
    expect(fake.of('GetCallerIdentity')).toEqual([]);
  });
});

describe('STS endpoints', () => {
  let tls: { key: string; cert: string; ca: string };
  beforeAll(async () => {
    const ca = await createCa('fake AWS CA');
    const leaf = await issueServerCert(ca, ['sts.eu-west-1.amazonaws.com', 'sts.amazonaws.com']);
    tls = { key: leaf.keyPem, cert: leaf.certPem, ca: ca.certPem };
  });

  it('uses the regional endpoint sts.<region>.amazonaws.com by default, through the given transport', async () => {
    await startFake(tls);
    const agent = new LoopbackRouteAgent(fake.port, tls.ca);
    await call('sts.get-caller-identity', { transport: { httpsAgent: agent } }, { stsEndpointUrl: undefined });
    expect(agent.asked).toEqual(['sts.eu-west-1.amazonaws.com:443']);
    expect(fake.requests[0]).toMatchObject({ host: 'sts.eu-west-1.amazonaws.com', verified: true });
    expect(fake.requests[0].signed?.region).toBe('eu-west-1');
    expect(agent.destroyed, "the caller's agent (a tunnel's) outlives the call").toBe(false);
  });

  it('uses the global endpoint, signed for us-east-1, when regional endpoints are turned off', async () => {
    await startFake(tls);
    const agent = new LoopbackRouteAgent(fake.port, tls.ca);
    await call(
      'sts.get-caller-identity',
      { transport: { httpsAgent: agent } },
      { stsEndpointUrl: undefined, stsRegionalEndpoints: 'false' },
    );
    expect(fake.requests[0]).toMatchObject({ host: 'sts.amazonaws.com', verified: true });
    expect(fake.requests[0].signed?.region).toBe('us-east-1');
  });
});
