/**
 * Roles defined on a tenant, end to end with real processes (main, host rh, tenants ea and eb): they work
 * for the tenant's own users there and exist nowhere else, never for MSSP staff; they are refused for
 * built-in names, beyond the customer ceiling and while in use, and audited; and the CLI manages them.
 * Split from custom-roles.test.ts (roles defined on main); nothing here depends on that file's state.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_HEADER, SIGNATURE_HEADER, bodyHash, signRequest } from '#common/signed-request.js';
import { Deployment } from '../harness/deployment.js';
import type { ErrorBody } from '../harness/api-shapes.js';
import { directRequest, mainSigningKey } from '../harness/tenant-client.js';
import { asUser, incident, type RoleRow } from './custom-roles-fixtures.js';

let d: Deployment;

const user = (body: Record<string, unknown>, path?: string) => d.createUser(body, path);
const keyFor = (userId: string, path?: string): Promise<string> => d.createKey(userId, path);
const as = (key: string, method: string, path: string, body?: unknown) => asUser(d, key, method, path, body);

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'rh');
  await d.startAgent('rh');
  for (const [name, labels] of [
    ['ea', ['emea']],
    ['eb', ['emea', 'gold']],
  ] as const)
    await d.createTenant(name, 'rh', { labels: [...labels] });
}, 180_000);
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('roles defined on a tenant', () => {
  it("work for the tenant's own users there and do not exist in another tenant", async () => {
    const r = await d.api<{ name: string; permissions: string[] }>('POST', '/tenants/ea/api/roles', {
      name: 'triage',
      permissions: ['incidents:read', 'incidents:write', 'tenant:read'],
    });
    expect(r.status, r.raw).toBe(201);
    const u = await user({ name: 'tl', roles: ['triage'] }, '/tenants/ea/api/users');
    const k = await keyFor(u.id, '/tenants/ea/api/apikeys');
    expect((await as(k, 'POST', '/tenants/ea/api/incidents', incident)).status).toBe(201);
    expect((await as(k, 'GET', '/tenants/ea/api/content')).status).toBe(403);
    expect((await d.api<RoleRow[]>('GET', '/tenants/eb/api/roles')).body.some((x) => x.name === 'triage')).toBe(false);
    const other = await d.api<ErrorBody>('POST', '/tenants/eb/api/users', { name: 'tl', roles: ['triage'] });
    expect(other.status).toBe(400);
    // Main does not know tenant roles: a main user cannot hold one.
    expect((await d.api('POST', '/users', { name: 'tl-main', tenant: 'ea', roles: ['triage'] })).status).toBe(400);
    // Not for MSSP staff, even if main signed the name: a customer must not decide what staff may do.
    const port = (await d.tenant('ea'))!.port;
    const key = await mainSigningKey(d.mainDir);
    const asStaff = (roles: string[]) => {
      const s = signRequest(key, {
        tenant: 'ea',
        method: 'GET',
        path: '/api/v1/incidents',
        bodySha256: bodyHash(undefined),
        user: { id: 'usr_staff', name: 'staff', roles },
      });
      return directRequest(port, 'GET', '/api/v1/incidents', {
        [AUTH_HEADER]: s.auth,
        [SIGNATURE_HEADER]: s.signature,
      });
    };
    expect((await asStaff(['triage'])).status).toBe(403);
    expect((await asStaff(['viewer'])).status).toBe(200);
  });

  it('are refused for built-in names, beyond the customer ceiling, while in use, and audited', async () => {
    const builtIn = await d.api<ErrorBody>('POST', '/tenants/ea/api/roles', { name: 'read-only', permissions: [] });
    expect(builtIn.status).toBe(400);
    expect(builtIn.body.error.message).toMatch(/^name:/);
    const over = await d.api<ErrorBody>('POST', '/tenants/ea/api/roles', {
      name: 'tunneller',
      permissions: ['incidents:read', 'tunnels:write'],
    });
    expect(over.status).toBe(400);
    expect(over.body.error.message).toMatch(/^permissions: tunnels:write/);
    expect((await d.api<ErrorBody>('DELETE', '/tenants/ea/api/roles/triage')).body.error.code).toBe('ERR_ROLE_IN_USE');
    expect((await d.api('DELETE', '/tenants/ea/api/roles/nosuch')).status).toBe(404);
    expect(
      (await d.api('POST', '/tenants/ea/api/roles', { name: 'gone', permissions: ['incidents:read'] })).status,
    ).toBe(201);
    expect((await d.api('DELETE', '/tenants/ea/api/roles/gone')).status).toBe(200);
    const audit = (
      await d.api<{ action: string; target: string; outcome: string }[]>('GET', '/tenants/ea/api/audit?action=role.')
    ).body;
    expect(
      audit
        .filter((a) => a.outcome === 'ok')
        .map((a) => `${a.action} ${a.target}`)
        .sort(),
    ).toEqual(['role.create gone', 'role.create triage', 'role.delete gone']);
    // A local content item cannot pose as a role.
    const local = await d.api<ErrorBody>('POST', '/tenants/ea/api/content', {
      type: 'role',
      name: 'x',
      body: '{"permissions":["audit:read"]}',
    });
    expect(local.status).toBe(400);
    expect(local.body.error.message).toMatch(/^type:/);
  });

  it('work from the CLI: roles --tenant, roles create --tenant, users create --in-tenant with a custom role', async () => {
    const c = await d.cli([
      'roles',
      'create',
      'reader',
      '--tenant',
      'eb',
      '--permissions',
      'incidents:read,tenant:read',
      '--json',
    ]);
    expect(c.code, c.stdout + c.stderr).toBe(0);
    expect(c.json).toMatchObject({ name: 'reader', permissions: ['incidents:read', 'tenant:read'] });
    const l = await d.cli(['roles', '--tenant', 'eb', '--json']);
    expect(l.code, l.stdout + l.stderr).toBe(0);
    expect((l.json as RoleRow[]).find((r) => r.name === 'reader')?.source).toBe('tenant');
    const u = await d.cli(['users', 'create', 'rd', '--in-tenant', 'eb', '--roles', 'reader', '--json']);
    expect(u.code, u.stdout + u.stderr).toBe(0);
    const bad = await d.cli(['roles', 'create', 'wide', '--tenant', 'eb', '--permissions', 'engines:run']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    const m = await d.cli([
      'roles',
      'create',
      'analyst2',
      '--permissions',
      'incidents:read',
      '--main-permissions',
      'tenants:read',
      '--labels',
      'gold',
      '--share',
      '--json',
    ]);
    expect(m.code, m.stdout + m.stderr).toBe(0);
    expect((m.json as { share: { rollup: string } }).share.rollup).toBe('Successful');
    expect(
      (await d.api<RoleRow[]>('GET', '/tenants/eb/api/roles')).body.find((r) => r.name === 'analyst2')?.source,
    ).toBe('shared');
    const ml = await d.cli(['roles', '--json']);
    expect((ml.json as { roles: RoleRow[] }).roles.find((r) => r.name === 'analyst2')).toMatchObject({
      source: 'custom',
      mainPermissions: ['tenants:read'],
    });
    const text = await d.cli(['roles']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/analyst2\s+custom\s+any\s+tenants:read\s+incidents:read\s+v1 → gold/);
    const tText = await d.cli(['roles', 'list', '--tenant', 'eb']);
    expect(tText.stdout).toMatch(/reader\s+tenant\s+customer\s+incidents:read,tenant:read/);
    const misplaced = await d.cli(['roles', 'create', 'x1', '--tenant', 'eb', '--permissions', '', '--share']);
    expect(misplaced.code).toBe(2);
    expect(misplaced.stderr).toContain('--share');
    expect((await d.cli(['roles', 'create', 'tmp', '--tenant', 'eb', '--permissions', ''])).code).toBe(0);
    const del = await d.cli(['roles', 'delete', 'tmp', '--tenant', 'eb', '--json']);
    expect(del.code, del.stdout + del.stderr).toBe(0);
    expect(del.json).toMatchObject({ name: 'tmp', deleted: true });
  });
});
