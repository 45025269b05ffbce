/**
 * "Switch to tenant": one tenant's own API through main's relay — incidents (each with its timeline),
 * playbook runs, events (filtered by domain), integrations, connections and sites (tenant-sites.tsx).
 * Connections show whether a secret is set, never a secret: the tenant never answers one, and the console
 * drops any field that looks like one before rendering. A customer user lands here for its own tenant only.
 */
import { useState } from 'preact/hooks';
import { api, tenantPath } from '../api.js';
import { useLoad } from '../hooks.js';
import { navigate } from '../router.js';
import { Badge, Busy, ErrorLine, Select, Table, when } from '../components/ui.js';
import { SEVERITIES } from './overview.js';
import { Sites } from './tenant-sites.js';

const TABS = [
  ['incidents', 'Incidents'],
  ['runs', 'Playbook runs'],
  ['events', 'Events'],
  ['integrations', 'Integrations'],
  ['connections', 'Connections'],
  ['sites', 'Sites'],
] as const;

interface Incident {
  id: string;
  name: string;
  type: string;
  severity: number;
  status: string;
  created: string;
  details?: string;
}

export function TenantView({ tenant, query }: { tenant: string; query: URLSearchParams }) {
  const tab = query.get('tab') ?? 'incidents';
  const incident = query.get('incident');
  const base = `/tenants/${encodeURIComponent(tenant)}`;
  return (
    <>
      <h1>Tenant {tenant}</h1>
      <nav aria-label="Tenant sections" class="tabs">
        <ul>
          {TABS.map(([id, label]) => (
            <li key={id}>
              <a href={`${base}?tab=${id}`} aria-current={tab === id ? 'page' : undefined}>
                {label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      {tab === 'incidents' && !incident && <Incidents tenant={tenant} base={base} />}
      {tab === 'incidents' && incident && <IncidentDetail tenant={tenant} id={incident} base={base} />}
      {tab === 'runs' && <Runs tenant={tenant} />}
      {tab === 'events' && <Events tenant={tenant} domain={query.get('domain') ?? ''} base={base} />}
      {tab === 'integrations' && <Integrations tenant={tenant} />}
      {tab === 'connections' && <Connections tenant={tenant} />}
      {tab === 'sites' && <Sites tenant={tenant} />}
    </>
  );
}

function Incidents({ tenant, base }: { tenant: string; base: string }) {
  const r = useLoad(() => api.get<{ items: Incident[] }>(tenantPath(tenant, '/incidents?limit=100')), [tenant]);
  return (
    <section aria-labelledby="t-incidents">
      <h2 id="t-incidents">Incidents</h2>
      <ErrorLine error={r.error} />
      {r.loading && !r.data && <Busy label="Loading incidents…" />}
      {r.data && (
        <Table
          caption={`Incidents of ${tenant}`}
          captionHidden
          rows={r.data.items}
          rowKey={(i) => i.id}
          columns={[
            {
              label: 'Name',
              cell: (i) => <a href={`${base}?tab=incidents&incident=${encodeURIComponent(i.id)}`}>{i.name}</a>,
            },
            { label: 'Severity', cell: (i) => SEVERITIES[i.severity] ?? String(i.severity) },
            { label: 'Type', cell: (i) => i.type },
            { label: 'Status', cell: (i) => <Badge value={i.status} /> },
            { label: 'Created', cell: (i) => when(i.created) },
          ]}
        />
      )}
    </section>
  );
}

interface TimelineEntry {
  at: string;
  by: string;
  kind: string;
  text: string;
}

function IncidentDetail({ tenant, id, base }: { tenant: string; id: string; base: string }) {
  const inc = useLoad(() => api.get<Incident>(tenantPath(tenant, `/incidents/${encodeURIComponent(id)}`)), [id]);
  const tl = useLoad(
    () => api.get<TimelineEntry[]>(tenantPath(tenant, `/incidents/${encodeURIComponent(id)}/timeline`)),
    [id],
  );
  return (
    <section aria-labelledby="t-incident">
      <p>
        <a href={`${base}?tab=incidents`}>← All incidents</a>
      </p>
      <ErrorLine error={inc.error} />
      {inc.data && (
        <>
          <h2 id="t-incident">{inc.data.name}</h2>
          <dl class="facts">
            <dt>Id</dt>
            <dd>{inc.data.id}</dd>
            <dt>Severity</dt>
            <dd>{SEVERITIES[inc.data.severity] ?? inc.data.severity}</dd>
            <dt>Status</dt>
            <dd>
              <Badge value={inc.data.status} />
            </dd>
            <dt>Created</dt>
            <dd>{when(inc.data.created)}</dd>
            <dt>Details</dt>
            <dd>{inc.data.details || '—'}</dd>
          </dl>
        </>
      )}
      <h3 id="t-timeline">Timeline</h3>
      <ErrorLine error={tl.error} />
      {tl.loading && !tl.data && <Busy label="Loading the timeline…" />}
      {tl.data && (
        <ol class="timeline" aria-labelledby="t-timeline">
          {tl.data.length === 0 && <li class="empty">Nothing has happened to this incident yet.</li>}
          {tl.data.map((e, i) => (
            <li key={i}>
              <time dateTime={e.at}>{when(e.at)}</time> <span class="kind">{e.kind}</span> {e.text}{' '}
              <span class="by">by {e.by}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

/** A run in the tenant's list (docs/playbooks.md#rest): status `completed` for one that ran to its end. */
interface Run {
  id: string;
  playbook: { id: string; name: string; version: number };
  incident: string;
  status: string;
  created: string;
  error?: { task: string; code: string; message: string };
}

function Runs({ tenant }: { tenant: string }) {
  const r = useLoad(() => api.get<Run[]>(tenantPath(tenant, '/playbooks/runs?limit=100')), [tenant]);
  return (
    <section aria-labelledby="t-runs">
      <h2 id="t-runs">Playbook runs</h2>
      <ErrorLine error={r.error} />
      {r.loading && !r.data && <Busy label="Loading runs…" />}
      {r.data && (
        <Table
          caption={`Playbook runs of ${tenant}`}
          captionHidden
          rows={r.data}
          rowKey={(x) => x.id}
          columns={[
            { label: 'Run', cell: (x) => x.id },
            { label: 'Playbook', cell: (x) => x.playbook.name },
            { label: 'Incident', cell: (x) => x.incident },
            { label: 'Status', cell: (x) => <Badge value={x.status} /> },
            { label: 'Started', cell: (x) => when(x.created) },
            { label: 'Error', cell: (x) => (x.error ? `${x.error.task}: ${x.error.message}` : '') },
          ]}
        />
      )}
    </section>
  );
}

interface EventRow {
  time: string;
  domain: string;
  logSource?: string;
  message: string;
}

function Events({ tenant, domain, base }: { tenant: string; domain: string; base: string }) {
  const [d, setD] = useState(domain);
  const qs = new URLSearchParams({ limit: '100', ...(domain ? { domain } : {}) });
  const r = useLoad(() => api.get<{ items: EventRow[] }>(tenantPath(tenant, `/events?${qs}`)), [tenant, domain]);
  // The tenant's domains fill the filter (a domain typed into the address stays selectable).
  const domains = useLoad(() => api.get<{ items: { name: string }[] }>(tenantPath(tenant, '/domains')), [tenant]);
  const names = [...new Set([...(domains.data?.items.map((x) => x.name) ?? []), ...(domain ? [domain] : [])])];
  return (
    <section aria-labelledby="t-events">
      <h2 id="t-events">Events</h2>
      <form
        class="row"
        role="search"
        aria-label="Filter events by domain"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(`${base}?tab=events${d ? `&domain=${encodeURIComponent(d)}` : ''}`);
        }}
      >
        <Select
          label="Domain"
          name="event-domain"
          value={d}
          options={[{ value: '', label: 'All domains' }, ...names.map((n) => ({ value: n }))]}
          onChange={setD}
        />
        <button type="submit" class="btn plain">
          Filter
        </button>
      </form>
      <ErrorLine error={r.error} />
      {r.loading && !r.data && <Busy label="Loading events…" />}
      {r.data && (
        <Table
          caption={`Events of ${tenant}`}
          captionHidden
          rows={r.data.items}
          rowKey={(e) => `${e.time}|${e.message}`}
          columns={[
            { label: 'Time', cell: (e) => when(e.time) },
            { label: 'Domain', cell: (e) => e.domain },
            { label: 'Log source', cell: (e) => e.logSource ?? '' },
            { label: 'Message', cell: (e) => e.message },
          ]}
        />
      )}
    </section>
  );
}

function Integrations({ tenant }: { tenant: string }) {
  const r = useLoad(() => api.get<Record<string, unknown>[]>(tenantPath(tenant, '/integrations')), [tenant]);
  return (
    <section aria-labelledby="t-integrations">
      <h2 id="t-integrations">Integrations</h2>
      <ErrorLine error={r.error} />
      {r.loading && !r.data && <Busy label="Loading integrations…" />}
      {r.data && (
        <Table
          caption={`Integration instances of ${tenant}`}
          captionHidden
          rows={r.data}
          rowKey={(x) => String(x.name)}
          columns={[
            { label: 'Instance', cell: (x) => String(x.name) },
            { label: 'Integration', cell: (x) => String(x.integration ?? '') },
            { label: 'Connection', cell: (x) => String(x.connection ?? '') },
            { label: 'Runs on', cell: (x) => String(x.runOn ?? 'tenant') },
          ]}
        />
      )}
    </section>
  );
}

/** Fields never shown, whatever a tenant answers: a secret has no business on screen. */
const SECRETISH = /secret|password|token|key$/i;

function Connections({ tenant }: { tenant: string }) {
  const r = useLoad(
    () =>
      api.get<{ name: string; type: string; settings: Record<string, unknown>; hasSecret: boolean }[]>(
        tenantPath(tenant, '/connections'),
      ),
    [tenant],
  );
  return (
    <section aria-labelledby="t-connections">
      <h2 id="t-connections">Connections</h2>
      <ErrorLine error={r.error} />
      {r.loading && !r.data && <Busy label="Loading connections…" />}
      {r.data && (
        <Table
          caption={`Connections of ${tenant}`}
          captionHidden
          rows={r.data}
          rowKey={(c) => c.name}
          columns={[
            { label: 'Name', cell: (c) => c.name },
            { label: 'Type', cell: (c) => c.type },
            {
              label: 'Settings',
              cell: (c) =>
                Object.entries(c.settings ?? {})
                  .filter(([k]) => !SECRETISH.test(k))
                  .map(([k, v]) => `${k}=${String(v)}`)
                  .join(', '),
            },
            { label: 'Secret', cell: (c) => (c.hasSecret ? 'set (write-only)' : 'none') },
          ]}
        />
      )}
    </section>
  );
}
