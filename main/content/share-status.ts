/**
 * What `content status ID` answers (docs/content.md#sharing-to-tenants): each tenant's state for the item, computed
 * from its share record, never stored — `sharing` while a push is in flight, `shared` when it holds the target and
 * nothing newer is published, `out-of-date` when it holds an older version (or a newer one was published since),
 * `failed` when it holds none and the push failed, else `not-shared` — and the rollup over the tenants involved.
 * For a shared playbook, each tenant's row also lists its dependencies (docs/content.md#dependencies) and whether each
 * is there at the version the share took; a tenant with one missing is not done, so the rollup is then Incomplete.
 * Likewise a tenant whose answer to the push named inactive sites (docs/sites.md): it holds the item, but the share
 * did not reach those sites, so its row names them and the rollup is Incomplete until a share reaches them all.
 * Not the pushes (propagation.ts).
 */
import type { ContentItemRecord, ContentLogRecord, ContentShareRecord, TenantRecord } from '../registry.js';
import { isName } from '#common/names.js';
import { ShareTargets } from './share-targets.js';
import { scopeReaches, scopeText } from '#common/connection-content.js';

export type TenantShareState = 'not-shared' | 'sharing' | 'shared' | 'failed' | 'out-of-date';
export type Rollup = 'Successful' | 'Sharing' | 'Incomplete' | 'Not Shared';
/** A dependency of a shared playbook on one tenant: the version the share took, what the tenant holds. */
export interface DependencyView {
  id: string;
  type: string;
  name: string;
  version: number;
  held: number | null;
  present: boolean;
}
export interface TenantShareView {
  tenant: string;
  state: TenantShareState;
  version: number | null;
  target: number | null;
  reason: string | null;
  at: string | null;
  dependencies: DependencyView[];
}
export interface ShareStatus {
  id: string;
  rollup: Rollup;
  version: number;
  published: number | null;
  sharedVersion: number | null;
  labels: string[];
  /** Why a shared playbook's dependencies cannot all travel (an unpublished or ambiguous one, a cycle). */
  problems: string[];
  tenants: TenantShareView[];
  log: ContentLogRecord[];
}

/** What main knows at the time of asking. */
export interface ShareFacts {
  tenants: readonly TenantRecord[];
  targets: ShareTargets;
  shareOf(item: string, t: TenantRecord): Promise<ContentShareRecord | undefined>;
  /** `${item}!${tenant}` pushes or removals in flight. */
  inflight: ReadonlySet<string>;
  log: ContentLogRecord[];
}

export async function shareStatus(item: ContentItemRecord, f: ShareFacts): Promise<ShareStatus> {
  const rows: TenantShareView[] = [];
  const problems = item.sharing?.problems ?? [];
  let involved = 0,
    done = 0,
    sharing = 0;
  for (const t of f.tenants) {
    const rec = await f.shareOf(item.id, t);
    const target = f.targets.target(item, t);
    const deps = ShareTargets.own(item, t) === null ? [] : await dependenciesOn(item, t, f);
    const row = { ...tenantState(item, t.name, target, rec, f.inflight), dependencies: deps };
    const scope = item.sharing?.scope;
    if (row.state === 'not-shared' && scope && !scopeReaches(scope, { name: t.name, region: t.region ?? null }))
      row.reason = `out of scope ${scopeText(scope)}${t.region ? ` (its region is ${t.region})` : ''}`;
    const missing = [...problems, ...deps.filter((d) => !d.present).map(missingLine)];
    if (rec?.state === 'shared' && rec.inactiveSites?.length)
      missing.push(inactiveSitesLine(t.name, rec.inactiveSites));
    if (row.state === 'shared' && missing.length) row.reason = missing.join('; ');
    rows.push(row);
    if (target === null && !rec) continue;
    involved++;
    if (row.state === 'sharing') sharing++;
    if (target !== null && row.state === 'shared' && row.version === target && !missing.length) done++;
  }
  const rollup: Rollup =
    involved === 0 ? 'Not Shared' : sharing > 0 ? 'Sharing' : done === involved ? 'Successful' : 'Incomplete';
  return {
    id: item.id,
    rollup,
    version: item.latest,
    published: item.published,
    sharedVersion: item.sharing?.version ?? null,
    labels: item.labels,
    problems,
    tenants: rows,
    log: f.log,
  };
}

/** The line a tenant's inactive sites put in its row and the sharing log: "tenant acme: site paris inactive". */
export function inactiveSitesLine(tenant: string, sites: readonly string[]): string {
  return `tenant ${tenant}: ${sites.length === 1 ? 'site' : 'sites'} ${sites.join(', ')} inactive`;
}

/**
 * The inactive sites a tenant's answer to a push names (`sites.inactive`, agent/tenant/content-routes.ts): names
 * only, at most MAX_REPORTED, so an answer cannot put anything else into main's records. A tenant of an earlier
 * release answers without `sites`: none.
 */
export function inactiveSitesOf(body: Buffer | undefined): string[] {
  try {
    const inactive = (JSON.parse(body?.toString('utf8') ?? '{}') as { sites?: { inactive?: unknown } }).sites?.inactive;
    if (!Array.isArray(inactive)) return [];
    return inactive.filter((n): n is string => typeof n === 'string' && isName(n)).slice(0, MAX_REPORTED);
  } catch {
    return [];
  }
}
/** Sites a tenant may hold is 500 (agent/tenant/sites/site-store.ts); a row naming more would only be noise. */
const MAX_REPORTED = 50;

const missingLine = (d: DependencyView) =>
  `missing dependency ${d.type} "${d.name}" v${d.version}${d.held === null ? '' : ` (holds v${d.held})`}`;

async function dependenciesOn(item: ContentItemRecord, t: TenantRecord, f: ShareFacts): Promise<DependencyView[]> {
  const out: DependencyView[] = [];
  for (const d of item.sharing?.dependencies ?? []) {
    const rec = await f.shareOf(d.id, t);
    const held = rec?.version ?? null;
    const present = rec?.state === 'shared' && held !== null && held >= d.version;
    out.push({ id: d.id, type: d.type, name: d.name, version: d.version, held, present });
  }
  return out;
}

function tenantState(
  item: ContentItemRecord,
  tenant: string,
  target: number | null,
  rec: ContentShareRecord | undefined,
  inflight: ReadonlySet<string>,
): Omit<TenantShareView, 'dependencies'> {
  const base = { tenant, target, version: rec?.version ?? null, at: rec?.at ?? null };
  if (inflight.has(`${item.id}!${tenant}`)) return { ...base, state: 'sharing', reason: null };
  if (!rec)
    return {
      ...base,
      state: 'not-shared',
      reason: target === null ? null : 'not pushed yet: waiting for the tenant',
    };
  if (rec.state !== 'shared') return { ...base, state: rec.state, reason: rec.reason ?? null };
  if (target === null) return { ...base, state: 'out-of-date', reason: 'no longer shared to it: removal pending' };
  const newest = Math.max(target, item.published ?? 0);
  if ((rec.version ?? 0) < newest)
    return { ...base, state: 'out-of-date', reason: `holds version ${rec.version}; version ${newest} is published` };
  return { ...base, state: 'shared', reason: null };
}
