/**
 * Sites inside a tenant (DESIGN D3, docs/sites.md): what the tenant's `/api/v1/sites` answers and the CLI prints.
 * A site is a place the customer's data comes from (an office, a plant): incidents may name one, shares reach every
 * active one, and deactivating one removes its data. Not the store (agent/tenant/sites/site-store.ts).
 */

/**
 * `pending`: active, and no share has reached it since it was created or reactivated; `synced`: the last share the
 * tenant applied reached it; `inactive`: deactivated (its data removed), shares pass it by.
 */
export type SiteSyncStatus = 'synced' | 'pending' | 'inactive';

export interface SiteView {
  name: string;
  active: boolean;
  syncStatus: SiteSyncStatus;
  /** When a share last reached it; null before the first one (and again after a reactivation). */
  lastSynced: string | null;
  /** The shared item and version that share carried. */
  lastSyncedItem: { id: string; version: number } | null;
  created: string;
  updated: string;
}

/** What deactivating a site removes (or, unconfirmed, would remove). */
export interface SitePurgeCounts {
  incidents: number;
  runs: number;
  timelineEntries: number;
  pendingRules: number;
  indicatorLinks: number;
}

/** What the tenant answers a shared item's push with, besides the item: the sites it reached and passed by. */
export interface ShareSites {
  synced: string[];
  inactive: string[];
}

/** "3 incidents, 1 playbook run, …": what a deactivation removes (or would), for people. */
export function describeRemoval(c: SitePurgeCounts): string {
  const parts: [number, string, string][] = [
    [c.incidents, 'incident', 'incidents'],
    [c.runs, 'playbook run', 'playbook runs'],
    [c.timelineEntries, 'timeline entry', 'timeline entries'],
    [c.pendingRules, 'pending automation rule', 'pending automation rules'],
    [c.indicatorLinks, 'indicator link', 'indicator links'],
  ];
  return parts.map(([n, one, many]) => `${n} ${n === 1 ? one : many}`).join(', ');
}
