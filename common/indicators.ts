/**
 * The vocabulary of indicators (IOCs), shared so main validates a bird's-eye indicator search with the
 * same words the tenants store and check. Only names and their order: what an indicator holds and how
 * it is stored belongs to the tenant (agent/tenant/store.ts).
 */

export const INDICATOR_TYPES = ['ip', 'domain', 'url', 'hash', 'email', 'file', 'other'] as const;
export type IndicatorType = (typeof INDICATOR_TYPES)[number];

export const REPUTATIONS = ['unknown', 'benign', 'suspicious', 'malicious'] as const;
export type Reputation = (typeof REPUTATIONS)[number];

/** Longest indicator value a tenant accepts (a long URL fits; a pasted document does not). */
export const MAX_INDICATOR_VALUE = 2048;

/**
 * "Newest first": later `lastSeen` first (ISO times compare as strings), then by type and value so
 * equal times come out in the same order on every call.
 */
export function newestSeenFirst(
  a: { lastSeen: string; type: string; value: string },
  b: { lastSeen: string; type: string; value: string },
): number {
  if (a.lastSeen !== b.lastSeen) return a.lastSeen > b.lastSeen ? -1 : 1;
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}
