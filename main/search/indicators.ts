/**
 * Cross-tenant indicator search (the bird's-eye view, docs/search.md): asks every selected tenant at once,
 * each within the deadline, for its newest matching indicators, tags each with its tenant and merges
 * them by `lastSeen` newest first (equal times by tenant name), keeping the first `limit`.
 *
 * It does not page, on purpose: an indicator's `lastSeen` moves every time it is seen again, so a
 * position in that order would not hold still between pages and a cursor would skip or repeat items.
 * The first `limit` overall are among the first `limit` of each tenant, so one round is exact. A search
 * needs a value, type or reputation: every indicator of every customer at once is a dump, not a search.
 * A tenant that does not know a value+type is absent from the answer, not an error.
 * Nothing is stored on main. Not here: which tenants a caller may reach (fanout.ts), HTTP (http/routes-search.ts).
 */
import { BadParameterError } from '#common/errors.js';
import {
  INDICATOR_TYPES,
  MAX_INDICATOR_VALUE,
  REPUTATIONS,
  type IndicatorType,
  type Reputation,
} from '#common/indicators.js';
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
import { DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT } from './incidents.js';

export interface IndicatorFilterQuery {
  value?: string;
  type?: IndicatorType;
  reputation?: Reputation;
}
export interface IndicatorSearchRequest extends IndicatorFilterQuery, TenantSelector {
  limit?: number;
  timeoutMs?: number;
}

/** What a tenant returns per indicator; more fields pass through untouched. */
export interface TenantIndicator {
  value: string;
  type: string;
  reputation: string;
  lastSeen: string;
  [k: string]: unknown;
}
export type IndicatorItem = { tenant: string } & TenantIndicator;
export interface IndicatorPage {
  items: IndicatorItem[];
  errors: TenantError[];
  next: null;
}

/** The tenant's own answer for "I have never seen this value as this type" (agent/tenant/store.ts). */
const UNKNOWN_INDICATOR = 'ERR_INDICATOR_NOT_FOUND';

function checkRequest(r: IndicatorSearchRequest): number {
  if (r.value === undefined && r.type === undefined && r.reputation === undefined) {
    throw new BadParameterError(
      'ERR_SEARCH_TOO_BROAD',
      'value: give at least one of value, type or reputation; every indicator of every tenant is not a search',
      { field: 'value' },
    );
  }
  if (r.value !== undefined && (r.value.length < 1 || r.value.length > MAX_INDICATOR_VALUE)) {
    throw new BadParameterError('ERR_BAD_REQUEST', `value: must be 1 to ${MAX_INDICATOR_VALUE} characters`, {
      field: 'value',
    });
  }
  if (r.type !== undefined && !INDICATOR_TYPES.includes(r.type))
    throw new BadParameterError('ERR_BAD_REQUEST', `type: must be one of ${INDICATOR_TYPES.join(', ')}`, {
      field: 'type',
    });
  if (r.reputation !== undefined && !REPUTATIONS.includes(r.reputation))
    throw new BadParameterError('ERR_BAD_REQUEST', `reputation: must be one of ${REPUTATIONS.join(', ')}`, {
      field: 'reputation',
    });
  const limit = r.limit ?? DEFAULT_SEARCH_LIMIT;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SEARCH_LIMIT)
    throw new BadParameterError('ERR_BAD_REQUEST', `limit: must be 1 to ${MAX_SEARCH_LIMIT}`, { field: 'limit' });
  return limit;
}

function tenantPath(f: IndicatorFilterQuery, limit: number): string {
  const q = new URLSearchParams({ limit: String(limit) });
  if (f.value !== undefined) q.set('value', f.value);
  if (f.type !== undefined) q.set('type', f.type);
  if (f.reputation !== undefined) q.set('reputation', f.reputation);
  return `/api/v1/indicators?${q}`;
}

function isIndicator(v: unknown): v is TenantIndicator {
  const i = v as TenantIndicator | null;
  return (
    !!i &&
    typeof i === 'object' &&
    typeof i.value === 'string' &&
    typeof i.type === 'string' &&
    typeof i.reputation === 'string' &&
    typeof i.lastSeen === 'string'
  );
}

/**
 * One tenant's reply as items or an error entry. The filter is checked again here: a tenant on older
 * code (during an upgrade) might ignore a filter it does not know, and its extra items must not leak in.
 */
function fromReply(reply: TenantReply, f: IndicatorFilterQuery, limit: number): IndicatorItem[] | TenantError {
  if (!reply.ok)
    return reply.code === UNKNOWN_INDICATOR ? [] : { tenant: reply.tenant, code: reply.code, message: reply.message };
  if (!Array.isArray(reply.value) || !reply.value.every(isIndicator)) {
    return {
      tenant: reply.tenant,
      code: 'ERR_TENANT_BAD_REPLY',
      message: `tenant "${reply.tenant}" answered with something that is not a list of indicators`,
    };
  }
  const wanted = (i: TenantIndicator) =>
    (f.value === undefined || i.value === f.value) &&
    (f.type === undefined || i.type === f.type) &&
    (f.reputation === undefined || i.reputation === f.reputation);
  // At most `limit` per tenant whatever it sent: main holds tenants' answers in memory for this request only.
  // `tenant` last: it is ours, whatever a tenant's record might carry under that name.
  return (reply.value as TenantIndicator[])
    .filter(wanted)
    .slice(0, limit)
    .map((i) => ({ ...i, tenant: reply.tenant }));
}

/** Newer `lastSeen` first; equal times by tenant name (a stable sort keeps each tenant's own order below that). */
function newestFirst(a: IndicatorItem, b: IndicatorItem): number {
  if (a.lastSeen !== b.lastSeen) return a.lastSeen > b.lastSeen ? -1 : 1;
  return a.tenant < b.tenant ? -1 : a.tenant > b.tenant ? 1 : 0;
}

/** The search; `audit` records named tenants out of the caller's reach (see fanout.ts). */
export async function searchIndicators(
  service: TenantService,
  principal: Principal,
  r: IndicatorSearchRequest,
  audit?: AuditLog,
): Promise<IndicatorPage> {
  const limit = checkRequest(r);
  const timeoutMs = fanoutTimeout(r.timeoutMs);
  const f: IndicatorFilterQuery = { value: r.value, type: r.type, reputation: r.reputation };
  const targets = await selectTenants(service, principal, r, audit && { log: audit, via: 'search.indicators' });
  const path = tenantPath(f, limit);
  const replies = await Promise.all(
    targets.map((t) => callTenant(service, principal, t.name, { method: 'GET', path, timeoutMs })),
  );
  const items: IndicatorItem[] = [];
  const errors: TenantError[] = [];
  for (const reply of replies) {
    const got = fromReply(reply, f, limit);
    if (Array.isArray(got)) items.push(...got);
    else errors.push(got);
  }
  items.sort(newestFirst);
  errors.sort((a, b) => (a.tenant < b.tenant ? -1 : 1));
  return { items: items.slice(0, limit), errors, next: null };
}
