/** Users, roles and API keys on main (a new key is shown once), and the audit log. */
import { useState } from 'preact/hooks';
import { api, can, type SessionUser } from '../api.js';
import { useAction, useLoad } from '../hooks.js';
import { ActionButton, Badge, Busy, ErrorLine, Field, Table, when } from '../components/ui.js';

interface User {
  id: string;
  name: string;
  roles: string[];
  tenant: string | null;
  tenants: string[] | null;
  createdAt: string;
  disabled: boolean;
}
interface Role {
  name: string;
  source: string;
  for: string;
  mainPermissions: string[];
  permissions: string[];
}
interface Key {
  id: string;
  user: string;
  createdAt: string;
  lastUsedAt?: string | null;
}

const list = (s: string) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

export function AccessPage({ user }: { user: SessionUser }) {
  const users = useLoad(() => api.get<User[]>('/users'), []);
  const roles = useLoad(() => api.get<Role[]>('/roles'), []);
  const keys = useLoad(() => api.get<Key[]>('/apikeys'), []);
  const write = can(user, 'users:write');
  const names = new Map((users.data ?? []).map((u) => [u.id, u.name]));
  return (
    <>
      <h1>Users, roles and API keys</h1>
      {write && <CreateUser onDone={users.reload} />}
      <section aria-labelledby="acc-users">
        <h2 id="acc-users">Users</h2>
        <ErrorLine error={users.error} />
        {users.loading && !users.data && <Busy label="Loading users…" />}
        {users.data && (
          <Table
            caption="Users"
            captionHidden
            rows={users.data}
            rowKey={(u) => u.id}
            columns={[
              { label: 'Name', cell: (u) => u.name },
              { label: 'Roles', cell: (u) => u.roles.join(', ') },
              { label: 'Tenant', cell: (u) => u.tenant ?? (u.tenants?.length ? u.tenants.join(', ') : 'main') },
              { label: 'State', cell: (u) => <Badge value={u.disabled ? 'disabled' : 'active'} /> },
              { label: 'Created', cell: (u) => when(u.createdAt) },
            ]}
          />
        )}
      </section>
      <section aria-labelledby="acc-keys">
        <h2 id="acc-keys">API keys</h2>
        {write && users.data && <CreateKey users={users.data} onDone={keys.reload} />}
        <ErrorLine error={keys.error} />
        {keys.data && (
          <Table
            caption="API keys"
            captionHidden
            rows={keys.data}
            rowKey={(k) => k.id}
            columns={[
              { label: 'Key id', cell: (k) => k.id },
              { label: 'User', cell: (k) => names.get(k.user) ?? k.user },
              { label: 'Created', cell: (k) => when(k.createdAt) },
              ...(write ? [{ label: 'Revoke', cell: (k: Key) => <RevokeKey id={k.id} onDone={keys.reload} /> }] : []),
            ]}
          />
        )}
      </section>
      <section aria-labelledby="acc-roles">
        <h2 id="acc-roles">Roles</h2>
        <ErrorLine error={roles.error} />
        {roles.data && (
          <Table
            caption="Roles"
            captionHidden
            rows={roles.data}
            rowKey={(r) => r.name}
            columns={[
              { label: 'Role', cell: (r) => r.name },
              { label: 'Source', cell: (r) => r.source },
              { label: 'For', cell: (r) => r.for },
              { label: 'Main permissions', cell: (r) => r.mainPermissions.join(', ') || '—' },
              { label: 'Tenant permissions', cell: (r) => r.permissions.join(', ') || '—' },
            ]}
          />
        )}
      </section>
    </>
  );
}

