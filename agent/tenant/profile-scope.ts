/**
 * Enforces security profiles (profiles.ts) on every events and incidents route of the tenant: the caller's profile
 * (main's signed claim for a customer user created on main; the tenant's own user record for a tenant key) gives
 * `req.domains`, the set of domains it may see (undefined: every domain). Then, before the handler, a route naming
 * an incident (`/api/v1/incidents/:id…`), a run (`/api/v1/playbooks/runs/:run…`), a run's incident (`incident` in
 * the body or query) or a domain (`?domain=`) outside the set answers 404 as for one that does not exist; and before
 * serialising, lists (events, incidents, runs, domains) drop what lies outside, and indicators keep only the
 * incidents the caller may see (one seen only elsewhere is left out). An incident without a domain (made by
 * hand or fetched) counts as the Default Domain, where untagged events go. Which routes are scoped is decided from
 * the route table as routes are added (SCOPED_PREFIXES), so a new route under them is covered without an edit here.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { DEFAULT_DOMAIN } from '#common/events.js';
import { AccessDeniedError, NotFoundError } from '#common/errors.js';
import type { TenantPermission } from '#common/roles.js';
import type { CallerIdentity } from '#common/signed-request.js';
import type { ProfileStore } from './profiles.js';
import type { Incident, TenantStore } from './store.js';
import type { RunStore } from './playbooks/run-store.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Domains the caller's security profile allows; undefined when it has none (every domain). */
    domains?: ReadonlySet<string>;
  }
  interface FastifyInstance {
    /** The events and incidents routes security profiles scope (tests walk them all). */
    scopedRoutes: ScopedRoute[];
    /** The routes a caller with a security profile may not use (PROFILE_BARRED; tests walk them all). */
    barredRoutes: ScopedRoute[];
  }
}

/**
 * What configures the tenant for every domain: domains and tagging (a mapping would pull other events into the
 * caller's domains), users, keys and profiles (a wider profile), sites (a site's purge spans domains), content (an
 * automation rule runs on every incident), connections and integrations (where every domain's runs send data). A
 * caller limited to some domains changes none of it: 403 ERR_PROFILE_FORBIDDEN, before the route reads anything.
 */
export const PROFILE_BARRED: ReadonlySet<TenantPermission> = new Set<TenantPermission>([
  'events:write',
  'users:write',
  'sites:write',
  'content:write',
  'playbooks:write',
  'connections:write',
  'integrations:write',
]);

/** URL prefixes of the routes that answer events, incidents or what hangs off them. */
export const SCOPED_PREFIXES = [
  '/api/v1/events',
  '/api/v1/incidents',
  '/api/v1/playbooks/runs',
  '/api/v1/domains',
  '/api/v1/indicators',
];

export interface ScopedRoute {
  method: string;
  url: string;
}

const incidentGone = (id: string) =>
  new NotFoundError('ERR_INCIDENT_NOT_FOUND', `no incident ${id} in this tenant`, { field: 'id' });

export const incidentDomain = (i: Pick<Incident, 'domain'>) => i.domain ?? DEFAULT_DOMAIN;

/** The caller's profile name: main's claim carries it for its customer users, a tenant key's user record for keys. */
export function callerProfile(c: CallerIdentity | undefined): string | undefined {
  const p = (c as { profile?: unknown } | undefined)?.profile;
  return typeof p === 'string' ? p : undefined;
}

