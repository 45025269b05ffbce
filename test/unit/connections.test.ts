/** Connection settings per type (common/connections.ts): what is accepted, defaulted and refused, by field. */
import { describe, expect, it } from 'vitest';
import {
  canonicalSettings,
  checkConnection,
  checkSecret,
  checkSettingName,
  parseSetting,
  sealedDestination,
  withDesignNames,
  MAX_SECRET_BYTES,
} from '#common/connections.js';
import { parseConnectionBody } from '#common/connection-content.js';
import { parseDuration } from '#common/duration.js';

/** The refusal's code and field, or undefined if `fn` accepted. */
const refusal = (fn: () => unknown): { code: string; field: string } | undefined => {
  try {
    fn();
  } catch (e) {
    return { code: (e as { code: string }).code, field: (e as { field: string }).field };
  }
  return undefined;
};

describe('aws connections', () => {
  it('need a region and default to regional STS endpoints', () => {
    expect(checkConnection('aws', { region: 'eu-west-1' }, false)).toEqual({
      region: 'eu-west-1',
      stsRegionalEndpoints: true,
    });
    expect(refusal(() => checkConnection('aws', {}, false))).toEqual({
      code: 'ERR_CONNECTION_SETTING',
      field: 'settings.region',
    });
  });

  it('take every documented setting in its form', () => {
    const all = {
      region: 'us-gov-west-1',
      roleArn: 'arn:aws:iam::123456789012:role/soc/Reader',
      roleSessionName: 'palisade-acme',
      sessionDuration: 900,
      stsRegionalEndpoints: false,
      endpointUrl: 'https://vpce-1.s3.eu-west-1.vpce.amazonaws.com',
      stsEndpointUrl: 'http://127.0.0.1:4566/',
      timeoutMs: 5000,
      maxAttempts: 3,
      accessKeyId: 'AKIAIOSFODNN7EXAMPLE',
    };
    expect(checkConnection('aws', all, true)).toEqual(all);
  });

  it.each([
    [{ region: 'Europe' }, 'settings.region'],
    [{ region: 'eu-west-1', roleArn: 'arn:aws:iam::12:role/x' }, 'settings.roleArn'],
    [{ region: 'eu-west-1', sessionDuration: 899 }, 'settings.sessionDuration'],
    [{ region: 'eu-west-1', sessionDuration: '900' }, 'settings.sessionDuration'],
    [{ region: 'eu-west-1', maxAttempts: 11 }, 'settings.maxAttempts'],
    [{ region: 'eu-west-1', endpointUrl: 'ftp://x' }, 'settings.endpointUrl'],
    [{ region: 'eu-west-1', stsRegionalEndpoints: 'yes' }, 'settings.stsRegionalEndpoints'],
    [{ region: 'eu-west-1', baseUrl: 'https://x' }, 'settings.baseUrl'],
  ])('refuse %j naming %s', (settings, field) => {
    expect(refusal(() => checkConnection('aws', settings, false))).toEqual({ code: 'ERR_CONNECTION_SETTING', field });
  });

  it('never let the caller set the ExternalId', () => {
    expect(refusal(() => checkConnection('aws', { region: 'eu-west-1', externalId: 'x' }, false))?.field).toBe(
      'settings.externalId',
    );
    expect(refusal(() => parseSetting('aws', 'externalId', 'x'))?.field).toBe('settings.externalId');
  });

  it('pair an access key id with a secret, both or neither', () => {
    const withKey = { region: 'eu-west-1', accessKeyId: 'AKIAIOSFODNN7EXAMPLE' };
    expect(refusal(() => checkConnection('aws', withKey, false))).toEqual({
      code: 'ERR_CONNECTION_SECRET',
      field: 'secret',
    });
    expect(refusal(() => checkConnection('aws', { region: 'eu-west-1' }, true))?.field).toBe('secret');
    expect(refusal(() => checkConnection('aws', withKey, true))).toBeUndefined();
  });
});

describe('http connections', () => {
  it('need a base URL and default to no auth with TLS verified', () => {
    expect(checkConnection('http', { baseUrl: 'https://api.example' }, false)).toEqual({
      baseUrl: 'https://api.example',
      authType: 'none',
      tlsVerify: true,
    });
    expect(refusal(() => checkConnection('http', {}, false))?.field).toBe('settings.baseUrl');
    // No user or password in the URL: it would sit in clear settings, and `http://a@b` goes to b.
    for (const baseUrl of ['https://soc:pw@api.example', 'http://169.254.169.254@evil.example/'])
      expect(refusal(() => checkConnection('http', { baseUrl }, false))?.field, baseUrl).toBe('settings.baseUrl');
  });

  it('ask for what each auth type needs, and only that', () => {
    const base = { baseUrl: 'https://api.example' };
    expect(refusal(() => checkConnection('http', { ...base, authType: 'header' }, true))?.field).toBe(
      'settings.headerName',
    );
    expect(refusal(() => checkConnection('http', { ...base, authType: 'basic' }, true))?.field).toBe(
      'settings.username',
    );
    expect(refusal(() => checkConnection('http', { ...base, authType: 'bearer', username: 'u' }, true))?.field).toBe(
      'settings.username',
    );
    expect(refusal(() => checkConnection('http', { ...base, authType: 'bearer' }, false))?.field).toBe('secret');
    expect(refusal(() => checkConnection('http', base, true))?.field).toBe('secret');
    expect(refusal(() => checkConnection('http', { ...base, authType: 'oauth' }, true))?.field).toBe(
      'settings.authType',
    );
    expect(
      checkConnection('http', { ...base, authType: 'header', headerName: 'X-Api-Key', tlsVerify: false }, true),
    ).toEqual({ ...base, authType: 'header', headerName: 'X-Api-Key', tlsVerify: false });
  });
});

