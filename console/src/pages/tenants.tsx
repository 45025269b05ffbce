/**
 * Tenants: the live list (from the overview stream), create, labels, stop/start, move to another host
 * (with progress while main copies the snapshot) and remove (after typing the tenant's name).
 */
import { useState } from 'preact/hooks';
import { api, can, type SessionUser } from '../api.js';
import { useAction } from '../hooks.js';
import { useOverview, type TenantRow } from '../overview-store.js';
import { ActionButton, Badge, Busy, ConfirmDialog, ErrorLine, Field, Select, Table } from '../components/ui.js';
import { tenantHealth } from './overview.js';

const enc = encodeURIComponent;
const splitLabels = (s: string) =>
  s
    .split(',')
    .map((l) => l.trim())
    .filter(Boolean);

export function TenantsPage({ user }: { user: SessionUser }) {
  const o = useOverview();
  const write = can(user, 'tenants:write');
  const hosts = o.data?.hosts ?? [];
  return (
    <>
      <h1>Tenants</h1>
      {write && <CreateTenant hosts={hosts.map((h) => h.name)} />}
      <ErrorLine error={o.error} />
      {!o.data ? (
        <Busy label="Loading tenants…" />
      ) : (
        <Table
          caption="Tenants"
          rows={o.data.tenants}
          rowKey={(t) => t.name}
          columns={[
            { label: 'Name', cell: (t) => <a href={`/tenants/${enc(t.name)}`}>{t.name}</a> },
            { label: 'Host', cell: (t) => t.host },
            { label: 'Status', cell: (t) => <Badge value={tenantHealth(t)} /> },
            { label: 'Labels', cell: (t) => (write ? <Labels tenant={t} /> : t.labels.join(', ')) },
            ...(write
              ? [
                  {
                    label: 'Actions',
                    cell: (t: TenantRow) => <TenantActions tenant={t} hosts={hosts.map((h) => h.name)} />,
                  },
                ]
              : []),
          ]}
        />
      )}
    </>
  );
}

function CreateTenant({ hosts }: { hosts: string[] }) {
  const [name, setName] = useState('');
  const [host, setHost] = useState('');
  const [labels, setLabels] = useState('');
  const [done, setDone] = useState('');
  const chosenHost = host || hosts[0] || '';
  const create = useAction(async () => {
    setDone('');
    await api.post('/tenants', { name, host: chosenHost, labels: splitLabels(labels) });
    setDone(`Tenant ${name} created on ${chosenHost}.`);
    setName('');
    setLabels('');
  });
  return (
    <form
      class="panel"
      aria-labelledby="create-tenant"
      onSubmit={(e) => {
        e.preventDefault();
        void create.start();
      }}
    >
      <h2 id="create-tenant">Create a tenant</h2>
      <div class="row">
        <Field label="Tenant name" name="tenant-name" value={name} onInput={setName} required />
        <Select
          label="Host"
          name="tenant-host"
          value={chosenHost}
          options={hosts.map((h) => ({ value: h }))}
          onChange={setHost}
        />
        <Field label="Labels" name="tenant-labels" value={labels} onInput={setLabels} hint="Comma-separated" />
      </div>
      <ErrorLine error={create.error} />
      {done && <p role="status">{done}</p>}
      <ActionButton type="submit" kind="primary" busy={create.busy} busyLabel="Creating and starting…">
        Create tenant
      </ActionButton>
    </form>
  );
}

function Labels({ tenant }: { tenant: TenantRow }) {
  const [editing, setEditing] = useState(false);
  const [value, setValue] = useState(tenant.labels.join(', '));
  const save = useAction(async () => {
    await api.patch(`/tenants/${enc(tenant.name)}`, { labels: splitLabels(value) });
    setEditing(false);
  });
  if (!editing)
    return (
      <span>
        {tenant.labels.join(', ') || '—'}{' '}
        <button
          type="button"
          class="btn link"
          aria-label={`Edit labels of ${tenant.name}`}
          onClick={() => setEditing(true)}
        >
          Edit
        </button>
      </span>
    );
  return (
    <form
      class="inline"
      onSubmit={(e) => {
        e.preventDefault();
        void save.start();
      }}
    >
      <Field label={`Labels of ${tenant.name}`} name={`labels-${tenant.name}`} value={value} onInput={setValue} />
      <ActionButton type="submit" busy={save.busy} busyLabel="Saving…">
        Save
      </ActionButton>
      <ErrorLine error={save.error} />
    </form>
  );
}

function TenantActions({ tenant, hosts }: { tenant: TenantRow; hosts: string[] }) {
  const [to, setTo] = useState('');
  const [confirm, setConfirm] = useState(false);
  const [moved, setMoved] = useState('');
  const others = hosts.filter((h) => h !== tenant.host);
  const target = to || others[0] || '';
  const name = enc(tenant.name);
  const stopStart = useAction(() => api.post(`/tenants/${name}/${tenant.status === 'stopped' ? 'start' : 'stop'}`));
  const move = useAction(async () => {
    setMoved('');
    const r = await api.post<{ to: string; bytes?: number }>(`/tenants/${name}/move`, { to: target });
    setMoved(`Moved to ${r.to}${r.bytes ? ` (${Math.round(r.bytes / 1024)} KiB copied)` : ''}.`);
  });
  const remove = useAction(() => api.del(`/tenants/${name}`));
  return (
    <div class="actions">
      <ActionButton
        busy={stopStart.busy}
        onClick={() => void stopStart.start()}
        busyLabel={tenant.status === 'stopped' ? 'Starting…' : 'Stopping…'}
        label={`${tenant.status === 'stopped' ? 'Start' : 'Stop'} ${tenant.name}`}
      >
        {tenant.status === 'stopped' ? 'Start' : 'Stop'}
      </ActionButton>
      {others.length > 0 && (
        <span class="move">
          <Select
            label={`Move ${tenant.name} to`}
            name={`move-${tenant.name}`}
            value={target}
            options={others.map((h) => ({ value: h }))}
            onChange={setTo}
          />
          <ActionButton
            busy={move.busy}
            onClick={() => void move.start()}
            busyLabel={`Moving to ${target}: snapshot, copy, start…`}
            label={`Move ${tenant.name}`}
          >
            Move
          </ActionButton>
        </span>
      )}
      <ActionButton
        kind="danger"
        busy={remove.busy}
        busyLabel="Removing…"
        onClick={() => setConfirm(true)}
        label={`Remove ${tenant.name}`}
      >
        Remove
      </ActionButton>
      <ConfirmDialog
        open={confirm}
        title={`Remove tenant ${tenant.name}?`}
        confirmText={tenant.name}
        confirmLabel="Remove for good"
        onCancel={() => setConfirm(false)}
        onConfirm={() => {
          setConfirm(false);
          void remove.start();
        }}
      >
        <p>This stops its process and deletes its data, keys and engine enrolments. It cannot be undone.</p>
      </ConfirmDialog>
      {moved && <span role="status">{moved}</span>}
      <ErrorLine error={stopStart.error ?? move.error ?? remove.error} />
    </div>
  );
}
