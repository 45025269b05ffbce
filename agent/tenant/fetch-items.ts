/**
 * Reading fetched items out of a command's result, as an integration definition's `fetch` says
 * (common/integration-definition.ts FetchSpec): find the list, then each item's source id, name, severity
 * and details, with defaults, bounded to what an incident holds. Pure: no store, no clock, no I/O.
 * A result without a list where the spec says, or any item without a usable id, refuses the whole answer
 * (ERR_INTEGRATION_FETCH_ITEMS): a half-understood answer would create incidents that the next, fixed,
 * answer could not de-duplicate against. Not de-duplication nor storing (incident-fetch.ts).
 */
import { DependencyError } from '#common/errors.js';
import type { FetchSpec } from '#common/integration-definition.js';

/** One item as an incident to create, with the source id it is de-duplicated by. */
export interface FetchedItem {
  sourceId: string;
  name: string;
  type: string;
  severity: number;
  details: string;
  labels: Record<string, string>;
}

/** The store's limits for an incident's fields (agent/tenant/incident-routes.ts). */
const MAX_NAME = 500;
const MAX_TYPE = 100;
const MAX_DETAILS = 100_000;
/** A source id is a key in the tenant's store and a label value (1000 at most); real ids are far shorter. */
export const MAX_SOURCE_ID = 200;
const SEVERITY_NAMES: Readonly<Record<string, number>> = {
  info: 0,
  informational: 0,
  unknown: 0,
  low: 1,
  medium: 2,
  high: 3,
  critical: 4,
};

const refuse = (why: string) =>
  new DependencyError('ERR_INTEGRATION_FETCH_ITEMS', `the source's answer cannot be read as items: ${why}`);

/** The value at a dotted path (`body.items`); `''` is the value itself. */
export function valueAt(value: unknown, path: string): unknown {
  if (path === '') return value;
  let v = value;
  for (const key of path.split('.')) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  return v;
}

/** 0-4 as given (a number or its digits), a severity's name, else 0 (unknown). */
export function severityOf(v: unknown): number {
  const n = typeof v === 'string' && /^[0-4]$/.test(v.trim()) ? Number(v) : v;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 4) return n;
  if (typeof v === 'string') return SEVERITY_NAMES[v.trim().toLowerCase()] ?? 0;
  return 0;
}

function sourceIdOf(v: unknown, index: number, path: string): string {
  const id = typeof v === 'number' && Number.isFinite(v) ? String(v) : v;
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_SOURCE_ID)
    throw refuse(`item ${index} has no id at "${path}" (a string of 1-${MAX_SOURCE_ID} characters or a number)`);
  return id;
}

const cut = (s: string, max: number) => (s.length > max ? `${s.slice(0, max - 1)}…` : s);

/**
 * The items of `result` in the source's order, at most one per source id (the first), or
 * ERR_INTEGRATION_FETCH_ITEMS. `instance` and `integration` name the incidents' source in their labels and
 * default type.
 */
export function extractItems(
  result: unknown,
  spec: FetchSpec,
  source: { instance: string; integration: string },
): FetchedItem[] {
  const at = spec.items ?? '';
  const found = valueAt(result, at);
  const list = Array.isArray(found) ? found : valueAt(found, 'items');
  if (!Array.isArray(list))
    throw refuse(`no list at "${at || '(the result)'}" (a JSON array, or an object with an "items" array)`);
  const idPath = spec.id ?? 'id';
  const type = cut(spec.type ?? source.integration, MAX_TYPE);
  const seen = new Set<string>();
  const out: FetchedItem[] = [];
  list.forEach((item: unknown, index) => {
    const sourceId = sourceIdOf(valueAt(item, idPath), index, idPath);
    if (seen.has(sourceId)) return;
    seen.add(sourceId);
    const name = valueAt(item, spec.name ?? 'name');
    const details = valueAt(item, spec.details ?? 'details');
    out.push({
      sourceId,
      name: cut(typeof name === 'string' && name.trim() ? name : `${source.integration} item ${sourceId}`, MAX_NAME),
      type,
      severity: severityOf(valueAt(item, spec.severity ?? 'severity')),
      details: cut(typeof details === 'string' ? details : JSON.stringify(item), MAX_DETAILS),
      labels: { source: `integration:${source.instance}`, sourceId },
    });
  });
  return out;
}