export function installProfileScope(
  app: FastifyInstance,
  d: { profiles: ProfileStore; store: TenantStore; runs: () => RunStore | undefined },
): { routes: ScopedRoute[] } {
  const routes: ScopedRoute[] = [];
  const barredRoutes: ScopedRoute[] = [];
  app.decorate('scopedRoutes', routes);
  app.decorate('barredRoutes', barredRoutes);
  const scoped = (url: string | undefined) => url !== undefined && SCOPED_PREFIXES.some((p) => url.startsWith(p));
  const barred = (need: unknown) => PROFILE_BARRED.has(need as TenantPermission);
  app.addHook('onRoute', (r) => {
    const methods = [r.method].flat().filter((m) => m !== 'HEAD');
    if (barred((r.config as { tenantPermission?: unknown } | undefined)?.tenantPermission))
      for (const m of methods) barredRoutes.push({ method: m, url: r.url });
    if (scoped(r.url)) for (const m of methods) routes.push({ method: m, url: r.url });
  });

  const visible = async (req: FastifyRequest, id: string) => {
    const i = await d.store.getIncident(id); // 404 when missing
    if (!req.domains!.has(incidentDomain(i))) throw incidentGone(id);
  };

  // After the signature guard's (it resolves the caller), before the body is checked: nothing of it is looked at.
  app.addHook('preValidation', async (req) => {
    const name = callerProfile(req.caller);
    if (name !== undefined && barred(req.routeOptions.config?.tenantPermission))
      throw new AccessDeniedError(
        'ERR_PROFILE_FORBIDDEN',
        `security profile "${name}" limits you to its domains: domains, tagging, users, profiles, sites, content, ` +
          'connections and integrations are changed by a user without a profile',
      );
  });

  app.addHook('preHandler', async (req) => {
    const name = callerProfile(req.caller);
    if (name === undefined) return;
    req.domains = new Set(d.profiles.find(name)?.domains ?? []);
    const url = req.routeOptions.url;
    const params = (req.params ?? {}) as Record<string, string>;
    const query = (req.query ?? {}) as Record<string, string>;
    const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
    if (url?.startsWith('/api/v1/incidents/:id')) await visible(req, params.id);
    if (url?.startsWith('/api/v1/playbooks/runs/:run')) {
      const run = await d.runs()?.state(params.run);
      if (run)
        await visible(req, run.incident).catch(() => {
          throw new NotFoundError('ERR_PLAYBOOK_RUN_NOT_FOUND', `no playbook run ${params.run} in this tenant`, {
            field: 'run',
          });
        });
    }
    for (const inc of [query.incident, body.incident]) if (typeof inc === 'string') await visible(req, inc);
    for (const dom of [query.domain, params.name])
      if (typeof dom === 'string' && url?.startsWith(dom === query.domain ? '/api/v1/events' : '/api/v1/domains/'))
        if (!req.domains.has(dom))
          throw new NotFoundError('ERR_DOMAIN_NOT_FOUND', `no domain "${dom}" in this tenant`, { field: 'domain' });
  });

  app.addHook('preSerialization', async (req, _reply, payload: unknown) => {
    const allowed = req.domains;
    if (!allowed || !scoped(req.routeOptions.url) || !payload || typeof payload !== 'object') return payload;
    const bare = Array.isArray(payload); // the runs list answers a bare array
    const p = (bare ? { items: payload } : payload) as { items?: unknown[] } & Record<string, unknown>;
    if (!Array.isArray(p.items)) return payload;
    const url = req.routeOptions.url!;
    let items = p.items as Record<string, unknown>[];
    const visibleIds = async (ids: string[]) => {
      const incs = await d.store.incidents.getMany(ids.map((i) => i.padStart(12, '0')));
      return new Set(ids.filter((_, k) => incs[k] && allowed.has(incidentDomain(incs[k]!))));
    };
    if (url === '/api/v1/domains') items = items.filter((x) => allowed.has(String(x.name)));
    else if (url.startsWith('/api/v1/playbooks/runs')) {
      const ok = await visibleIds([...new Set(items.map((r) => String(r.incident)))]);
      items = items.filter((r) => ok.has(String(r.incident)));
    } else if (url.startsWith('/api/v1/indicators')) {
      // An indicator is seen with the incidents the caller may see; one seen only in other domains is left out.
      const ok = await visibleIds([...new Set(items.flatMap((x) => (x.incidents as string[] | undefined) ?? []))]);
      items = items
        .map((x) => ({ ...x, incidents: ((x.incidents as string[] | undefined) ?? []).filter((i) => ok.has(i)) }))
        .filter((x, k) => x.incidents.length > 0 || ((items[k].incidents as string[] | undefined) ?? []).length === 0);
    } else items = items.filter((x) => allowed.has(typeof x.domain === 'string' ? x.domain : DEFAULT_DOMAIN));
    return bare ? items : { ...p, items };
  });
  return { routes };
}
