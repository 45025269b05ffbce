/**
 * The tenant's half of main's cross-tenant commands (common/tenant-commands.ts): one route per command,
 * `POST /api/v1/commands/<name>` with the args as body, validated by the shared schema. All read-only:
 * they summarise this tenant's own store and return small answers, so main can merge hundreds of them.
 */
import type { FastifyInstance } from 'fastify';
import { isPalisadeError } from '#common/errors.js';
import { TENANT_COMMANDS, tenantCommandPath, type TenantCommandName } from '#common/tenant-commands.js';
import type { Incident, IncidentFilter, TenantStore } from './store.js';

/** Records per nextv call: paging the scan is several times cheaper than one await per record (as in the store). */
const SCAN_PAGE = 1000;

function matches(i: Incident, f: IncidentFilter, q: string | undefined): boolean {
  if (f.status && i.status !== f.status) return false;
  if (f.severity !== undefined && i.severity !== f.severity) return false;
  if (f.type && i.type !== f.type) return false;
  return !q || i.name.toLowerCase().includes(q) || i.details.toLowerCase().includes(q);
}

/** Calls `each` for every incident matching the filter, in one pass over the store. */
async function scan(store: TenantStore, f: IncidentFilter, each: (i: Incident) => void): Promise<void> {
  const q = f.q?.toLowerCase();
  const it = store.incidents.iterator();
  try {
    for (;;) {
      const entries = await it.nextv(SCAN_PAGE);
      if (entries.length === 0) return;
      for (const [, i] of entries) if (matches(i, f, q)) each(i);
    }
  } finally {
    await it.close();
  }
}

type Handler = (store: TenantStore, args: Record<string, unknown>) => Promise<unknown>;

const HANDLERS: Record<TenantCommandName, Handler> = {
  'incidents.count': async (store, a) => {
    let count = 0;
    await scan(store, a as IncidentFilter, () => {
      count++;
    });
    return { count };
  },
  'incidents.stats': async (store, a) => {
    const byStatus: Record<string, number> = { open: 0, closed: 0 };
    const bySeverity: Record<string, number> = { 0: 0, 1: 0, 2: 0, 3: 0, 4: 0 };
    let total = 0;
    await scan(store, { type: a.type as string | undefined }, (i) => {
      total++;
      byStatus[i.status] = (byStatus[i.status] ?? 0) + 1;
      bySeverity[i.severity] = (bySeverity[i.severity] ?? 0) + 1;
    });
    return { total, byStatus, bySeverity };
  },
  'indicators.lookup': async (store, a) => {
    try {
      return { found: true, indicator: await store.getIndicator(String(a.type), String(a.value)) };
    } catch (e) {
      // Unknown here is an answer, not a failure: most tenants will not know a given indicator.
      if (isPalisadeError(e) && e.code === 'ERR_INDICATOR_NOT_FOUND') return { found: false };
      throw e;
    }
  },
};

export function registerCommandRoutes(app: FastifyInstance, store: TenantStore): void {
  for (const [name, def] of Object.entries(TENANT_COMMANDS) as [
    TenantCommandName,
    (typeof TENANT_COMMANDS)[TenantCommandName],
  ][]) {
    app.post(
      tenantCommandPath(name),
      {
        config: { tenantPermission: 'incidents:read' },
        schema: { body: def.args },
      },
      async (req) => HANDLERS[name](store, (req.body ?? {}) as Record<string, unknown>),
    );
  }
}
