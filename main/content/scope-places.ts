/**
 * Whether the tenant or site a connection item's scope names exists (docs/connections.md#scoped-connections): main
 * knows its tenants and their regions; a tenant's sites live in the tenant's own store (docs/sites.md), so main asks
 * the tenant for them through the relay, as its other routes into a tenant do. A scope naming a tenant main does not
 * know, or a site its tenant does not have, would be accepted to reach no one; it is refused (404 naming `scope`), and
 * when the tenant cannot be asked, 503 naming `scope` (a site scope is not taken on trust). A region is free-form (a
 * tenant may be placed in it later): one no tenant has yet is taken, with a warning saying so.
 * Not the scope's form (common/connection-content.ts) nor what a scope reaches at share time (propagation.ts).
 */
import type { ConnectionScope } from '#common/connection-content.js';
import { NotFoundError, UnavailableError, errorMessage, isPalisadeError } from '#common/errors.js';
import type { CallerIdentity } from '#common/signed-request.js';
import type { TenantService } from '../tenants/tenants.js';

/** What the check reads: main's tenants, and one tenant's sites (throws when the tenant cannot be asked). */
export interface ScopePlaces {
  tenants(): Promise<{ name: string; region: string | null }[]>;
  sites(tenant: string): Promise<{ name: string; active: boolean }[]>;
}

/** Main asking a tenant for its sites: read-only, as little as the question needs. */
export const SCOPE_CHECK_CALLER: CallerIdentity = Object.freeze({
  id: 'system:connection-scope',
  name: 'main connection scope check',
  roles: ['read-only'],
});
/** A scope check waits this long for the tenant: an author waits on it; a healthy tenant answers in milliseconds. */
const SITES_TIMEOUT_MS = 5_000;

export function tenantPlaces(tenants: TenantService): ScopePlaces {
  return {
    tenants: async () => (await tenants.list()).map((t) => ({ name: t.name, region: t.region })),
    async sites(tenant) {
      const r = await tenants.relay(tenant, {
        method: 'GET',
        path: '/api/v1/sites',
        user: SCOPE_CHECK_CALLER,
        timeoutMs: SITES_TIMEOUT_MS,
      });
      if (r.status !== 200) throw new Error(`the tenant answered HTTP ${r.status}`);
      const items = JSON.parse(r.body.toString('utf8')) as unknown;
      if (!Array.isArray(items)) throw new Error('the tenant answered no list of sites');
      return items as { name: string; active: boolean }[];
    },
  };
}

/** Refuses a scope naming an unknown tenant or site; answers the warnings of one that reaches no one yet. */
export async function checkScopePlaces(scope: ConnectionScope, places: ScopePlaces): Promise<string[]> {
  if (scope.kind === 'global') return [];
  const tenants = await places.tenants();
  if (scope.kind === 'region') {
    if (tenants.some((t) => t.region === scope.region)) return [];
    return [`scope: no tenant is in region ${scope.region} yet; the connection reaches tenants placed there later`];
  }
  const tenant = scope.tenant!;
  if (!tenants.some((t) => t.name === tenant))
    throw new NotFoundError(
      'ERR_TENANT_NOT_FOUND',
      `scope: no tenant named "${tenant}"; list them with 'palisade tenants'`,
      {
        field: 'scope',
      },
    );
  if (scope.kind === 'tenant') return [];
  let sites: { name: string; active: boolean }[];
  try {
    sites = await places.sites(tenant);
  } catch (e) {
    const why = isPalisadeError(e) ? `${e.code}: ${e.message}` : errorMessage(e);
    throw new UnavailableError(
      'ERR_CONNECTION_SCOPE_UNCHECKED',
      `scope: cannot ask tenant ${tenant} whether it has site ${scope.site} (${why}); retry when it runs`,
      { field: 'scope', cause: e },
    );
  }
  const site = sites.find((s) => s.name === scope.site);
  if (!site)
    throw new NotFoundError(
      'ERR_SITE_NOT_FOUND',
      `scope: tenant ${tenant} has no site "${scope.site}"; list them with 'palisade sites list --tenant ${tenant}'`,
      { field: 'scope' },
    );
  return site.active ? [] : [`scope: site ${scope.site} of tenant ${tenant} is inactive; it applies once activated`];
}
