/**
 * The console's overview: hosts, engines and tenants with their live status in one answer, cut to what the
 * caller may see by the same permissions and tenant scope as the routes it sums up (GET /hosts, /engines:
 * agents:read; GET /tenants: tenants:read within the caller's scope). A customer user (or staff without
 * tenants:read) still sees its own tenants' name, status, host and labels, and their engines' name and status:
 * what the console shows them on the relay they already hold. It is GET /api/v1/overview and the payload of
 * the `overview` events of its stream (overview-stream.ts). Not a search: no tenant data (a tenant's event counts
 * are numbers its host reports, not events).
 */
import { mayReach, type Principal } from '../access/api-keys.js';
import { agentView, type AgentView } from '../agents/agent-admin.js';
import type { MainServices } from '../services.js';
import type { TenantView } from '../tenants/tenants.js';
import type { TenantEvents } from '../tenants/tenant-view.js';

/** What every caller may see of a tenant it reaches. */
export interface TenantSummary {
  name: string;
  status: string;
  host: string;
  labels: string[];
  region?: string;
  /** Its event counts: numbers, not events, so whoever sees the tenant sees them (the console's events chart). */
  events: TenantEvents | null;
}
/** What a caller without agents:read sees of an engine of a tenant it reaches. */
export interface EngineSummary {
  name: string;
  status: 'online' | 'offline';
  lastSeen: string | null;
  tenant: string | null;
  group: string | null;
}

export interface Overview {
  hosts: AgentView[];
  engines: (AgentView | EngineSummary)[];
  tenants: (TenantView | TenantSummary)[];
}

/** The unfiltered state at one moment, read once and cut per caller (a stream tick serves all callers from it). */
export interface OverviewState {
  hosts: AgentView[];
  engines: AgentView[];
  tenants: TenantView[];
}

export async function readOverviewState(s: MainServices): Promise<OverviewState> {
  const [hosts, engines, tenants] = await Promise.all([
    s.registry.listAgents('host'),
    s.registry.listAgents('engine'),
    s.tenants.list(),
  ]);
  const live = (xs: typeof hosts) =>
    xs
      .filter((a) => !a.revokedAt)
      .map((a) => agentView(s, a))
      .sort((a, b) => a.name.localeCompare(b.name));
  return { hosts: live(hosts), engines: live(engines), tenants: tenants.sort((a, b) => a.name.localeCompare(b.name)) };
}

function summary(t: TenantView): TenantSummary {
  const region = (t as { region?: unknown }).region;
  return {
    name: t.name,
    status: t.status,
    host: t.host,
    labels: t.labels,
    ...(typeof region === 'string' ? { region } : {}),
    events: t.events,
  };
}

/** The part of `state` the caller may see. */
export function overviewFor(state: OverviewState, p: Principal): Overview {
  const agents = p.permissions.has('agents:read');
  const fullTenants = p.permissions.has('tenants:read');
  const seesTenants = fullTenants || p.permissions.has('tenants:relay');
  const reach = (tenant: string | null | undefined) => !!tenant && mayReach(p, tenant);
  const tenants = seesTenants ? state.tenants.filter((t) => mayReach(p, t.name)) : [];
  return {
    // Staff limited to some tenants hold no agents:read (api-keys.ts SCOPED_PERMISSIONS): hosts serve every tenant.
    hosts: agents ? state.hosts : [],
    engines: agents
      ? state.engines
      : seesTenants
        ? state.engines.filter((e) => reach(e.tenant)).map((e) => engineSummary(e))
        : [],
    tenants: fullTenants ? tenants : tenants.map(summary),
  };
}

function engineSummary(e: AgentView): EngineSummary {
  return { name: e.name, status: e.status, lastSeen: e.lastSeen, tenant: e.tenant, group: e.group };
}
