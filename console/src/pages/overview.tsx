/**
 * The overview: hosts, engines and tenants with their health, live from main's overview stream, and the
 * charts (host load and events per second per tenant from the stream; incidents by severity per tenant and the
 * sharing rollup from the search and content APIs, loaded once and on request). The event rate is each tenant's
 * own count, reported through its host with each heartbeat: no events API is read for it.
 */
import { api, can, type SessionUser } from '../api.js';
import { useLoad } from '../hooks.js';
import { useOverview, type AgentRow, type TenantRow } from '../overview-store.js';
import { ActionButton, Badge, Busy, ErrorLine, Table, when } from '../components/ui.js';
import { BarChart, StackedBarChart } from '../components/charts.js';

export const SEVERITIES = ['Unknown', 'Low', 'Medium', 'High', 'Critical'];
/** Pages of the fan-out search read per severity for the chart: enough for a picture, bounded for 100 tenants. */
const SEVERITY_PAGES = 3;

const agentColumns = [
  { label: 'Name', cell: (a: AgentRow) => a.name },
  { label: 'Status', cell: (a: AgentRow) => <Badge value={a.status} /> },
  { label: 'Last seen', cell: (a: AgentRow) => when(a.lastSeen) },
  {
    label: 'CPU load',
    cell: (a: AgentRow) => (a.sysinfo?.cpuLoadPct === undefined ? '—' : `${Math.round(a.sysinfo.cpuLoadPct)}%`),
  },
];

export function tenantHealth(t: TenantRow): string {
  return typeof t.health === 'string' ? t.health : t.status;
}

export function OverviewPage({ user }: { user: SessionUser }) {
  const o = useOverview();
  const d = o.data;
  return (
    <>
      <h1>Overview</h1>
      <p class="live" role="status">
        {o.live ? 'Live: updates as they happen.' : 'Connecting to live updates…'}
      </p>
      <ErrorLine error={o.error} />
      {!d ? (
        <Busy label="Loading hosts, engines and tenants…" />
      ) : (
        <div class="grid" data-ready="overview">
          <section aria-labelledby="ov-tenants">
            <h2 id="ov-tenants">Tenants ({d.tenants.length})</h2>
            <Table
              caption="Tenants and their health"
              captionHidden
              rows={d.tenants}
              rowKey={(t) => t.name}
              columns={[
                { label: 'Name', cell: (t) => <a href={`/tenants/${encodeURIComponent(t.name)}`}>{t.name}</a> },
                { label: 'Host', cell: (t) => t.host },
                { label: 'Health', cell: (t) => <Badge value={tenantHealth(t)} /> },
                {
                  label: 'CPU',
                  cell: (t) => (typeof t.cpuPercent === 'number' ? `${Math.round(t.cpuPercent)}%` : '—'),
                },
                {
                  label: 'Memory',
                  cell: (t) => (typeof t.rssBytes === 'number' ? `${Math.round(t.rssBytes / 2 ** 20)} MiB` : '—'),
                },
                { label: 'Labels', cell: (t) => t.labels.join(', ') },
              ]}
            />
          </section>
          <section aria-labelledby="ov-hosts">
            <h2 id="ov-hosts">Hosts ({d.hosts.length})</h2>
            <Table caption="Hosts" captionHidden rows={d.hosts} rowKey={(h) => h.name} columns={agentColumns} />
            <h2 id="ov-engines">Engines ({d.engines.length})</h2>
            <Table caption="Engines" captionHidden rows={d.engines} rowKey={(h) => h.name} columns={agentColumns} />
          </section>
          <section aria-labelledby="ov-charts" class="charts">
            <h2 id="ov-charts">Load and activity</h2>
            <BarChart
              title="Host CPU load"
              unit="%"
              max={100}
              bars={d.hosts.map((h) => ({ label: h.name, value: h.sysinfo?.cpuLoadPct ?? 0 }))}
            />
            <BarChart
              title="Events per second per tenant"
              unit="/s"
              bars={d.tenants.map((t) => ({ label: t.name, value: t.events?.perSecond ?? 0 }))}
              empty="No tenants to show."
            />
          </section>
        </div>
      )}
      {can(user, 'search:read') && <SeverityChart />}
      {can(user, 'content:read') && <SharingRollupChart />}
    </>
  );
}

async function severityByTenant(): Promise<{ label: string; values: number[] }[]> {
  const counts = new Map<string, number[]>();
  await Promise.all(
    SEVERITIES.map(async (_s, sev) => {
      let cursor: string | null = null;
      for (let page = 0; page < SEVERITY_PAGES; page++) {
        const qs = `severity=${sev}&limit=200${cursor ? `&cursor=${cursor}` : ''}`;
        const r: { items: { tenant: string }[]; next: string | null } = await api.get(`/search/incidents?${qs}`);
        for (const i of r.items) {
          const row = counts.get(i.tenant) ?? [0, 0, 0, 0, 0];
          row[sev]++;
          counts.set(i.tenant, row);
        }
        cursor = r.next;
        if (!cursor) break;
      }
    }),
  );
  return [...counts].sort(([a], [b]) => a.localeCompare(b)).map(([label, values]) => ({ label, values }));
}

function SeverityChart() {
  const r = useLoad(severityByTenant, []);
  return (
    <section aria-labelledby="ov-sev" class="chart-section">
      <h2 id="ov-sev">Incidents by severity</h2>
      <ErrorLine error={r.error} />
      {r.loading && <Busy label="Counting incidents across tenants…" />}
      {r.data && <StackedBarChart title="Incidents per tenant by severity" series={SEVERITIES} rows={r.data} />}
      <ActionButton busy={r.loading} onClick={r.reload} busyLabel="Counting…">
        Recount
      </ActionButton>
    </section>
  );
}

const ROLLUPS = ['Successful', 'Sharing', 'Incomplete', 'Not Shared'];

async function sharingRollup(): Promise<{ label: string; value: number }[]> {
  const items = await api.get<{ id: string; shared: boolean }[]>('/content');
  const statuses = await Promise.all(
    items.filter((i) => i.shared).map((i) => api.get<{ rollup: string }>(`/content/${i.id}/status`)),
  );
  const n = new Map(ROLLUPS.map((r) => [r, 0]));
  n.set('Not Shared', items.filter((i) => !i.shared).length);
  for (const s of statuses) n.set(s.rollup, (n.get(s.rollup) ?? 0) + 1);
  return ROLLUPS.map((label) => ({ label, value: n.get(label) ?? 0 }));
}

function SharingRollupChart() {
  const r = useLoad(sharingRollup, []);
  return (
    <section aria-labelledby="ov-share" class="chart-section">
      <h2 id="ov-share">Content sharing</h2>
      <ErrorLine error={r.error} />
      {r.loading && <Busy label="Reading each shared item's status…" />}
      {r.data && <BarChart title="Content items by sharing rollup" bars={r.data} />}
      <ActionButton busy={r.loading} onClick={r.reload} busyLabel="Reading…">
        Refresh
      </ActionButton>
    </section>
  );
}
