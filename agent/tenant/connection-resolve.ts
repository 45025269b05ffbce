/**
 * Which connection a name means in this tenant, for a run at an optional site (docs/connections.md#resolution):
 * the candidates are the tenant's own connection of that name (connection-store.ts, tenant scope) and the
 * connections main shared under it (shared-connections.ts, each with a scope). The most specific valid one wins:
 * site (the run's site), then tenant, then region (this tenant's region as main last told it), then global.
 *
 * The contested decision: at tenant scope the tenant's own connection beats one main shared for the tenant. A shared
 * item is read-only here, so without this the tenant's admins could never override what main set; main still wins
 * for a site by scoping to it, and `resolve` always says which one applies and why. Several shared items of one name
 * and scope (an authoring slip) are ordered by content id, so the choice is stable; the others show as beaten.
 * Answers never hold a secret: only `openForCall` opens one, in memory, for one call.
 */
import { NotFoundError } from '#common/errors.js';
import { checkConnection, type ConnectionSettings, type ConnectionType } from '#common/connections.js';
import { scopeText, type ScopeKind } from '#common/connection-content.js';
import type { ConnectionStore } from './connection-store.js';
import type { SharedConnection, SharedConnections } from './shared-connections.js';
import type { SiteStore } from './sites/site-store.js';

export interface Candidate {
  scope: string;
  kind: ScopeKind;
  source: 'local' | 'shared';
  contentId?: string;
  version?: number;
  valid: boolean;
  reason: string;
}
export interface Resolution {
  name: string;
  site: string | null;
  chosen: Omit<Candidate, 'valid' | 'reason'> | null;
  candidates: Candidate[];
  reason: string;
}
/** What a call needs of the chosen connection, its secret opened. */
export interface ConnectionForCall {
  name: string;
  type: ConnectionType;
  settings: ConnectionSettings;
  secret?: string;
}

type Found = Candidate & { item?: SharedConnection; open?: () => ConnectionForCall };

const RANK: Record<ScopeKind, number> = { site: 0, tenant: 1, region: 2, global: 3 };

export class ConnectionResolver {
  constructor(
    private readonly tenant: string,
    private readonly local: ConnectionStore,
    private readonly shared: SharedConnections,
    /** The tenant's sites: a site item is not valid at its site while that site is inactive. */
    private readonly sites?: Pick<SiteStore, 'isInactive'>,
  ) {}

  private whyNot(c: SharedConnection, site: string | undefined, siteInactive: boolean): string | null {
    const s = c.scope;
    if ((s.kind === 'site' || s.kind === 'tenant') && s.tenant !== this.tenant) return `for tenant ${s.tenant}`;
    if (s.kind === 'site' && site === undefined) return `for site ${s.site}; the call has no site`;
    if (s.kind === 'site' && s.site !== site) return `for site ${s.site}, not ${site}`;
    // As main warned when it was authored: it applies once the site is activated (no incident may name it till then).
    if (s.kind === 'site' && siteInactive) return `for site ${s.site}, which is inactive; it applies once activated`;
    if (s.kind === 'region' && c.region === null) return `for region ${s.region}; this tenant has no region`;
    if (s.kind === 'region' && c.region !== s.region) return `for region ${s.region}; this tenant is in ${c.region}`;
    try {
      checkConnection(c.type, c.settings, c.sealedSecret !== undefined);
    } catch {
      return 'secret not sealed for this tenant (re-seal it on main)';
    }
    return null;
  }

