/**
 * Scoped connections in one tenant on a real LevelDB in a temp dir (agent/tenant/shared-connections.ts,
 * connection-resolve.ts, common/connection-content.ts): a pushed item keeps only its own sealed copy, re-sealed at
 * rest; a copy sealed for another tenant, or under the plain name, does not open; resolution ranks site, tenant (own
 * before shared), region, global and explains; a region item of another region, a site item without the site, and a
 * site item at its site while the site is inactive are invalid; nothing valid is ERR_CONNECTION_UNRESOLVED, nothing
 * at all ERR_CONNECTION_NOT_FOUND; a change of a connection applies to the next call.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import nacl from 'tweetnacl';
import { bodyForTenant, parseConnectionBody, parseScope, sealedName } from '../../common/connection-content.js';
import { sealSecretFor } from '../../common/sealed-secret.js';
import { ConnectionStore } from '../../agent/tenant/connection-store.js';
import { SharedConnections } from '../../agent/tenant/shared-connections.js';
import { ConnectionResolver } from '../../agent/tenant/connection-resolve.js';
import { SiteStore } from '../../agent/tenant/sites/site-store.js';

const acme = nacl.box.keyPair();
const globex = nacl.box.keyPair();
const pub = (k: nacl.BoxKeyPair) => Buffer.from(k.publicKey).toString('base64');
const fields = { baseUrl: 'https://svc.example', authType: 'bearer' };

let dir: string;
let db: Level<string, unknown>;
let shared: SharedConnections;
let local: ConnectionStore;
let resolver: ConnectionResolver;

function body(scope: string, secret: string | null, sealedFor: Record<string, string> = {}): string {
  const sealed =
    secret === null
      ? undefined
      : { acme: sealSecretFor(pub(acme), 'acme', sealedName('svc', 'http', fields), secret), ...sealedFor };
  return JSON.stringify({ type: 'http', fields, scope: parseScope(scope), ...(sealed ? { sealed } : {}) });
}
const push = (id: string, b: string, region: string | null = 'emea', version = 1) =>
  shared.accept(id, { type: 'connection', name: 'svc', body: b, version, labels: ['all'], region });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-resolve-'));
  db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
  await db.open();
  local = new ConnectionStore(db, 'acme', acme.secretKey);
  shared = new SharedConnections(db, 'acme', acme.secretKey);
  resolver = new ConnectionResolver('acme', local, shared);
});
afterAll(async () => {
  await db?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('a connection body', () => {
  it("is sent to each tenant with only that tenant's copy", () => {
    const b = parseConnectionBody(
      body('region:emea', 's3cret', {
        globex: sealSecretFor(pub(globex), 'globex', sealedName('svc', 'http', fields), 'x'),
      }),
    );
    const forAcme = bodyForTenant(b, 'acme');
    expect('body' in forAcme && Object.keys(forAcme.body.sealed!)).toEqual(['acme']);
    expect(bodyForTenant(b, 'initech')).toEqual({ missing: true });
    // A secret sealed to no tenant yet (authored before any joined its scope) is missing for every tenant.
    const none = parseConnectionBody(JSON.stringify({ type: 'http', fields, scope: { kind: 'global' }, sealed: {} }));
    expect(bodyForTenant(none, 'acme')).toEqual({ missing: true });
    const open = JSON.stringify({ type: 'http', fields: { baseUrl: 'https://x.example' }, scope: { kind: 'global' } });
    expect(bodyForTenant(parseConnectionBody(open), 'initech')).toMatchObject({ body: { scope: { kind: 'global' } } });
  });

  it('is refused with the field named when its scope or fields are wrong', () => {
    expect(() => parseScope('site:acme')).toThrow(/scope: "site:acme" is not site:T\/S/);
    expect(() => parseConnectionBody(JSON.stringify({ type: 'http', fields, scope: { kind: 'planet' } }))).toThrow(
      /scope: kind must be one of/,
    );
    // A bearer connection with no sealed copy at all has no secret: refused as the tenant's own would be.
    expect(() => parseConnectionBody(body('global', null))).toThrow(/secret: authType bearer needs/);
  });
});

describe('a pushed connection', () => {
  it('keeps no secret in the body the tenant lists; a copy for another tenant or name does not open', async () => {
    const kept = await push('cnt_000000000001', body('global', 'global-secret'));
    expect(JSON.parse(kept)).toEqual({
      type: 'http',
      fields: expect.any(Object),
      scope: { kind: 'global' },
      hasSecret: true,
    });
    const forGlobex = JSON.stringify({
      type: 'http',
      fields,
      scope: { kind: 'global' },
      sealed: { acme: sealSecretFor(pub(acme), 'globex', sealedName('svc', 'http', fields), 'x') },
    });
    await expect(push('cnt_000000000009', forGlobex)).rejects.toMatchObject({ code: 'ERR_CONNECTION_SEALED' });
    const plainName = JSON.stringify({
      type: 'http',
      fields,
      scope: { kind: 'global' },
      sealed: { acme: sealSecretFor(pub(acme), 'acme', 'svc', 'x') },
    });
    await expect(push('cnt_000000000009', plainName)).rejects.toMatchObject({ code: 'ERR_CONNECTION_SEALED' });
  });

  it('refuses a copy kept in a version that sends the secret elsewhere (another baseUrl, auth) and keeps nothing', async () => {
    const good = JSON.parse(body('tenant:acme', 'mssp-token'));
    await push('cnt_000000000010', JSON.stringify(good));
    expect((await shared.named('svc')).find((c) => c.contentId === 'cnt_000000000010')).toBeDefined();
    for (const moved of [
      { ...fields, baseUrl: 'https://attacker.example' },
      { ...fields, authType: 'header', headerName: 'X-Leak' },
      { ...fields, tlsVerify: false },
    ]) {
      const attack = JSON.stringify({ ...good, fields: moved });
      await expect(push('cnt_000000000010', attack, 'emea', 2)).rejects.toMatchObject({
        code: 'ERR_CONNECTION_SEALED',
        message: expect.stringMatching(/other connection settings.*--update cnt_000000000010 --secret-stdin/),
      });
    }
    // Nothing of the attack was kept: the item still goes to the service it was sealed for.
    const kept = (await shared.named('svc')).find((c) => c.contentId === 'cnt_000000000010')!;
    expect(kept).toMatchObject({ version: 1, settings: { baseUrl: 'https://svc.example' } });
    expect(shared.secretOf(kept)).toBe('mssp-token');
    // A setting that does not move the secret (scope stays, no destination change) still opens.
    expect(sealedName('svc', 'http', { ...fields, authType: 'bearer', tlsVerify: true })).toBe(
      sealedName('svc', 'http', fields),
    );
    await shared.remove('cnt_000000000010');
  });
  it('is resolved most specific first, with reasons', async () => {
    expect((await resolver.resolve('svc')).reason).toBe('global is the only valid one');
    await push('cnt_000000000002', body('region:emea', 'region-secret'));
    await push('cnt_000000000003', body('region:apac', 'apac-secret'));
    await push('cnt_000000000004', body('site:acme/paris', 'paris-secret'));
    let r = await resolver.resolve('svc');
    expect(r.chosen).toMatchObject({ scope: 'region:emea', contentId: 'cnt_000000000002' });
    expect(r.reason).toBe('region emea beats global');
    expect(r.candidates.find((c) => c.scope === 'region:apac')).toMatchObject({ valid: false });
    expect(r.candidates.find((c) => c.scope === 'site:acme/paris')?.reason).toContain('no site');
    expect((await resolver.openForCall('svc')).secret).toBe('region-secret');
    expect((await resolver.openForCall('svc', 'paris')).secret).toBe('paris-secret');

    await push('cnt_000000000005', body('tenant:acme', 'tenant-secret'));
    expect((await resolver.openForCall('svc', 'lyon')).secret).toBe('tenant-secret');
    await local.create({ name: 'svc', type: 'http', settings: fields, secret: 'own-secret' }, 'test');
    r = await resolver.resolve('svc', 'lyon');
    expect(r.chosen).toMatchObject({ scope: 'tenant:acme', source: 'local' });
    expect(r.reason).toBe('tenant (local) beats tenant, region emea, global');
    expect((await resolver.openForCall('svc')).secret).toBe('own-secret');
    expect((await resolver.openForCall('svc', 'paris')).secret).toBe('paris-secret');
    expect(JSON.stringify(await resolver.resolve('svc', 'paris'))).not.toMatch(/secret"|-secret/);
    // Calls keep what they read only until the connection changes.
    await local.update('svc', { secret: { set: 'own-secret-2' } }, 'test');
    expect((await resolver.openForCall('svc')).secret).toBe('own-secret-2');
    await local.remove('svc');
    expect((await resolver.openForCall('svc', 'lyon')).secret).toBe('tenant-secret');
  });

  it("is invalid once its region is not the tenant's; nothing valid and nothing at all are told apart", async () => {
    await shared.accept('cnt_000000000007', {
      type: 'connection',
      name: 'other',
      body: JSON.stringify({
        type: 'http',
        fields: { baseUrl: 'https://x.example' },
        scope: { kind: 'region', region: 'emea' },
      }),
      version: 1,
      labels: ['all'],
      region: 'apac',
    });
    await expect(resolver.openForCall('other')).rejects.toMatchObject({ code: 'ERR_CONNECTION_UNRESOLVED' });
    expect((await resolver.resolve('other')).candidates[0].reason).toBe('for region emea; this tenant is in apac');
    await expect(resolver.openForCall('nothing')).rejects.toMatchObject({ code: 'ERR_CONNECTION_NOT_FOUND' });
    await shared.remove('cnt_000000000007');
    expect((await resolver.resolve('other')).chosen).toBeNull();
  });

  it('a site item is not valid at its site while the site is inactive, as main warned when it was authored', async () => {
    const sites = new SiteStore(db);
    await sites.create('lyon');
    const atSites = new ConnectionResolver('acme', local, shared, sites);
    await push('cnt_000000000008', body('site:acme/lyon', 'lyon-secret'));
    expect((await atSites.openForCall('svc', 'lyon')).secret).toBe('lyon-secret');
    await sites.deactivate('lyon');
    const r = await atSites.resolve('svc', 'lyon');
    expect(r.candidates.find((c) => c.scope === 'site:acme/lyon')).toMatchObject({
      valid: false,
      reason: 'for site lyon, which is inactive; it applies once activated',
    });
    expect(r.chosen).toMatchObject({ scope: 'tenant:acme', source: 'shared' });
    expect((await atSites.openForCall('svc', 'lyon')).secret).toBe('tenant-secret');
    await sites.activate('lyon');
    expect((await atSites.openForCall('svc', 'lyon')).secret).toBe('lyon-secret');
    await shared.remove('cnt_000000000008');
  });
});
