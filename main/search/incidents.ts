/**
 * Cross-tenant incident search (the bird's-eye view, docs/search.md): asks every selected tenant for its
 * newest matching incidents at once, each within a deadline, merges them newest first, and pages with
 * an opaque cursor. Nothing is stored on main: the cursor carries all the state, on the client's side.
 *
 * Paging. Each tenant lists its incidents newest first by id (its sequence, so also by `created`) and
 * continues below a given id. A page of `limit` asks each tenant for `limit` items below its position,
 * merges the tenants' lists by (created desc, tenant asc) taking from the head of each list only, so
 * every tenant contributes a prefix of its own order, and keeps the first `limit`. The cursor then holds
 * per tenant the id of the last item it contributed (or none yet); a tenant that has given everything
 * drops out, and `next` is null when none is left. So every item comes exactly once across pages. A
 * tenant that fails on a page keeps its position and is asked again on the next one: nothing is lost,
 * though its items may then arrive later than strict time order would put them.
 * Not here: which tenants a caller may reach (fanout.ts), HTTP (http/routes-search.ts).
 */
import { createHash } from 'node:crypto';
import { BadParameterError } from '#common/errors.js';
import { MAX_SEARCH_LIMIT } from '#common/events.js';
import { NAME_PATTERN } from '#common/names.js';
import type { Principal } from '../access/api-keys.js';
import type { AuditLog } from '../access/audit.js';
import type { TenantService } from '../tenants/tenants.js';
import {
  auditOutOfReach,
  callTenant,
  fanoutTimeout,
  reachableTenants,
  selectTenants,
  type TenantError,
  type TenantSelector,
} from './fanout.js';

export const DEFAULT_SEARCH_LIMIT = 50;
/** Each tenant sends up to `limit` incidents per page: bounded so 100 tenants stay a few MB through main. */
export { MAX_SEARCH_LIMIT };

export interface IncidentFilterQuery {
  q?: string;
  status?: 'open' | 'closed';
  severity?: number;
  type?: string;
}
export interface SearchRequest extends IncidentFilterQuery, TenantSelector {
  limit?: number;
  cursor?: string;
  timeoutMs?: number;
}

/** What a tenant returns per incident; more fields pass through untouched. */
export interface TenantIncident {
  id: string;
  created: string;
  [k: string]: unknown;
}
export type SearchItem = { tenant: string } & TenantIncident;
export interface SearchPage {
  items: SearchItem[];
  errors: TenantError[];
  next: string | null;
}

/** A tenant's position: the id of the last incident it contributed, or null before its first. */
type Positions = [tenant: string, position: string | null][];
interface CursorState {
  v: 1;
  h: string;
  t: Positions;
}

const ID_RE = /^[0-9]{1,12}$/;
const NAME_RE = new RegExp(NAME_PATTERN);
const badCursor = (why: string) =>
  new BadParameterError('ERR_BAD_CURSOR', `cursor: ${why}; use the "next" of the previous page as it is`, {
    field: 'cursor',
  });

/** Ties the cursor to its query, so a cursor reused with other filters fails loudly instead of skipping items. */
function queryHash(r: SearchRequest): string {
  const key = JSON.stringify([
    r.q ?? null,
    r.status ?? null,
    r.severity ?? null,
    r.type ?? null,
    r.tenants ? [...r.tenants].sort() : null,
    r.labels ? [...r.labels].sort() : null,
  ]);
  return createHash('sha256').update(key).digest('base64url').slice(0, 16);
}

export function encodeCursor(h: string, t: Positions): string {
  return Buffer.from(JSON.stringify({ v: 1, h, t } satisfies CursorState)).toString('base64url');
}

export function decodeCursor(cursor: string, h: string): Positions {
  let s: CursorState;
  try {
    s = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as CursorState;
  } catch {
    throw badCursor('not a cursor this API issued');
  }
  const wellFormed =
    s !== null &&
    typeof s === 'object' &&
    s.v === 1 &&
    typeof s.h === 'string' &&
    Array.isArray(s.t) &&
    s.t.length > 0 &&
    s.t.every(
      (e) =>
        Array.isArray(e) &&
        e.length === 2 &&
        typeof e[0] === 'string' &&
        NAME_RE.test(e[0]) &&
        (e[1] === null || (typeof e[1] === 'string' && ID_RE.test(e[1]))),
    ) &&
    new Set(s.t.map((e) => e[0])).size === s.t.length;
  if (!wellFormed) throw badCursor('not a cursor this API issued');
  if (s.h !== h)
    throw badCursor(
      'it belongs to a search with other q, status, severity, type, tenants or labels; repeat the same ones with it',
    );
  return s.t;
}

