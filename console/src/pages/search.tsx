/**
 * Cross-tenant search: incidents (main's fan-out search, paged), indicators (by exact value) and events
 * (main's `GET /api/v1/search/events`: the newest matches of every tenant, merged by time; not paged). Every
 * tenant that failed is listed with its error beside the results.
 */
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { useAction } from '../hooks.js';
import { ActionButton, Busy, ErrorLine, Field, Select, Table, when } from '../components/ui.js';
import { SEVERITIES } from './overview.js';

type Kind = 'incidents' | 'indicators' | 'events';
interface TenantError {
  tenant: string;
  code: string;
  message: string;
}
interface Results {
  kind: Kind;
  items: Record<string, unknown>[];
  errors: TenantError[];
  next: string | null;
}
export function SearchPage() {
  const [kind, setKind] = useState<Kind>('incidents');
  const [q, setQ] = useState('');
  const [tenants, setTenants] = useState('');
  const [results, setResults] = useState<Results>();
  const run = useAction(async (cursor?: string) => {
    const names = tenants.replace(/\s+/g, '');
    const params = new URLSearchParams({ limit: kind === 'events' ? '100' : '50' });
    if (names) params.set('tenants', names);
    if ((kind === 'incidents' || kind === 'events') && q) params.set('q', q);
    if (kind === 'indicators') params.set('value', q);
    if (cursor) params.set('cursor', cursor);
    const r = await api.get<Omit<Results, 'kind'>>(`/search/${kind}?${params}`);
    setResults({ ...r, kind, items: cursor && results ? [...results.items, ...r.items] : r.items });
  });
  return (
    <>
      <h1>Search across tenants</h1>
      <form
        class="panel"
        role="search"
        aria-label="Search across tenants"
        onSubmit={(e) => {
          e.preventDefault();
          void run.start();
        }}
      >
        <div class="row">
          <Select
            label="Search in"
            name="search-kind"
            value={kind}
            options={[
              { value: 'incidents', label: 'Incidents' },
              { value: 'indicators', label: 'Indicators (exact value)' },
              { value: 'events', label: 'Events' },
            ]}
            onChange={(v) => setKind(v as Kind)}
          />
          <Field label={kind === 'indicators' ? 'Indicator value' : 'Text'} name="search-q" value={q} onInput={setQ} />
          <Field
            label="Tenants"
            name="search-tenants"
            value={tenants}
            onInput={setTenants}
            hint="Comma-separated; empty = all"
          />
        </div>
        <ActionButton type="submit" kind="primary" busy={run.busy} busyLabel="Asking every tenant…">
          Search
        </ActionButton>
      </form>
      <ErrorLine error={run.error} />
      {run.busy && !results && <Busy label="Searching…" />}
      {results && <ResultTable r={results} />}
      {results?.next && (
        <ActionButton busy={run.busy} onClick={() => void run.start(results.next!)} busyLabel="Loading more…">
          More results
        </ActionButton>
      )}
    </>
  );
}

const link = (tenant: string, id: string) =>
  `/tenants/${encodeURIComponent(tenant)}?tab=incidents&incident=${encodeURIComponent(id)}`;

function ResultTable({ r }: { r: Results }) {
  const s = (x: unknown) => (x === undefined || x === null ? '' : String(x));
  const columns =
    r.kind === 'incidents'
      ? [
          { label: 'Tenant', cell: (i: Record<string, unknown>) => s(i.tenant) },
          {
            label: 'Incident',
            cell: (i: Record<string, unknown>) => <a href={link(s(i.tenant), s(i.id))}>{s(i.name)}</a>,
          },
          {
            label: 'Severity',
            cell: (i: Record<string, unknown>) => SEVERITIES[i.severity as number] ?? s(i.severity),
          },
          { label: 'Status', cell: (i: Record<string, unknown>) => s(i.status) },
          { label: 'Created', cell: (i: Record<string, unknown>) => when(s(i.created)) },
        ]
      : r.kind === 'indicators'
        ? [
            { label: 'Tenant', cell: (i: Record<string, unknown>) => s(i.tenant) },
            { label: 'Value', cell: (i: Record<string, unknown>) => s(i.value) },
            { label: 'Type', cell: (i: Record<string, unknown>) => s(i.type) },
            { label: 'Reputation', cell: (i: Record<string, unknown>) => s(i.reputation) },
            { label: 'Last seen', cell: (i: Record<string, unknown>) => when(s(i.lastSeen)) },
          ]
        : [
            { label: 'Tenant', cell: (i: Record<string, unknown>) => s(i.tenant) },
            { label: 'Time', cell: (i: Record<string, unknown>) => when(s(i.time)) },
            { label: 'Domain', cell: (i: Record<string, unknown>) => s(i.domain) },
            { label: 'Message', cell: (i: Record<string, unknown>) => s(i.message) },
          ];
  return (
    <section aria-labelledby="search-results">
      <h2 id="search-results">
        {r.items.length} {r.kind} found
      </h2>
      {r.errors.length > 0 && (
        <div class="error" role="alert">
          <p>Some tenants did not answer:</p>
          <ul>
            {r.errors.map((e) => (
              <li key={e.tenant}>
                {e.tenant}: <strong>{e.code}</strong> {e.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      <Table
        caption={`Search results: ${r.kind}`}
        captionHidden
        rows={r.items}
        rowKey={(i) => `${s(i.tenant)}|${s(i.id ?? i.value ?? i.time)}|${s(i.message)}`}
        columns={columns}
        empty="No matches."
      />
    </section>
  );
}
