/**
 * A connection item's scope checked against what exists (main/content/scope-places.ts, connection-rules.ts): a tenant
 * main does not know or a site its tenant does not have is refused with 404 naming `scope`, a tenant that cannot be
 * asked for its sites with 503 naming `scope`; a region no tenant has, or an inactive site, is taken with a warning.
 * The places are a fake of our own seam (main's tenants, one tenant's sites); no I/O.
 */
import { describe, expect, it } from 'vitest';
import { parseScope } from '#common/connection-content.js';
import { UnavailableError } from '#common/errors.js';
import { connectionRules } from '../../main/content/connection-rules.js';
import { checkScopePlaces, type ScopePlaces } from '../../main/content/scope-places.js';
import type { ContentItemRecord, Registry } from '../../main/registry.js';

const asked: string[] = [];
const places: ScopePlaces = {
  tenants: async () => [
    { name: 'ea', region: 'emea' },
    { name: 'down', region: null },
  ],
  async sites(tenant) {
    asked.push(tenant);
    if (tenant === 'down') throw new UnavailableError('ERR_TENANT_STOPPED', 'tenant "down" is stopped');
    return [
      { name: 'paris', active: true },
      { name: 'lyon', active: false },
    ];
  },
};

/** `status code field|message` of the refusal of `scope`, or its warnings. */
async function outcome(scope: string): Promise<string | string[]> {
  try {
    return await checkScopePlaces(parseScope(scope), places);
  } catch (e) {
    const err = e as { category: string; code: string; field?: string; message: string };
    return `${err.category} ${err.code} ${err.field}|${err.message}`;
  }
}

describe('a connection scope checked against what exists', () => {
  it('takes global, a known tenant and a known active site without a word', async () => {
    expect(await outcome('global')).toEqual([]);
    expect(await outcome('region:emea')).toEqual([]);
    asked.length = 0;
    expect(await outcome('tenant:ea')).toEqual([]);
    expect(asked).toEqual([]); // a tenant scope needs no question to the tenant
    expect(await outcome('site:ea/paris')).toEqual([]);
    expect(asked).toEqual(['ea']);
  });

  it('refuses a tenant main does not know, and a site its tenant does not have, naming scope', async () => {
    expect(await outcome('tenant:nosuch')).toBe(
      `not-found ERR_TENANT_NOT_FOUND scope|scope: no tenant named "nosuch"; list them with 'palisade tenants'`,
    );
    expect(await outcome('site:nosuch/paris')).toMatch(/^not-found ERR_TENANT_NOT_FOUND scope\|scope: no tenant/);
    expect(await outcome('site:ea/nosite')).toBe(
      `not-found ERR_SITE_NOT_FOUND scope|scope: tenant ea has no site "nosite"; list them with ` +
        `'palisade sites list --tenant ea'`,
    );
  });

  it('refuses a site scope whose tenant cannot be asked with 503 naming scope', async () => {
    expect(await outcome('site:down/paris')).toBe(
      'unavailable ERR_CONNECTION_SCOPE_UNCHECKED scope|scope: cannot ask tenant down whether it has site paris ' +
        '(ERR_TENANT_STOPPED: tenant "down" is stopped); retry when it runs',
    );
  });

  it('takes a region no tenant has, and an inactive site, with a warning', async () => {
    expect(await outcome('region:nowhere')).toEqual([
      'scope: no tenant is in region nowhere yet; the connection reaches tenants placed there later',
    ]);
    expect(await outcome('site:ea/lyon')).toEqual([
      'scope: site lyon of tenant ea is inactive; it applies once activated',
    ]);
  });

  it('is checked at create and edit when the draft is a whole connection, and at publish', async () => {
    const rules = connectionRules({} as Registry, places);
    const body = (scope: Record<string, string>) =>
      JSON.stringify({ type: 'http', fields: { baseUrl: 'https://svc.example', authType: 'none' }, scope });
    const item = { type: 'connection', name: 'svc', latest: 1 } as ContentItemRecord;
    await expect(
      rules.check!({ type: 'connection', name: 'svc', body: body({ kind: 'tenant', tenant: 'nosuch' }) }),
    ).rejects.toMatchObject({ code: 'ERR_TENANT_NOT_FOUND', field: 'scope' });
    await expect(
      rules.check!({ body: body({ kind: 'site', tenant: 'ea', site: 'nosite' }), type: 'connection' }, item),
    ).rejects.toMatchObject({ code: 'ERR_SITE_NOT_FOUND', field: 'scope' });
    // A draft that is no whole connection yet is free text, as before.
    await expect(rules.check!({ type: 'connection', name: 'svc', body: 'to do' })).resolves.toBeUndefined();
    await expect(rules.publishing!(item, body({ kind: 'tenant', tenant: 'nosuch' }))).rejects.toMatchObject({
      code: 'ERR_TENANT_NOT_FOUND',
    });
    expect(await rules.publishing!(item, body({ kind: 'region', region: 'nowhere' }))).toEqual([
      'scope: no tenant is in region nowhere yet; the connection reaches tenants placed there later',
    ]);
  });
});
