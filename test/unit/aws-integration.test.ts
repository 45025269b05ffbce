/**
 * The pure parts of the AWS integration: a connection's settings and defaults, the tenant ExternalId,
 * the command table, and the translation of SDK failures into typed errors (fed SDK-shaped errors).
 */
import { describe, expect, it } from 'vitest';
import { awsFailure, type FailureContext } from '../../agent/integrations/aws/aws-errors.js';
import { AWS_COMMANDS } from '../../agent/integrations/aws/commands.js';
import { checkAwsConnection } from '../../agent/integrations/aws/connection.js';
import { deriveExternalId } from '../../agent/integrations/aws/external-id.js';

describe('checkAwsConnection', () => {
  it('applies the defaults: palisade-<tenant>, 900 s, regional STS, 20 s, 3 attempts; no keys = instance role', () => {
    expect(checkAwsConnection({ region: 'eu-west-1' }, 'acme')).toEqual({
      region: 'eu-west-1',
      keys: undefined,
      roleArn: undefined,
      roleSessionName: 'palisade-acme',
      sessionDuration: 900,
      stsRegionalEndpoints: true,
      endpointUrl: undefined,
      stsEndpointUrl: undefined,
      timeoutMs: 20_000,
      maxAttempts: 3,
    });
  });

  it('splits SECRET@@@SESSIONTOKEN into the secret and the session token; parses strings from --set', () => {
    const c = checkAwsConnection(
      {
        region: 'us-gov-west-1',
        accessKeyId: 'ASIAEXAMPLE000000001',
        secret: 'abc/def@@@tok+en==',
        sessionDuration: '3600',
        stsRegionalEndpoints: 'false',
      },
      'acme',
    );
    expect(c.keys).toEqual({
      accessKeyId: 'ASIAEXAMPLE000000001',
      secretAccessKey: 'abc/def',
      sessionToken: 'tok+en==',
    });
    expect(c).toMatchObject({ sessionDuration: 3600, stsRegionalEndpoints: false });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('lists every problem at once, never quoting the secret', () => {
    const run = () =>
      checkAwsConnection(
        { region: 'eu-west-1', secret: 'hunter2@@@', maxAttempts: 0, timeoutMs: 'soon', colour: 'blue' },
        'acme',
      );
    expect(run).toThrow(expect.objectContaining({ code: 'ERR_AWS_CONFIG' }));
    try {
      run();
    } catch (e) {
      const msg = (e as Error).message;
      for (const key of ['colour', 'accessKeyId', 'timeoutMs', 'maxAttempts']) expect(msg).toContain(key);
      expect(msg).not.toContain('hunter2');
    }
  });

  it('requires a region name', () => {
    for (const region of [undefined, '', 'eu_west_1', 'EU-WEST-1'])
      expect(() => checkAwsConnection({ region }, 'acme')).toThrow(expect.objectContaining({ code: 'ERR_AWS_REGION' }));
  });
});

describe('deriveExternalId', () => {
  const key = new Uint8Array(32).fill(7);
  it('is stable for a tenant, differs by tenant and by key, and shows whose it is', () => {
    const a = deriveExternalId(key, 'acme');
    expect(deriveExternalId(key, 'acme')).toBe(a);
    expect(deriveExternalId(key, 'globex')).not.toBe(a);
    expect(deriveExternalId(new Uint8Array(32).fill(8), 'acme')).not.toBe(a);
    // AWS allows 2-1224 of [\w+=,.@:/-]; ours is the tenant name and 32 hex digits.
    expect(a).toMatch(/^palisade-acme-[0-9a-f]{32}$/);
  });
  it('refuses a short key', () => {
    expect(() => deriveExternalId(new Uint8Array(8), 'acme')).toThrow(RangeError);
  });
});

describe('the aws command table', () => {
  it('has the four built-ins, read-only, each taking roleArn and refusing unknown args', () => {
    expect([...AWS_COMMANDS.keys()]).toEqual([
      'sts.get-caller-identity',
      's3.list-buckets',
      'ec2.describe-instances',
      'iam.list-users',
    ]);
    for (const c of AWS_COMMANDS.values()) {
      expect(c.readOnly).toBe(true);
      expect(c.args).toMatchObject({ type: 'object', additionalProperties: false, properties: { roleArn: {} } });
    }
  });
});

describe('awsFailure', () => {
  const ctx: FailureContext = {
    step: 'call',
    host: 'ec2.eu-west-1.amazonaws.com',
    region: 'eu-west-1',
    defaultHost: true,
    accessKeyId: 'AKIAEXAMPLE000000001',
    action: 'ec2:DescribeInstances',
    timeoutMs: 20_000,
    maxAttempts: 3,
  };
  const sdk = (name: string, status: number, fault: 'client' | 'server' = 'client') =>
    Object.assign(new Error('aws said no'), { name, $fault: fault, $metadata: { httpStatusCode: status } });

  it.each([
    ['InvalidClientTokenId', 403, 'ERR_AWS_KEYS'],
    ['AuthFailure', 401, 'ERR_AWS_KEYS'],
    ['ExpiredToken', 400, 'ERR_AWS_TOKEN_EXPIRED'],
    ['UnauthorizedOperation', 403, 'ERR_AWS_ACCESS_DENIED'],
    ['RequestLimitExceeded', 503, 'ERR_AWS_THROTTLED'],
    ['InvalidInstanceID.Malformed', 400, 'ERR_AWS_REQUEST'],
  ])('%s (%i) is %s', (name, status, code) => {
    expect(awsFailure(sdk(name, status), ctx).code).toBe(code);
  });

  it('an unlisted server fault is ERR_AWS_SERVICE; AccessDenied in AssumeRole names the role and ExternalId', () => {
    expect(awsFailure(sdk('InternalError', 500, 'server'), ctx).code).toBe('ERR_AWS_SERVICE');
    const denied = awsFailure(sdk('AccessDenied', 403), {
      ...ctx,
      step: 'assume-role',
      roleArn: 'arn:aws:iam::111122223333:role/r',
      externalId: 'palisade-acme-00',
    });
    expect(denied.code).toBe('ERR_AWS_ASSUME_ROLE_DENIED');
    expect(denied.message).toMatch(
      /^AssumeRole denied for arn:aws:iam::111122223333:role\/r — is ExternalId palisade-acme-00/,
    );
  });

  it('rethrows what is neither an SDK nor a socket error (a bug is not AWS failing)', () => {
    const bug = new TypeError('x is undefined');
    expect(() => awsFailure(bug, ctx)).toThrow(bug);
  });
});