function CreateUser({ onDone }: { onDone: () => void }) {
  const [name, setName] = useState('');
  const [roles, setRoles] = useState('');
  const [tenant, setTenant] = useState('');
  const create = useAction(async () => {
    await api.post('/users', { name, roles: list(roles), ...(tenant ? { tenant } : {}) });
    setName('');
    onDone();
  });
  return (
    <form
      class="panel"
      aria-labelledby="acc-new-user"
      onSubmit={(e) => {
        e.preventDefault();
        void create.start();
      }}
    >
      <h2 id="acc-new-user">New user</h2>
      <div class="row">
        <Field label="User name" name="user-name" value={name} onInput={setName} required />
        <Field label="Roles" name="user-roles" value={roles} onInput={setRoles} hint="Comma-separated" required />
        <Field label="Tenant" name="user-tenant" value={tenant} onInput={setTenant} hint="Empty for MSSP staff" />
      </div>
      <p class="hint">Set the password with: palisade users passwd NAME --password-stdin</p>
      <ErrorLine error={create.error} />
      <ActionButton type="submit" kind="primary" busy={create.busy} busyLabel="Creating…">
        Create user
      </ActionButton>
    </form>
  );
}

function CreateKey({ users, onDone }: { users: User[]; onDone: () => void }) {
  const [user, setUser] = useState(users[0]?.id ?? '');
  const [shown, setShown] = useState('');
  const create = useAction(async () => {
    const r = await api.post<{ key: string }>('/apikeys', { user });
    setShown(r.key);
    onDone();
  });
  return (
    <div class="panel">
      <div class="field">
        <label for="key-user">New key for</label>
        <select id="key-user" value={user} onChange={(e) => setUser((e.currentTarget as HTMLSelectElement).value)}>
          {users.map((u) => (
            <option key={u.id} value={u.id}>
              {u.name}
            </option>
          ))}
        </select>
      </div>
      <ActionButton busy={create.busy} onClick={() => void create.start()} busyLabel="Creating…">
        Create API key
      </ActionButton>
      <ErrorLine error={create.error} />
      {shown && (
        <p role="status">
          The new key, shown this once: <code class="secret">{shown}</code>
        </p>
      )}
    </div>
  );
}

function RevokeKey({ id, onDone }: { id: string; onDone: () => void }) {
  const revoke = useAction(async () => {
    await api.del(`/apikeys/${encodeURIComponent(id)}`);
    onDone();
  });
  return (
    <>
      <ActionButton kind="danger" busy={revoke.busy} onClick={() => void revoke.start()} label={`Revoke key ${id}`}>
        Revoke
      </ActionButton>
      <ErrorLine error={revoke.error} />
    </>
  );
}

interface AuditEntry {
  at: string;
  actor: string;
  action: string;
  target?: string;
  outcome: string;
  remote?: string;
}

export function AuditPage({ query }: { query: URLSearchParams }) {
  const [action, setAction] = useState(query.get('action') ?? '');
  const [applied, setApplied] = useState(action);
  const r = useLoad(
    () => api.get<AuditEntry[]>(`/audit?limit=200${applied ? `&action=${encodeURIComponent(applied)}` : ''}`),
    [applied],
  );
  return (
    <>
      <h1>Audit log</h1>
      <form
        class="row"
        role="search"
        aria-label="Filter the audit log"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(action.trim());
        }}
      >
        <Field label="Action" name="audit-action" value={action} onInput={setAction} placeholder="e.g. tenant.create" />
        <button type="submit" class="btn plain">
          Filter
        </button>
      </form>
      <ErrorLine error={r.error} />
      {r.loading && !r.data && <Busy label="Loading the audit log…" />}
      {r.data && (
        <Table
          caption="Audit log, newest first"
          captionHidden
          rows={r.data}
          rowKey={(e) => `${e.at}|${e.action}|${e.target ?? ''}|${e.actor}`}
          columns={[
            { label: 'When', cell: (e) => when(e.at) },
            { label: 'Actor', cell: (e) => e.actor },
            { label: 'Action', cell: (e) => e.action },
            { label: 'Target', cell: (e) => e.target ?? '' },
            { label: 'Outcome', cell: (e) => <Badge value={e.outcome} /> },
            { label: 'From', cell: (e) => e.remote ?? '' },
          ]}
        />
      )}
    </>
  );
}
