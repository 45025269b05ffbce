/**
 * The content library: items with their versions; create and edit (a new version), publish, share and
 * unshare; each item's status per tenant with the sharing log, re-read while it is still Sharing.
 */
import { useState } from 'preact/hooks';
import { api, can, type SessionUser } from '../api.js';
import { useAction, useInterval, useLoad } from '../hooks.js';
import { ActionButton, Badge, Busy, ErrorLine, Field, Select, Table, when } from '../components/ui.js';
import { navigate } from '../router.js';

const TYPES = ['playbook', 'script', 'integration', 'list', 'incident-type', 'automation-rule', 'role'];
/** How often a Sharing item's status is read again. */
const SHARING_POLL_MS = 1_000;

interface Item {
  id: string;
  type: string;
  name: string;
  labels: string[];
  version: number;
  published: number | null;
  shared: boolean;
  updatedAt?: string;
}
interface ItemWithVersions extends Item {
  versions: { version: number; name: string; body: string; published: boolean; createdAt?: string }[];
}
interface Status {
  rollup: string;
  tenants: { tenant: string; state: string; version: number | null; reason: string | null; at?: string | null }[];
  log: {
    at: string;
    action: string;
    actor?: string;
    outcome: string;
    tenant?: string;
    version?: number;
    reason?: string;
  }[];
  problems?: string[];
}

const labelsOf = (s: string) =>
  s
    .split(',')
    .map((l) => l.trim())
    .filter(Boolean);

export function ContentPage({ user }: { user: SessionUser }) {
  const r = useLoad(() => api.get<Item[]>('/content'), []);
  return (
    <>
      <h1>Content library</h1>
      {can(user, 'content:write') && <ItemEditor onSaved={(id) => navigate(`/content/${id}`)} />}
      <ErrorLine error={r.error} />
      {r.loading && !r.data && <Busy label="Loading content…" />}
      {r.data && (
        <Table
          caption="Content items"
          rows={r.data}
          rowKey={(i) => i.id}
          columns={[
            { label: 'Name', cell: (i) => <a href={`/content/${i.id}`}>{i.name}</a> },
            { label: 'Type', cell: (i) => i.type },
            { label: 'Version', cell: (i) => i.version },
            { label: 'Published', cell: (i) => i.published ?? '—' },
            { label: 'Shared', cell: (i) => (i.shared ? 'yes' : 'no') },
            { label: 'Labels', cell: (i) => i.labels.join(', ') },
          ]}
        />
      )}
    </>
  );
}

function ItemEditor({ item, onSaved }: { item?: ItemWithVersions; onSaved: (id: string) => void }) {
  const latest = item?.versions[item.versions.length - 1];
  const [type, setType] = useState(item?.type ?? 'playbook');
  const [name, setName] = useState(latest?.name ?? item?.name ?? '');
  const [body, setBody] = useState(latest?.body ?? '');
  const [labels, setLabels] = useState(item?.labels.join(', ') ?? '');
  const save = useAction(async () => {
    const r = item
      ? await api.put<Item>(`/content/${item.id}`, { name, body, labels: labelsOf(labels) })
      : await api.post<Item>('/content', { type, name, body, labels: labelsOf(labels) });
    onSaved(r.id);
  });
  return (
    <form
      class="panel"
      aria-labelledby="item-editor"
      onSubmit={(e) => {
        e.preventDefault();
        void save.start();
      }}
    >
      <h2 id="item-editor">{item ? 'Edit (saves a new version)' : 'New content item'}</h2>
      <div class="row">
        {!item && (
          <Select
            label="Type"
            name="content-type"
            value={type}
            options={TYPES.map((t) => ({ value: t }))}
            onChange={setType}
          />
        )}
        <Field label="Name" name="content-name" value={name} onInput={setName} required />
        <Field
          label="Labels"
          name="content-labels"
          value={labels}
          onInput={setLabels}
          hint="Comma-separated; all = every tenant"
        />
      </div>
      <div class="field">
        <label for="content-body">Body</label>
        <textarea
          id="content-body"
          name="content-body"
          rows={8}
          value={body}
          required
          onInput={(e) => setBody((e.currentTarget as HTMLTextAreaElement).value)}
        />
      </div>
      <ErrorLine error={save.error} />
      <ActionButton type="submit" kind="primary" busy={save.busy} busyLabel="Saving…">
        {item ? 'Save new version' : 'Create item'}
      </ActionButton>
    </form>
  );
}