function tenantListPath(f: IncidentFilterQuery, limit: number, position: string | null): string {
  const q = new URLSearchParams({ limit: String(limit) });
  if (f.q !== undefined) q.set('q', f.q);
  if (f.status !== undefined) q.set('status', f.status);
  if (f.severity !== undefined) q.set('severity', String(f.severity));
  if (f.type !== undefined) q.set('type', f.type);
  if (position !== null) q.set('cursor', position);
  return `/api/v1/incidents?${q}`;
}

/**
 * One tenant's part of a page: what it sent so far (newest first), how much of that the page took,
 * whether it has more below, and where it started. A lane whose refill failed is `failed`: it stops
 * taking part, keeping the position of the last item it contributed.
 */
interface Lane {
  tenant: string;
  items: TenantIncident[];
  taken: number;
  more: boolean;
  position: string | null;
  failed?: boolean;
}

const buffered = (l: Lane) => l.items.length - l.taken;
/** A lane that has more to give but nothing buffered: the merge cannot know whether its next item is the newest. */
const dry = (l: Lane) => !l.failed && l.more && buffered(l) === 0;

/**
 * First ask: a fair share of the page and some slack, not the whole page, from each tenant. Over 100
 * tenants a page of 50 would otherwise move 5 000 incidents through host and main to keep 50.
 */
export function firstAsk(limit: number, tenants: number): number {
  return Math.min(limit, Math.ceil((1.5 * limit) / Math.max(1, tenants)) + 2);
}
/**
 * After this many refill rounds, every lane that could still run dry is refilled at once, so a page takes at most this
 * + 2 round trips.
 */
const TARGETED_REFILLS = 2;

/** Newer first; equal times by tenant name, so the order is the same on every page and every run. */
function before(a: Lane, b: Lane): boolean {
  const x = a.items[a.taken].created,
    y = b.items[b.taken].created;
  return x !== y ? x > y : a.tenant < b.tenant;
}

/** Moves items from the heads of the lanes into `out`, newest first, until it holds `limit` or a lane runs dry. */
function mergeUntilDry(lanes: Lane[], out: SearchItem[], limit: number): Lane[] {
  while (out.length < limit) {
    const empty = lanes.filter(dry);
    if (empty.length) return empty;
    let best: Lane | undefined;
    for (const l of lanes) if (!l.failed && buffered(l) > 0 && (!best || before(l, best))) best = l;
    if (!best) break;
    // `tenant` last: it is ours, whatever a tenant's record might carry under that name.
    out.push({ ...best.items[best.taken++], tenant: best.tenant });
  }
  return [];
}

function isPage(v: unknown): v is { items: TenantIncident[]; next: string | null } {
  const p = v as { items?: unknown; next?: unknown } | null;
  return (
    !!p &&
    Array.isArray(p.items) &&
    (p.next === null || typeof p.next === 'string') &&
    p.items.every(
      (i) =>
        typeof (i as TenantIncident)?.id === 'string' &&
        ID_RE.test((i as TenantIncident).id) &&
        typeof (i as TenantIncident).created === 'string',
    )
  );
}

/** Which tenants a page starts from: the selection, or the cursor's tenants still in reach. */
async function startPositions(
  service: TenantService,
  principal: Principal,
  r: SearchRequest,
  h: string,
  errors: TenantError[],
  audit?: AuditLog,
): Promise<Positions> {
  const reach = audit && { log: audit, via: 'search.incidents' };
  if (r.cursor === undefined) return (await selectTenants(service, principal, r, reach)).map((t) => [t.name, null]);
  const start = decodeCursor(r.cursor, h);
  // The cursor names tenants, but reach is decided now: one removed (or put out of reach) since the
  // previous page is reported and dropped, with the same answer either way (and audited if it exists).
  const reachable = new Set(reachableTenants(principal, await service.list()).map((t) => t.name));
  const gone = start.map(([t]) => t).filter((t) => !reachable.has(t));
  if (reach) auditOutOfReach(service, principal, gone, reach);
  for (const t of gone) errors.push({ tenant: t, code: 'ERR_TENANT_NOT_FOUND', message: `no tenant named "${t}"` });
  return start.filter(([t]) => reachable.has(t));
}

