/**
 * The integrations' target guard on IP literals and its exceptions (agent/integrations/target-guard.ts), and the
 * AWS SDK's environment on an engine (agent/integrations/aws/sdk-environment.ts). Names, judged by what they
 * resolve to, are test/integration/http-integration.test.ts's and aws-errors.test.ts's.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { checkAgentConfig } from '#common/agent-dir.js';
import { allowLocalTargets, checkTargetHost, loopbackAllowFromEnv } from '../../agent/integrations/target-guard.js';
import { ENGINE_KEEPS, isolateAwsSdk } from '../../agent/integrations/aws/sdk-environment.js';

const codeOf = (f: () => void): { code?: string; field?: string; message?: string } | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    const err = e as { code?: string; field?: string; message?: string };
    return { code: err.code, field: err.field, message: err.message };
  }
};

afterEach(() => allowLocalTargets([]));

describe('the target guard on addresses', () => {
  it('refuses loopback and unspecified addresses in every form, and public ones pass', () => {
    for (const host of ['127.0.0.1', '127.9.9.9', '[::1]', '::1', '[::ffff:127.0.0.1]', '0.0.0.0', '[::]'])
      expect(
        codeOf(() => checkTargetHost(host, 8443)),
        host,
      ).toMatchObject({
        code: 'ERR_INTEGRATION_TARGET_REFUSED',
        field: 'baseUrl',
      });
    expect(codeOf(() => checkTargetHost('192.0.2.10', 443))).toBeUndefined();
    expect(
      codeOf(() => checkTargetHost('api.example.com', 443)),
      'a name waits for its lookup',
    ).toBeUndefined();
  });

  it('lets through exactly the IP:PORT exceptions, however the address is written, never metadata', () => {
    allowLocalTargets(['127.0.0.1:9000', '[::1]:9001', '169.254.169.254:80']);
    expect(codeOf(() => checkTargetHost('127.0.0.1', 9000))).toBeUndefined();
    expect(codeOf(() => checkTargetHost('[::ffff:127.0.0.1]', 9000))).toBeUndefined();
    expect(codeOf(() => checkTargetHost('[0:0:0:0:0:0:0:1]', 9001))).toBeUndefined();
    expect(codeOf(() => checkTargetHost('127.0.0.1', 9001))?.message).toContain(
      '127.0.0.1 port 9001 is the MSSP host itself',
    );
    expect(codeOf(() => checkTargetHost('127.0.0.2', 9000))?.message).toContain(
      'lists "127.0.0.2:9000" in integrationLoopbackAllow',
    );
    expect(codeOf(() => checkTargetHost('169.254.169.254', 80, 'endpointUrl'))).toMatchObject({
      code: 'ERR_INTEGRATION_TARGET_REFUSED',
      field: 'endpointUrl',
      message: expect.stringContaining('is instance metadata') as string,
    });
    // Alibaba Cloud's metadata address, inside the shared range, is as much metadata as AWS's.
    expect(codeOf(() => checkTargetHost('100.100.100.200', 80))?.code).toBe('ERR_INTEGRATION_TARGET_REFUSED');
    expect(codeOf(() => checkTargetHost('100.100.100.201', 80))).toBeUndefined();
  });

  it('takes exceptions as IP:PORT only, from agent.json and from the environment the host passes', () => {
    expect(codeOf(() => allowLocalTargets(['localhost:9000']))).toMatchObject({ code: 'ERR_CONFIG_INVALID' });
    expect(loopbackAllowFromEnv({ PALISADE_INTEGRATION_LOOPBACK_ALLOW: '127.0.0.1:9,[::1]:10' })).toEqual([
      '127.0.0.1:9',
      '[::1]:10',
    ]);
    expect(loopbackAllowFromEnv({})).toEqual([]);
    const host = { format: 1, kind: 'host', name: 'h1', mainUrls: ['https://main:8443'] };
    expect(checkAgentConfig({ ...host, integrationLoopbackAllow: ['127.0.0.1:9000'] }, 'agent.json')).toMatchObject({
      integrationLoopbackAllow: ['127.0.0.1:9000'],
    });
    expect(
      codeOf(() => checkAgentConfig({ ...host, integrationLoopbackAllow: ['localhost:9000'] }, 'agent.json'))?.message,
    ).toContain('/integrationLoopbackAllow/0 must be IP:PORT');
  });
});

describe("an engine's AWS SDK environment", () => {
  it('keeps only the instance metadata endpoint of AWS_*, and points the shared files nowhere', () => {
    const env: NodeJS.ProcessEnv = {
      PATH: '/usr/bin',
      AWS_ACCESS_KEY_ID: 'AKIAENGINEHOST000001',
      AWS_SECRET_ACCESS_KEY: 'x',
      AWS_ENDPOINT_URL: 'http://proxy.example',
      AWS_PROFILE: 'ops',
      AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://[fd00:ec2::254]',
    };
    isolateAwsSdk(env, ENGINE_KEEPS);
    expect(env).toEqual({
      PATH: '/usr/bin',
      AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://[fd00:ec2::254]',
      AWS_CONFIG_FILE: '/dev/null/palisade-no-aws-config',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null/palisade-no-aws-credentials',
    });
  });
});