export function ContentItemPage({ id, user }: { id: string; user: SessionUser }) {
  const item = useLoad(() => api.get<ItemWithVersions>(`/content/${id}`), [id]);
  const status = useLoad(() => api.get<Status>(`/content/${id}/status`), [id]);
  const sharing = status.data?.rollup === 'Sharing';
  useInterval(status.reload, SHARING_POLL_MS, sharing);
  const after = (f: () => Promise<unknown>) => async () => {
    await f();
    item.reload();
    status.reload();
  };
  const publish = useAction(after(() => api.post(`/content/${id}/publish`)));
  const share = useAction(after(() => api.post(`/content/${id}/share`)));
  const unshare = useAction(after(() => api.del(`/content/${id}/share`)));
  const i = item.data;
  return (
    <>
      <p>
        <a href="/content">← Content library</a>
      </p>
      <ErrorLine error={item.error} />
      {!i && item.loading && <Busy label="Loading the item…" />}
      {i && (
        <>
          <h1>
            {i.name} <small>({i.type})</small>
          </h1>
          <p>
            Version {i.version}, published {i.published ?? 'never'}, labels {i.labels.join(', ') || 'none'}.
          </p>
          <div class="row">
            {can(user, 'content:write') && (
              <ActionButton busy={publish.busy} onClick={() => void publish.start()} busyLabel="Publishing…">
                Publish version {i.version}
              </ActionButton>
            )}
            {can(user, 'content:share') && (
              <>
                <ActionButton kind="primary" busy={share.busy} onClick={() => void share.start()} busyLabel="Sharing…">
                  Share
                </ActionButton>
                <ActionButton busy={unshare.busy} onClick={() => void unshare.start()} busyLabel="Unsharing…">
                  Unshare
                </ActionButton>
              </>
            )}
          </div>
          <ErrorLine error={publish.error ?? share.error ?? unshare.error} />
        </>
      )}
      <section aria-labelledby="item-status">
        <h2 id="item-status">
          Sharing status: <Badge value={status.data?.rollup} />
        </h2>
        {sharing && <Busy label="Sharing to tenants…" />}
        <ErrorLine error={status.error} />
        {status.data?.problems?.map((p) => (
          <p key={p} class="error">
            {p}
          </p>
        ))}
        {status.data && (
          <>
            <Table
              caption="Status per tenant"
              rows={status.data.tenants}
              rowKey={(t) => t.tenant}
              columns={[
                { label: 'Tenant', cell: (t) => t.tenant },
                { label: 'State', cell: (t) => <Badge value={t.state} /> },
                { label: 'Version held', cell: (t) => t.version ?? '—' },
                { label: 'Reason', cell: (t) => t.reason ?? '' },
                { label: 'When', cell: (t) => when(t.at) },
              ]}
            />
            <Table
              caption="Sharing log"
              rows={status.data.log.slice().reverse()}
              rowKey={(l) => `${l.at}|${l.action}|${l.tenant ?? ''}`}
              columns={[
                { label: 'When', cell: (l) => when(l.at) },
                { label: 'Action', cell: (l) => l.action },
                { label: 'Tenant', cell: (l) => l.tenant ?? '' },
                { label: 'Version', cell: (l) => l.version ?? '' },
                { label: 'Outcome', cell: (l) => <Badge value={l.outcome} /> },
                { label: 'Reason', cell: (l) => l.reason ?? '' },
              ]}
            />
          </>
        )}
      </section>
      {i && can(user, 'content:write') && <ItemEditor key={i.version} item={i} onSaved={() => item.reload()} />}
    </>
  );
}