/** One page of the search; `audit` records named tenants out of the caller's reach (see fanout.ts). */
export async function searchIncidents(
  service: TenantService,
  principal: Principal,
  r: SearchRequest,
  audit?: AuditLog,
): Promise<SearchPage> {
  const limit = r.limit ?? DEFAULT_SEARCH_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SEARCH_LIMIT)
    throw new BadParameterError('ERR_BAD_REQUEST', `limit: must be 1 to ${MAX_SEARCH_LIMIT}`, { field: 'limit' });
  // One deadline for the whole page, however many rounds it takes.
  const deadline = Date.now() + fanoutTimeout(r.timeoutMs);
  const h = queryHash(r);
  const errors: TenantError[] = [];
  const start = await startPositions(service, principal, r, h, errors, audit);
  const lanes: Lane[] = start.map(([tenant, position]) => ({ tenant, items: [], taken: 0, more: true, position }));

  /** Asks a lane's tenant for `size` more items below what it already sent; a failure is recorded and ends the lane. */
  const fill = async (l: Lane, size: number): Promise<void> => {
    const below = l.items.length ? l.items[l.items.length - 1].id : l.position;
    const timeoutMs = deadline - Date.now();
    const reply =
      timeoutMs > 0
        ? await callTenant(service, principal, l.tenant, {
            method: 'GET',
            path: tenantListPath(r, size, below),
            timeoutMs,
          })
        : {
            tenant: l.tenant,
            ok: false as const,
            code: 'ERR_RELAY_TIMEOUT',
            message: 'no time left before the search deadline',
          };
    // An empty page that claims more would make the merge ask forever: that tenant is broken, not slow.
    if (reply.ok && isPage(reply.value) && (reply.value.items.length > 0 || reply.value.next === null)) {
      l.items.push(...reply.value.items);
      l.more = reply.value.next !== null;
      return;
    }
    end(
      l,
      reply.ok
        ? {
            tenant: l.tenant,
            code: 'ERR_TENANT_BAD_REPLY',
            message: `tenant "${l.tenant}" answered with something that is not a page of incidents`,
          }
        : { tenant: l.tenant, code: reply.code, message: reply.message },
    );
  };
  const end = (l: Lane, e: TenantError) => {
    l.failed = true;
    errors.push(e);
  };

  const items: SearchItem[] = [];
  await Promise.all(lanes.map((l) => fill(l, firstAsk(limit, lanes.length))));
  for (let round = 0; ; round++) {
    const empty = mergeUntilDry(lanes, items, limit);
    if (empty.length === 0) break;
    if (round > TARGETED_REFILLS) {
      // After the refill-all round only a tenant sending less than asked (while claiming more) is dry.
      for (const l of empty)
        end(l, {
          tenant: l.tenant,
          code: 'ERR_TENANT_BAD_REPLY',
          message: `tenant "${l.tenant}" sent fewer incidents than asked while claiming more`,
        });
      continue;
    }
    // A lane refilled with everything the page still needs cannot run dry again before the page is full.
    const need = limit - items.length;
    const refill = round < TARGETED_REFILLS ? empty : lanes.filter((l) => !l.failed && l.more && buffered(l) < need);
    await Promise.all(refill.map((l) => fill(l, need - buffered(l))));
  }

  const kept: Positions = [];
  for (const l of lanes) {
    if (!l.failed && !l.more && buffered(l) === 0) continue; // gave everything it has
    // A failed tenant is asked again on the next page, from after what it contributed.
    kept.push([l.tenant, l.taken > 0 ? l.items[l.taken - 1].id : l.position]);
  }
  kept.sort((a, b) => (a[0] < b[0] ? -1 : 1));
  errors.sort((a, b) => (a.tenant < b.tenant ? -1 : 1));
  return { items, errors, next: kept.length > 0 ? encodeCursor(h, kept) : null };
}
