/** DESIGN.md's names of aws connection settings (common/connections.ts SETTING_ALIASES): taken, converted, shown. */
import { describe, expect, it } from 'vitest';
import {
  canonicalName,
  canonicalSettings,
  checkConnection,
  checkSettingName,
  parseSetting,
  sealedDestination,
  withDesignNames,
} from '#common/connections.js';
import { parseConnectionBody, sealedName } from '#common/connection-content.js';
import { settingsOf } from '../../admin/connections.js';

const refusal = (fn: () => unknown): { code: string; field: string; message: string } | undefined => {
  try {
    fn();
  } catch (e) {
    const { code, field, message } = e as { code: string; field: string; message: string };
    return { code, field, message };
  }
  return undefined;
};

const region = 'eu-west-1';
const design = {
  region,
  roleSessionDuration: 3600,
  endpoint: 'https://vpce.example:8443',
  stsEndpoint: 'https://sts.vpce.example',
  stsRegionalEndpoint: 'off',
  retries: 2,
};
const ours = {
  region,
  sessionDuration: 3600,
  endpointUrl: 'https://vpce.example:8443',
  stsEndpointUrl: 'https://sts.vpce.example',
  stsRegionalEndpoints: false,
  maxAttempts: 3,
};

describe("aws settings under DESIGN.md's names", () => {
  it('are taken as ours, converted, and stored as ours only', () => {
    expect(checkConnection('aws', design, false)).toEqual(ours);
    expect(checkConnection('aws', { ...ours, ...design }, false)).toEqual(ours);
    for (const [name, ourName] of [
      ['roleSessionDuration', 'sessionDuration'],
      ['endpoint', 'endpointUrl'],
      ['stsEndpoint', 'stsEndpointUrl'],
      ['stsRegionalEndpoint', 'stsRegionalEndpoints'],
      ['retries', 'maxAttempts'],
    ]) {
      expect(canonicalName('aws', name)).toBe(ourName);
      expect(refusal(() => checkSettingName('aws', name))).toBeUndefined();
    }
  });

  it('an unknown setting is refused naming both sets of names', () => {
    const r = refusal(() => checkConnection('aws', { region, roleSessionLength: 900 }, false));
    expect(r).toMatchObject({ code: 'ERR_CONNECTION_SETTING', field: 'settings.roleSessionLength' });
    expect(r?.message).toContain('sessionDuration');
    expect(r?.message).toContain('also named roleSessionDuration, endpoint, stsEndpoint, stsRegionalEndpoint, retries');
  });

  it('stsRegionalEndpoint: on or off, true and false taken too', () => {
    for (const [v, want] of [
      ['on', true],
      ['off', false],
      [true, true],
      [false, false],
      ['true', true],
      ['false', false],
    ] as const)
      expect(checkConnection('aws', { region, stsRegionalEndpoint: v }, false).stsRegionalEndpoints).toBe(want);
    expect(parseSetting('aws', 'stsRegionalEndpoint', 'on')).toBe('on');
    expect(parseSetting('aws', 'stsRegionalEndpoint', 'false')).toBe('off');
    for (const v of ['yes', 1, 'ON', ''])
      expect(refusal(() => checkConnection('aws', { region, stsRegionalEndpoint: v }, false))).toMatchObject({
        code: 'ERR_CONNECTION_SETTING',
        field: 'settings.stsRegionalEndpoint',
        message: 'settings.stsRegionalEndpoint: must be on or off',
      });
    expect(refusal(() => parseSetting('aws', 'stsRegionalEndpoint', 'yes'))?.field).toBe(
      'settings.stsRegionalEndpoint',
    );
    // Ours stays a boolean.
    expect(refusal(() => checkConnection('aws', { region, stsRegionalEndpoints: 'on' }, false))?.field).toBe(
      'settings.stsRegionalEndpoints',
    );
  });

  it('retries N is maxAttempts N+1, retries 0-9', () => {
    for (let n = 0; n <= 9; n++) expect(checkConnection('aws', { region, retries: n }, false).maxAttempts).toBe(n + 1);
    expect(parseSetting('aws', 'retries', '4')).toBe(4);
    for (const v of [-1, 10, 1.5, '3'])
      expect(refusal(() => checkConnection('aws', { region, retries: v }, false))).toMatchObject({
        field: 'settings.retries',
        message: 'settings.retries: must be a whole number from 0 to 9',
      });
    expect(refusal(() => parseSetting('aws', 'retries', 'many'))?.field).toBe('settings.retries');
  });

  it('given beside ours are compared once converted', () => {
    expect(checkConnection('aws', { region, retries: 4, maxAttempts: 5 }, false).maxAttempts).toBe(5);
    expect(checkConnection('aws', { region, maxAttempts: 1, retries: 0 }, false).maxAttempts).toBe(1);
    expect(checkConnection('aws', { region, stsRegionalEndpoint: 'on', stsRegionalEndpoints: true }, false)).toEqual({
      region,
      stsRegionalEndpoints: true,
    });
    // Different values are refused naming DESIGN.md's name, whichever comes first.
    for (const s of [
      { region, retries: 4, maxAttempts: 4 },
      { region, maxAttempts: 4, retries: 4 },
    ])
      expect(refusal(() => checkConnection('aws', s, false))).toMatchObject({
        code: 'ERR_CONNECTION_SETTING',
        field: 'settings.retries',
        message:
          'settings.retries: is maxAttempts by another name, and the two values differ (maxAttempts 4 is retries 3)',
      });
    expect(
      refusal(() => canonicalSettings('aws', { stsRegionalEndpoints: true, stsRegionalEndpoint: 'off' }))?.field,
    ).toBe('settings.stsRegionalEndpoint');
    expect(refusal(() => canonicalSettings('aws', { endpointUrl: 'https://a', endpoint: 'https://b' }))?.field).toBe(
      'settings.endpoint',
    );
    expect(canonicalSettings('aws', { retries: 0, stsRegionalEndpoint: 'on', endpoint: 'https://a' })).toEqual({
      maxAttempts: 1,
      stsRegionalEndpoints: true,
      endpointUrl: 'https://a',
    });
    // A value that must be converted is checked on the way in.
    expect(refusal(() => canonicalSettings('aws', { retries: 12 }))?.field).toBe('settings.retries');
  });

  it('a view sent back with one name changed takes the changed one', () => {
    const stored = checkConnection('aws', { region, maxAttempts: 3 }, false);
    const view = withDesignNames('aws', stored);
    expect(canonicalSettings('aws', { ...view, retries: 5 }, stored)).toMatchObject({ maxAttempts: 6 });
    expect(canonicalSettings('aws', { ...view, maxAttempts: 8 }, stored)).toMatchObject({ maxAttempts: 8 });
    expect(canonicalSettings('aws', { ...view, stsRegionalEndpoint: 'off' }, stored)).toMatchObject({
      stsRegionalEndpoints: false,
    });
    expect(canonicalSettings('aws', { ...view, stsRegionalEndpoints: false }, stored)).toMatchObject({
      stsRegionalEndpoints: false,
    });
    expect(canonicalSettings('aws', view, stored)).toEqual(stored);
    // Both changed, to different values: refused.
    expect(refusal(() => canonicalSettings('aws', { retries: 5, maxAttempts: 8 }, stored))?.field).toBe(
      'settings.retries',
    );
  });

  it("are shown beside ours, in DESIGN.md's form", () => {
    expect(withDesignNames('aws', ours)).toEqual({ ...ours, ...design });
    expect(withDesignNames('aws', { region, stsRegionalEndpoints: true })).toEqual({
      region,
      stsRegionalEndpoints: true,
      stsRegionalEndpoint: 'on',
    });
    expect(withDesignNames('aws', { region, maxAttempts: 1 })).toMatchObject({ retries: 0 });
  });

  it("work in the CLI's --set: typed in their own form, converted where the whole is checked", () => {
    const set = settingsOf('aws', ['region=eu-west-1', 'retries=2', 'stsRegionalEndpoint=false', 'endpoint=https://e']);
    expect(set).toEqual({ region, retries: 2, stsRegionalEndpoint: 'off', endpoint: 'https://e' });
    expect(checkConnection('aws', set, false)).toEqual({
      region,
      maxAttempts: 3,
      stsRegionalEndpoints: false,
      endpointUrl: 'https://e',
    });
    // Ranges are checked with the whole (as for ours), forms as typed.
    expect(
      refusal(() => checkConnection('aws', settingsOf('aws', ['region=eu-west-1', 'retries=10']), false))?.field,
    ).toBe('settings.retries');
    expect(refusal(() => settingsOf('aws', ['stsRegionalEndpoint=yes']))?.field).toBe('settings.stsRegionalEndpoint');
  });

  it('work in a connection authored on main, sealed to the same destination', () => {
    const body = parseConnectionBody(JSON.stringify({ type: 'aws', fields: design, scope: { kind: 'global' } }));
    expect(body.fields).toEqual(ours);
    expect(sealedDestination('aws', design)).toEqual(sealedDestination('aws', ours));
    expect(sealedName('c', 'aws', design)).toBe(sealedName('c', 'aws', body.fields));
    expect(
      refusal(() =>
        parseConnectionBody(
          JSON.stringify({ type: 'aws', fields: { region, retries: 1, maxAttempts: 3 }, scope: { kind: 'global' } }),
        ),
      )?.field,
    ).toBe('settings.retries');
  });
});
