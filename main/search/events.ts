/**
 * Cross-tenant event search (the bird's-eye view, docs/events.md): asks every selected tenant at once, each
 * within the deadline, for its newest `limit` events matching the filters (`GET /api/v1/events` on the tenant),
 * tags each with its tenant, and merges them by time, newest first (equal times by tenant name), keeping the first
 * `limit`. The first `limit` overall are among each tenant's first `limit`, so one round is exact. It does not
 * page: narrow `to` (or `from`) to see older events. A tenant that is down or slow is listed in `errors`; a
 * tenant that has no domain of the name asked for simply has nothing to add. Nothing is stored on main.
 * Not here: which tenants a caller may reach (fanout.ts), HTTP (http/routes-search-events.ts).
 */
import { BadParameterError } from '#common/errors.js';
import { DEFAULT_EVENT_SEARCH_LIMIT, MAX_CROSS_TENANT_EVENTS, MAX_EVENT_SEARCH_LIMIT } from '#common/events.js';
import type { Principal } from '../access/api-keys.js';
import type { AuditLog } from '../access/audit.js';
import type { TenantService } from '../tenants/tenants.js';
import {
  callTenant,
  fanoutTimeout,
  selectTenants,
  type TenantError,
  type TenantReply,
  type TenantSelector,
} from './fanout.js';

/** Held in memory until every tenant's answer is in: at most this many events from each, and in all. */
export { MAX_CROSS_TENANT_EVENTS };

export interface EventFilterQuery {
  domain?: string;
  q?: string;
  from?: string;
  to?: string;
}
export interface EventSearchRequest extends EventFilterQuery, TenantSelector {
  limit?: number;
  timeoutMs?: number;
}
export interface TenantEvent {
  id: string;
  time: string;
  [k: string]: unknown;
}
export type EventItem = { tenant: string } & TenantEvent;
export interface EventSearchPage {
  items: EventItem[];
  errors: TenantError[];
  next: null;
}

/** The tenant's own answer for "no domain of that name here": not an error of the search. */
const UNKNOWN_DOMAIN = 'ERR_DOMAIN_NOT_FOUND';

function tenantPath(f: EventFilterQuery, limit: number): string {
  const q = new URLSearchParams({ limit: String(limit) });
  for (const k of ['domain', 'q', 'from', 'to'] as const) if (f[k] !== undefined) q.set(k, f[k]!);
  return `/api/v1/events?${q}`;
}

function isEvent(v: unknown): v is TenantEvent {
  const e = v as TenantEvent | null;
  return !!e && typeof e === 'object' && typeof e.id === 'string' && typeof e.time === 'string';
}

function fromReply(reply: TenantReply, limit: number): EventItem[] | TenantError {
  if (!reply.ok)
    return reply.code === UNKNOWN_DOMAIN ? [] : { tenant: reply.tenant, code: reply.code, message: reply.message };
  const items = (reply.value as { items?: unknown } | null)?.items;
  if (!Array.isArray(items) || !items.every(isEvent))
    return {
      tenant: reply.tenant,
      code: 'ERR_TENANT_BAD_REPLY',
      message: `tenant "${reply.tenant}" answered with something that is not a list of events`,
    };
  // `tenant` last: it is ours, whatever a tenant's record might carry under that name.
  return items.slice(0, limit).map((e) => ({ ...e, tenant: reply.tenant }));
}

/** Newer first; equal times by tenant name, then by id descending (each tenant's own order). */
function newestFirst(a: EventItem, b: EventItem): number {
  if (a.time !== b.time) return a.time > b.time ? -1 : 1;
  if (a.tenant !== b.tenant) return a.tenant < b.tenant ? -1 : 1;
  return a.id > b.id ? -1 : a.id < b.id ? 1 : 0;
}

export async function searchEvents(
  service: TenantService,
  principal: Principal,
  r: EventSearchRequest,
  audit?: AuditLog,
): Promise<EventSearchPage> {
  const limit = r.limit ?? DEFAULT_EVENT_SEARCH_LIMIT;
  const max = Math.min(MAX_EVENT_SEARCH_LIMIT, MAX_CROSS_TENANT_EVENTS);
  if (!Number.isInteger(limit) || limit < 1 || limit > max)
    throw new BadParameterError('ERR_BAD_REQUEST', `limit: must be 1 to ${max}`, { field: 'limit' });
  for (const k of ['from', 'to'] as const)
    if (r[k] !== undefined && !Number.isFinite(Date.parse(r[k]!)))
      throw new BadParameterError('ERR_BAD_REQUEST', `${k}: not an ISO 8601 time`, { field: k });
  // Refused here as each tenant would: else every tenant's refusal comes back as a per-tenant error under a 200.
  if (r.from !== undefined && r.to !== undefined && Date.parse(r.from) > Date.parse(r.to))
    throw new BadParameterError('ERR_BAD_REQUEST', 'from: after to; give from ≤ to', { field: 'from' });
  const timeoutMs = fanoutTimeout(r.timeoutMs);
  const targets = await selectTenants(service, principal, r, audit && { log: audit, via: 'search.events' });
  const path = tenantPath(r, limit);
  const replies = await Promise.all(
    targets.map((t) => callTenant(service, principal, t.name, { method: 'GET', path, timeoutMs })),
  );
  const items: EventItem[] = [];
  const errors: TenantError[] = [];
  for (const reply of replies) {
    const got = fromReply(reply, limit);
    if (Array.isArray(got)) items.push(...got);
    else errors.push(got);
  }
  items.sort(newestFirst);
  errors.sort((a, b) => (a.tenant < b.tenant ? -1 : 1));
  return { items: items.slice(0, limit), errors, next: null };
}
