/**
 * Custom roles defined on main, end to end with real processes: a role shared to label `emea` gives a
 * staff user exactly its permissions in emea tenants and nothing elsewhere; an edit changes nothing until
 * published and reshared; a tenant created later with the label has the role when its creation answers;
 * un-sharing takes it away. No role lifts a customer user above the customer ceiling or anyone above what
 * they hold; bad role bodies are refused naming the field and change nothing. Roles defined on a tenant
 * are in tenant-roles.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Deployment } from '../harness/deployment.js';
import type { ErrorBody } from '../harness/api-shapes.js';
import { asUser, incident, type RoleRow } from './custom-roles-fixtures.js';

let d: Deployment;

interface Key {
  id: string;
  key: string;
}

const user = (body: Record<string, unknown>, path?: string) => d.createUser(body, path);
const keyFor = (userId: string, path?: string): Promise<string> => d.createKey(userId, path);
const as = (key: string, method: string, path: string, body?: unknown) => asUser(d, key, method, path, body);

async function contentRoles(): Promise<unknown[]> {
  return (await d.api<unknown[]>('GET', '/content?type=role')).body;
}

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'rh');
  await d.startAgent('rh');
  for (const [name, labels] of [
    ['ea', ['emea']],
    ['eb', ['emea', 'gold']],
    ['ap', ['apac']],
  ] as const)
    await d.createTenant(name, 'rh', { labels: [...labels] });
}, 180_000);
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('role bodies', () => {
  it('are refused with a 400 naming the field, and nothing is created', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ type: 'role', name: 'tier1', body: 'permissions: all' }, 'body'],
      [{ type: 'role', name: 'tier1', body: '["incidents:read"]' }, 'body'],
      [{ type: 'role', name: 'tier1', body: '{"mainPermissions":[]}' }, 'body.permissions'],
      [
        { type: 'role', name: 'tier1', body: '{"permissions":["incidents:read","incidents:delete"]}' },
        'body.permissions',
      ],
      [{ type: 'role', name: 'tier1', body: '{"permissions":"incidents:read"}' }, 'body.permissions'],
      [
        { type: 'role', name: 'tier1', body: '{"permissions":[],"mainPermissions":["users:write"]}' },
        'body.mainPermissions',
      ],
      [
        { type: 'role', name: 'tier1', body: '{"permissions":[],"mainPermissions":["roles:write"]}' },
        'body.mainPermissions',
      ],
      [{ type: 'role', name: 'tier1', body: '{"permissions":[],"grant":"everything"}' }, 'body.grant'],
      [{ type: 'role', name: 'Tier 1', body: '{"permissions":[]}' }, 'name'],
      [{ type: 'role', name: 'admin', body: '{"permissions":[]}' }, 'name'],
    ];
    for (const [body, field] of cases) {
      const r = await d.api<ErrorBody>('POST', '/content', body);
      expect(r.status, `${JSON.stringify(body)} → ${r.raw}`).toBe(400);
      expect(r.body.error.message.startsWith(`${field}:`), `${r.body.error.message} names ${field}`).toBe(true);
    }
    const viaRoles = await d.api<ErrorBody>('POST', '/roles', {
      name: 'tier1',
      permissions: ['incidents:read', 'bogus'],
    });
    expect(viaRoles.status).toBe(400);
    expect(viaRoles.body.error.message).toMatch(/^permissions: "bogus"/);
    expect(await contentRoles()).toEqual([]);
    const roles = (await d.api<{ roles: RoleRow[] }>('GET', '/roles')).body.roles;
    expect(roles.filter((r) => r.source === 'custom')).toEqual([]);
    expect(roles.find((r) => r.name === 'admin' && r.for === 'staff')?.mainPermissions).toContain('roles:write');
  });

  it('unknown role names for users are refused', async () => {
    for (const body of [
      { name: 'u1', roles: ['tier9'] },
      { name: 'u1', tenant: 'ea', roles: ['tier9'] },
    ]) {
      const r = await d.api<ErrorBody>('POST', '/users', body);
      expect(r.status).toBe(400);
      expect(r.body.error.message).toMatch(/^roles:/);
    }
    const t = await d.api<ErrorBody>('POST', '/tenants/ea/api/users', { name: 'u1', roles: ['tier9'] });
    expect(t.status).toBe(400);
    expect(t.body.error.message).toMatch(/^roles:/);
  });
});

describe('a role defined on main and shared to label emea', () => {
  let roleId = '';
  let sam = '';

  beforeAll(async () => {
    const r = await d.api<RoleRow>('POST', '/roles', {
      name: 'tier1',
      permissions: ['incidents:read', 'tenant:read'],
      mainPermissions: ['tenants:read', 'tenants:relay'],
      labels: ['emea'],
      description: 'first-line triage',
    });
    expect(r.status, r.raw).toBe(201);
    expect(r.body.published).toBe(1);
    roleId = r.body.id!;
    sam = await keyFor((await user({ name: 'sam', roles: ['tier1'] })).id);
    // Before it is shared no tenant knows it: main relays (tenants:relay), the tenant refuses.
    expect((await as(sam, 'GET', '/tenants/ea/api/incidents')).status).toBe(403);
    const s = await d.api<{ rollup: string }>('POST', `/content/${roleId}/share`);
    expect(s.status).toBe(200);
    expect(s.body.rollup).toBe('Successful');
  });

  it('gives a staff user exactly its permissions in emea tenants and nothing in others', async () => {
    for (const t of ['ea', 'eb']) {
      expect((await as(sam, 'GET', `/tenants/${t}/api/incidents`)).status, t).toBe(200);
      expect((await as(sam, 'POST', `/tenants/${t}/api/incidents`, incident)).status, t).toBe(403);
      expect((await as(sam, 'GET', `/tenants/${t}/api/content`)).status, t).toBe(403);
      expect((await as(sam, 'GET', `/tenants/${t}/api/users`)).status, t).toBe(403);
    }
    const ap = await as(sam, 'GET', '/tenants/ap/api/incidents');
    expect(ap.status).toBe(403);
    // On main: its main permissions and no more.
    expect((await as(sam, 'GET', '/tenants')).status).toBe(200);
    for (const [method, path] of [
      ['GET', '/users'],
      ['GET', '/content'],
      ['GET', '/audit'],
      ['POST', '/tenants'],
    ] as const) {
      expect(
        (await as(sam, method, path, method === 'POST' ? { name: 'zz', host: 'rh' } : undefined)).status,
        path,
      ).toBe(403);
    }
    const listed = (await d.api<RoleRow[]>('GET', '/tenants/ea/api/roles')).body.find((r) => r.name === 'tier1');
    expect(listed).toMatchObject({ source: 'shared', permissions: ['incidents:read', 'tenant:read'] });
    expect((await d.api<RoleRow[]>('GET', '/tenants/ap/api/roles')).body.some((r) => r.name === 'tier1')).toBe(false);
  });

  it('cannot be shadowed by a tenant role, nor renamed on main', async () => {
    const r = await d.api<ErrorBody>('POST', '/tenants/ea/api/roles', {
      name: 'tier1',
      permissions: ['incidents:read'],
    });
    expect(r.status).toBe(409);
    expect(r.body.error.message).toMatch(/^name:/);
    const rn = await d.api<ErrorBody>('PUT', `/content/${roleId}`, { name: 'tier2' });
    expect(rn.status).toBe(400);
    expect(rn.body.error.message).toMatch(/^name:/);
    const dup = await d.api<ErrorBody>('POST', '/roles', { name: 'tier1', permissions: [] });
    expect(dup.status).toBe(409);
  });

  it('an edit changes nothing until published and reshared; then tenants and main follow', async () => {
    const bad = await d.api<ErrorBody>('PUT', `/content/${roleId}`, {
      body: '{"permissions":["incidents:read","root"]}',
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/^body\.permissions:/);
    const versions = (await d.api<{ versions: unknown[] }>('GET', `/content/${roleId}`)).body.versions;
    expect(versions).toHaveLength(1);

    const next = JSON.stringify({
      permissions: ['incidents:read', 'incidents:write', 'tenant:read'],
      mainPermissions: ['tenants:read', 'tenants:relay', 'content:read'],
    });
    expect((await d.api('PUT', `/content/${roleId}`, { body: next })).status).toBe(200);
    expect((await as(sam, 'POST', '/tenants/ea/api/incidents', incident)).status).toBe(403);
    expect((await as(sam, 'GET', '/content')).status).toBe(403);
    expect((await d.api('POST', `/content/${roleId}/publish`)).status).toBe(200);
    // Published: main applies it at once; tenants when it is reshared.
    expect((await as(sam, 'GET', '/content')).status).toBe(200);
    expect((await as(sam, 'POST', '/tenants/ea/api/incidents', incident)).status).toBe(403);
    expect((await d.api<{ rollup: string }>('POST', `/content/${roleId}/share`)).body.rollup).toBe('Successful');
    for (const t of ['ea', 'eb'])
      expect((await as(sam, 'POST', `/tenants/${t}/api/incidents`, incident)).status, t).toBe(201);
    expect((await as(sam, 'POST', '/tenants/ap/api/incidents', incident)).status).toBe(403);
  });

  it('a tenant created later with label emea has the role when its creation answers', async () => {
    const c = await d.api('POST', '/tenants', { name: 'ec', host: 'rh', labels: ['emea'] });
    expect(c.status, c.raw).toBe(201);
    expect((await as(sam, 'GET', '/tenants/ec/api/incidents')).status).toBe(200);
    expect((await as(sam, 'POST', '/tenants/ec/api/incidents', incident)).status).toBe(201);
  });

  it('un-sharing removes it from every tenant', async () => {
    const s = await d.api<{ rollup: string }>('DELETE', `/content/${roleId}/share`);
    expect(s.status).toBe(200);
    expect(s.body.rollup).toBe('Not Shared');
    for (const t of ['ea', 'eb', 'ec']) {
      expect((await as(sam, 'GET', `/tenants/${t}/api/incidents`)).status, t).toBe(403);
      expect(
        (await d.api<RoleRow[]>('GET', `/tenants/${t}/api/roles`)).body.some((r) => r.name === 'tier1'),
        t,
      ).toBe(false);
    }
  });

  it('is deleted on main only when unshared and held by nobody; both are audited', async () => {
    const held = await d.api<ErrorBody>('DELETE', '/roles/tier1');
    expect(held.status).toBe(409);
    expect(held.body.error.code).toBe('ERR_ROLE_IN_USE');
    expect(
      (await d.api('POST', '/roles', { name: 'spare', permissions: ['incidents:read'], labels: ['apac'] })).status,
    ).toBe(201);
    const spare = (await d.api<{ roles: RoleRow[] }>('GET', '/roles')).body.roles.find((r) => r.name === 'spare')!;
    expect((await d.api('POST', `/content/${spare.id}/share`)).status).toBe(200);
    expect((await d.api<ErrorBody>('DELETE', '/roles/spare')).body.error.code).toBe('ERR_ROLE_SHARED');
    expect((await d.api('DELETE', `/content/${spare.id}/share`)).status).toBe(200);
    expect((await d.api('DELETE', '/roles/spare')).status).toBe(200);
    expect((await d.api<{ roles: RoleRow[] }>('GET', '/roles')).body.roles.some((r) => r.name === 'spare')).toBe(false);
    expect((await d.api('GET', `/content/${spare.id}`)).status).toBe(404);
    const audit = (await d.api<{ action: string; detail?: { name?: string } }[]>('GET', '/audit?action=role.')).body;
    expect(audit.some((a) => a.action === 'role.create' && a.detail?.name === 'tier1')).toBe(true);
    expect(audit.some((a) => a.action === 'role.update')).toBe(true);
    expect(audit.some((a) => a.action === 'role.delete' && a.detail?.name === 'spare')).toBe(true);
  });
});

describe('ceilings', () => {
  let ops = '';
  beforeAll(async () => {
    const r = await d.api<RoleRow>('POST', '/roles', {
      name: 'ops',
      permissions: ['incidents:read', 'tunnels:write', 'engines:run', 'audit:read', 'users:read', 'users:write'],
      labels: ['emea'],
    });
    expect(r.status, r.raw).toBe(201);
    ops = r.body.id!;
    expect((await d.api<{ rollup: string }>('POST', `/content/${ops}/share`)).body.rollup).toBe('Successful');
  });

  it('a customer admin holding a wide shared role stays under the customer ceiling', async () => {
    const k = await keyFor((await user({ name: 'cust-ops', tenant: 'ea', roles: ['admin', 'ops'] })).id);
    expect((await as(k, 'GET', '/tenants/ea/api/incidents')).status).toBe(200);
    expect((await as(k, 'GET', '/tenants/ea/api/audit')).status).toBe(403);
    expect((await as(k, 'POST', '/tenants/ea/api/tunnels', { to: '127.0.0.1:22', listen: '127.0.0.1:0' })).status).toBe(
      403,
    );
    expect(
      (
        await as(k, 'POST', '/tenants/ea/api/engine-commands', {
          command: 'tcp.check',
          args: { host: '10.0.0.1', port: 22 },
        })
      ).status,
    ).toBe(403);
    // Nor through a role of its own making.
    const own = await as(k, 'POST', '/tenants/ea/api/roles', { name: 'auditor', permissions: ['audit:read'] });
    expect(own.status).toBe(400);
    expect(own.body.error.message).toMatch(/^permissions:/);
    // A user it creates with the wide role is capped the same way.
    const u = await as(k, 'POST', '/tenants/ea/api/users', { name: 'ops-user', roles: ['ops'] });
    expect(u.status, u.raw).toBe(201);
    const uk = await d.api<Key>('POST', '/tenants/ea/api/apikeys', { user: 'ops-user' }, { key: k });
    expect((await as(uk.body.key, 'GET', '/tenants/ea/api/audit')).status).toBe(403);
  });

  it('MSSP staff holding the same role get all of it', async () => {
    const k = await keyFor((await user({ name: 'staff-ops', roles: ['viewer', 'ops'] })).id);
    expect((await as(k, 'GET', '/tenants/ea/api/audit')).status).toBe(200);
    expect((await as(k, 'GET', '/tenants/ap/api/audit')).status).toBe(403);
  });

  it('nobody grants more than they hold: a user manager cannot mint writers', async () => {
    expect(
      (await d.api('POST', '/tenants/eb/api/roles', { name: 'usermgr', permissions: ['users:read', 'users:write'] }))
        .status,
    ).toBe(201);
    const u = await user({ name: 'um', roles: ['usermgr'] }, '/tenants/eb/api/users');
    const k = await keyFor(u.id, '/tenants/eb/api/apikeys');
    expect((await as(k, 'GET', '/tenants/eb/api/users')).status).toBe(200);
    const role = await as(k, 'POST', '/tenants/eb/api/roles', { name: 'writer', permissions: ['incidents:write'] });
    expect(role.status).toBe(403);
    expect(role.body.error.code).toBe('ERR_ROLE_ESCALATION');
    const minted = await as(k, 'POST', '/tenants/eb/api/users', { name: 'w', roles: ['read-write'] });
    expect(minted.status).toBe(403);
    expect(minted.body.error.code).toBe('ERR_ROLE_ESCALATION');
    expect((await as(k, 'POST', '/tenants/eb/api/users', { name: 'um2', roles: ['usermgr'] })).status).toBe(201);
  });

  it('on main, only built-in admins change roles: a custom content author cannot write or share one', async () => {
    expect(
      (
        await d.api('POST', '/roles', {
          name: 'author',
          permissions: [],
          mainPermissions: ['content:read', 'content:write', 'content:share'],
        })
      ).status,
    ).toBe(201);
    const k = await keyFor((await user({ name: 'writer', roles: ['author'] })).id);
    expect((await as(k, 'POST', '/content', { type: 'playbook', name: 'pb', body: 'steps: []' })).status).toBe(201);
    const r = await as(k, 'POST', '/content', {
      type: 'role',
      name: 'mine',
      body: '{"permissions":[],"mainPermissions":["audit:read"]}',
    });
    expect(r.status).toBe(403);
    const author = (await d.api<{ roles: RoleRow[] }>('GET', '/roles')).body.roles.find((x) => x.name === 'author')!;
    expect(
      (await as(k, 'PUT', `/content/${author.id}`, { body: '{"permissions":[],"mainPermissions":["audit:read"]}' }))
        .status,
    ).toBe(403);
    expect((await as(k, 'POST', `/content/${ops}/share`)).status).toBe(403);
    expect((await as(k, 'DELETE', `/content/${ops}/share`)).status).toBe(403);
    expect((await as(k, 'POST', '/roles', { name: 'mine', permissions: [] })).status).toBe(403);
    expect((await as(k, 'POST', '/users', { name: 'x', roles: ['admin'] })).status).toBe(403);
  });
});