  /** Each candidate with the shared item it is, or (the tenant's own) how to open it for a call, from this read. */
  private async candidates(name: string, site: string | undefined): Promise<Found[]> {
    const out: Found[] = [];
    const own = await this.local.forCall(name).catch(() => undefined);
    const siteInactive = site !== undefined && this.sites !== undefined && (await this.sites.isInactive(site));
    if (own)
      out.push({
        scope: `tenant:${this.tenant}`,
        kind: 'tenant',
        source: 'local',
        valid: true,
        reason: "the tenant's own connection",
        open: own.open,
      });
    for (const c of await this.shared.named(name)) {
      const why = this.whyNot(c, site, siteInactive);
      out.push({
        scope: scopeText(c.scope),
        kind: c.scope.kind,
        source: 'shared',
        contentId: c.contentId,
        version: c.version,
        valid: why === null,
        reason: why ?? `shared by main (scope ${scopeText(c.scope)})`,
        item: c,
      });
    }
    return out.sort(
      (a, b) =>
        RANK[a.kind] - RANK[b.kind] ||
        Number(a.source === 'shared') - Number(b.source === 'shared') ||
        (a.contentId ?? '').localeCompare(b.contentId ?? ''),
    );
  }

  /** Which connection `name` means here for a call at `site`, and why; never a secret. */
  async resolve(name: string, site?: string): Promise<Resolution> {
    return this.explain(name, site, await this.candidates(name, site));
  }

  private explain(name: string, site: string | undefined, all: Found[]): Resolution {
    const candidates: Candidate[] = all.map(({ item: _item, open: _open, ...c }) => c);
    const chosen = candidates.find((c) => c.valid);
    const base = { name, site: site ?? null, candidates };
    if (!chosen) {
      const reason = candidates.length
        ? `no valid connection "${name}": ${candidates.map((c) => `${c.scope} ${c.reason}`).join('; ')}`
        : `no connection "${name}" in this tenant, of its own or shared`;
      return { ...base, chosen: null, reason };
    }
    const beaten = candidates.filter((c) => c.valid && c !== chosen);
    for (const c of beaten) c.reason = `valid, but ${label(chosen, site)} beats it`;
    const { valid: _v, reason: _r, ...picked } = chosen;
    return {
      ...base,
      chosen: picked,
      reason: beaten.length
        ? `${label(chosen, site)} beats ${[...new Set(beaten.map((c) => label(c, site)))].join(', ')}`
        : `${label(chosen, site)} is the only valid one`,
    };
  }

  /** Any connection of that name (whichever a call would pick): what an instance's creation checks it names. */
  async get(name: string): Promise<{ name: string; type: ConnectionType }> {
    const all = await this.candidates(name, undefined);
    if (all.length === 0)
      throw new NotFoundError('ERR_CONNECTION_NOT_FOUND', `no connection "${name}" in this tenant`, { field: 'name' });
    const c = all.find((x) => x.valid) ?? all[0];
    return { name, type: c.item ? c.item.type : (await this.local.get(name)).type };
  }

  /** The connection a call at `site` uses, its secret opened for that call only. */
  async openForCall(name: string, site?: string): Promise<ConnectionForCall & { resolution: Resolution }> {
    const all = await this.candidates(name, site);
    const resolution = this.explain(name, site, all);
    if (all.length === 0)
      throw new NotFoundError('ERR_CONNECTION_NOT_FOUND', `no connection "${name}" in this tenant`, { field: 'name' });
    const chosen = all.find((c) => c.valid);
    if (!chosen) throw new NotFoundError('ERR_CONNECTION_UNRESOLVED', resolution.reason, { field: 'connection' });
    if (!chosen.item) return { ...(chosen.open ? chosen.open() : await this.local.openForCall(name)), resolution };
    const secret = this.shared.secretOf(chosen.item);
    const { type, settings } = chosen.item;
    return { name, type, settings, ...(secret !== undefined ? { secret } : {}), resolution };
  }
}

/** How a reason names a candidate: `site paris`, `tenant (local)`, `region emea`, `global`. */
function label(c: Candidate, site: string | undefined): string {
  if (c.kind === 'site') return `site ${site}`;
  if (c.kind === 'tenant') return c.source === 'local' ? 'tenant (local)' : 'tenant';
  if (c.kind === 'region') return `region ${c.scope.slice('region:'.length)}`;
  return 'global';
}