describe('--set values and names', () => {
  it('are typed by their setting', () => {
    expect(parseSetting('aws', 'sessionDuration', '3600')).toBe(3600);
    expect(parseSetting('http', 'tlsVerify', 'false')).toBe(false);
    expect(parseSetting('aws', 'region', 'eu-west-1')).toBe('eu-west-1');
    expect(refusal(() => parseSetting('aws', 'sessionDuration', '1h'))?.field).toBe('settings.sessionDuration');
    expect(refusal(() => parseSetting('http', 'tlsVerify', 'no'))?.field).toBe('settings.tlsVerify');
    expect(refusal(() => parseSetting('http', 'regoin', 'x'))?.field).toBe('settings.regoin');
    expect(refusal(() => checkSettingName('aws', '__proto__'))?.field).toBe('settings.__proto__');
  });
});

describe("DESIGN.md's http setting names (auth, header, verifyTls)", () => {
  const base = { baseUrl: 'https://api.example' };
  const ours = { ...base, authType: 'header', headerName: 'X-Api-Key', tlsVerify: false };
  it('are taken as ours, alone or beside ours with the same value, and stored as ours only', () => {
    expect(checkConnection('http', { ...base, auth: 'header', header: 'X-Api-Key', verifyTls: false }, true)).toEqual(
      ours,
    );
    expect(checkConnection('http', { ...ours, auth: 'header', verifyTls: false }, true)).toEqual(ours);
    expect(checkConnection('http', { ...base, auth: 'bearer' }, true)).toEqual({
      ...base,
      authType: 'bearer',
      tlsVerify: true,
    });
    expect(parseSetting('http', 'auth', 'bearer')).toBe('bearer');
    expect(parseSetting('http', 'verifyTls', 'false')).toBe(false);
    expect(refusal(() => checkSettingName('http', 'header'))).toBeUndefined();
    expect(canonicalSettings('http', { auth: 'basic', username: 'u' })).toEqual({ authType: 'basic', username: 'u' });
    // The connection content body (authored on main) maps them too, and seals to the same destination.
    const body = parseConnectionBody(
      JSON.stringify({ type: 'http', fields: { ...base, auth: 'bearer' }, scope: { kind: 'global' }, sealed: {} }),
    );
    expect(body.fields).toEqual({ ...base, authType: 'bearer', tlsVerify: true });
    expect(sealedDestination('http', { ...base, auth: 'bearer' })).toEqual(
      sealedDestination('http', { ...base, authType: 'bearer' }),
    );
  });

  it('given beside ours with another value are refused naming the field, whichever comes first', () => {
    for (const settings of [
      { ...base, authType: 'none', auth: 'bearer' },
      { ...base, auth: 'bearer', authType: 'none' },
    ])
      expect(refusal(() => checkConnection('http', settings, true))).toEqual({
        code: 'ERR_CONNECTION_SETTING',
        field: 'settings.auth',
      });
    expect(refusal(() => checkConnection('http', { ...ours, verifyTls: true }, true))?.field).toBe(
      'settings.verifyTls',
    );
    expect(refusal(() => canonicalSettings('http', { headerName: 'A', header: 'B' }))?.field).toBe('settings.header');
    expect(refusal(() => canonicalSettings('http', { colour: 'red' }))?.field).toBe('settings.colour');
    // A view sent back with one name of the pair changed: the name still holding the stored value is an echo.
    const stored = { baseUrl: 'https://x', authType: 'bearer', tlsVerify: true };
    expect(canonicalSettings('http', { authType: 'basic', auth: 'bearer', username: 'u' }, stored)).toEqual({
      authType: 'basic',
      username: 'u',
    });
    expect(canonicalSettings('http', { authType: 'bearer', auth: 'none' }, stored)).toEqual({ authType: 'none' });
    expect(refusal(() => canonicalSettings('http', { authType: 'basic', auth: 'none' }, stored))?.field).toBe(
      'settings.auth',
    );
    // A bad value is named as given; http's other names are not aws's.
    expect(refusal(() => checkConnection('http', { ...base, auth: 'oauth' }, true))?.field).toBe('settings.auth');
    expect(refusal(() => checkConnection('aws', { region: 'eu-west-1', auth: 'x' }, false))?.field).toBe(
      'settings.auth',
    );
    expect(
      refusal(() =>
        parseConnectionBody(
          JSON.stringify({
            type: 'http',
            fields: { ...base, auth: 'none', authType: 'bearer' },
            scope: { kind: 'global' },
          }),
        ),
      )?.field,
    ).toBe('settings.auth');
  });

  it('are shown beside ours', () => {
    expect(withDesignNames('http', ours)).toEqual({ ...ours, auth: 'header', header: 'X-Api-Key', verifyTls: false });
    expect(withDesignNames('aws', { region: 'eu-west-1' })).toEqual({ region: 'eu-west-1' });
  });
});

describe('a duration refused', () => {
  it("suggests the caller's examples", () => {
    expect(() => parseDuration('abc', '--retention', '24h, 7d or 90d')).toThrow(/use e\.g\. 24h, 7d or 90d$/);
    expect(() => parseDuration('abc', 'ttl')).toThrow(/use e\.g\. 30m, 24h or 7d$/);
  });
});

describe('secrets as given', () => {
  it('are non-empty and bounded', () => {
    expect(checkSecret('s3cret@@@token')).toBe('s3cret@@@token');
    expect(refusal(() => checkSecret(''))?.code).toBe('ERR_CONNECTION_SECRET');
    expect(refusal(() => checkSecret('x'.repeat(MAX_SECRET_BYTES + 1)))?.code).toBe('ERR_CONNECTION_SECRET');
  });
});
