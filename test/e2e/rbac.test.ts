/**
 * Who may reach what, end to end with real processes: customer users of one tenant, MSSP staff limited to
 * some tenants, keys created on a tenant, revocation. Every test tries to cross a boundary it must not.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Deployment } from '../harness/deployment.js';
import { until } from '../harness/processes.js';

let d: Deployment;

interface User {
  id: string;
  name: string;
}
interface Key {
  id: string;
  key: string;
}

const user = (body: Record<string, unknown>, path?: string): Promise<User> => d.createUser(body, path);
const keyFor = (userId: string, path?: string): Promise<string> => d.createKey(userId, path);
const as = (key: string, method: string, path: string, body?: unknown) =>
  d.api<{ error?: { code: string } } & Record<string, unknown>>(method, path, body, { key });

let incA = '';

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'rh');
  await d.startAgent('rh');
  for (const t of ['ta', 'tb', 'tc']) await d.createTenant(t, 'rh');
  const inc = await d.api<{ id: string }>('POST', '/tenants/ta/api/incidents', {
    name: 'phish at A',
    type: 'phishing',
    severity: 2,
    details: 'a',
  });
  incA = inc.body.id;
  await d.api('POST', '/tenants/tb/api/incidents', { name: 'phish at B', type: 'phishing', severity: 2, details: 'b' });
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('customer users (created on main for one tenant)', () => {
  let ro = '',
    rw = '';
  beforeAll(async () => {
    ro = await keyFor((await user({ name: 'alice-ro', tenant: 'ta', roles: ['read-only'] })).id);
    rw = await keyFor((await user({ name: 'bob-rw', tenant: 'ta', roles: ['read-write'] })).id);
  });

  it("a read-only user reads its tenant's incidents but cannot write them", async () => {
    const list = await as(ro, 'GET', '/tenants/ta/api/incidents');
    expect(list.status).toBe(200);
    expect(JSON.stringify(list.body)).toContain('phish at A');
    expect((await as(ro, 'GET', `/tenants/ta/api/incidents/${incA}`)).status).toBe(200);
    const w = await as(ro, 'POST', '/tenants/ta/api/incidents', { name: 'x', type: 't', severity: 1 });
    expect(w.status).toBe(403);
    expect((await as(ro, 'PATCH', `/tenants/ta/api/incidents/${incA}`, { severity: 4 })).status).toBe(403);
  });

  it('a read-write user writes in its tenant', async () => {
    expect((await as(rw, 'POST', '/tenants/ta/api/incidents', { name: 'by bob', type: 't', severity: 1 })).status).toBe(
      201,
    );
  });

  it('cannot reach another tenant by any path or id, nor any main-only route', async () => {
    for (const path of [
      '/tenants/tb/api/incidents',
      `/tenants/tb/api/incidents/${incA}`,
      '/tenants/tc/api/incidents',
      '/tenants/tb/api/tunnels',
      '/tenants/TB/api/incidents',
      '/tenants/ta%2F..%2Ftb/api/incidents',
    ]) {
      const r = await as(ro, 'GET', path);
      expect([400, 403, 404], `${path} → ${r.status}`).toContain(r.status);
      expect(r.raw).not.toContain('phish at B');
    }
    for (const [method, path] of [
      ['GET', '/tenants'],
      ['GET', '/hosts'],
      ['GET', '/engines'],
      ['GET', '/audit'],
      ['GET', '/users'],
      ['POST', '/installers'],
      ['POST', '/tenants'],
      ['DELETE', '/tenants/ta'],
      ['POST', '/apikeys'],
    ] as const) {
      const r = await as(rw, method, path, method === 'POST' ? {} : undefined);
      expect(r.status, `${method} ${path}`).toBe(403);
    }
  });

  it('customer roles cannot be given to MSSP staff and main roles cannot be given to customer users', async () => {
    const r = await d.api<{ error: { code: string; message: string } }>('POST', '/users', {
      name: 'eve',
      tenant: 'ta',
      roles: ['analyst'],
    });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toContain('roles');
    const r2 = await d.api<{ error: { code: string } }>('POST', '/users', { name: 'eve', roles: ['read-only'] });
    expect(r2.status).toBe(400);
    const r3 = await d.api<{ error: { code: string } }>('POST', '/users', {
      name: 'eve',
      tenant: 'nope',
      roles: ['read-only'],
    });
    expect(r3.status).toBe(404);
    expect((await d.api<unknown[]>('GET', '/users')).body.some((u) => (u as User).name === 'eve')).toBe(false);
  });
});

describe('MSSP staff limited to some tenants', () => {
  it('an analyst limited to ta and tb reaches both, never tc, and sees only them in the tenant list', async () => {
    const k = await keyFor((await user({ name: 'carol', roles: ['analyst'], tenants: ['ta', 'tb'] })).id);
    expect((await as(k, 'GET', '/tenants/ta/api/incidents')).status).toBe(200);
    expect((await as(k, 'GET', '/tenants/tb/api/incidents')).status).toBe(200);
    const c = await as(k, 'GET', '/tenants/tc/api/incidents');
    expect(c.status).toBe(404);
    const names = ((await as(k, 'GET', '/tenants')).body as unknown as { name: string }[]).map((t) => t.name).sort();
    expect(names).toEqual(['ta', 'tb']);
    // Not an admin: no tenant changes, no users.
    expect((await as(k, 'POST', '/tenants', { name: 'td', host: 'rh' })).status).toBe(403);
    expect((await as(k, 'POST', '/users', { name: 'x', roles: ['admin'] })).status).toBe(403);
    // The refused crossing is audited.
    const audit = (await d.api<{ action: string; target?: string }[]>('GET', '/audit?action=auth.tenant')).body;
    expect(audit.some((a) => a.target === 'GET tenant:tc')).toBe(true);
  });
});

describe('limits that hold for admins too', () => {
  it('an admin limited to one tenant keeps only work inside it: no users, keys, installers, audit or other tenants', async () => {
    const k = await keyFor((await user({ name: 'lim-admin', roles: ['admin'], tenants: ['ta'] })).id);
    expect((await as(k, 'GET', '/tenants/ta/api/incidents')).status).toBe(200);
    for (const [method, path, body] of [
      ['POST', '/users', { name: 'x2', roles: ['admin'] }],
      ['POST', '/apikeys', { user: 'admin' }],
      ['GET', '/users', undefined],
      ['POST', '/installers', { kind: 'engine', name: 'e9', tenant: 'tb' }],
      ['GET', '/audit', undefined],
      ['DELETE', '/tenants/tb', undefined],
      ['POST', '/tenants/tb/move', { to: 'rh' }],
      ['PATCH', '/tenants/tb', { labels: ['x'] }],
      ['GET', '/content', undefined],
    ] as const) {
      const r = await as(k, method, path, body);
      expect(r.status, `${method} ${path}`).toBe(403);
    }
    expect((await as(k, 'GET', '/tenants/tb')).status).toBe(404);
  });

  it("a customer admin manages its tenant's users but cannot open tunnels, run engine commands or read the tenant audit", async () => {
    const k = await keyFor((await user({ name: 'cust-admin', tenant: 'tb', roles: ['admin'] })).id);
    expect((await as(k, 'POST', '/tenants/tb/api/users', { name: 'tb-user', roles: ['read-only'] })).status).toBe(201);
    expect((await as(k, 'POST', '/tenants/tb/api/tunnels', { to: '127.0.0.1:22', listen: '127.0.0.1:0' })).status).toBe(
      403,
    );
    expect(
      (
        await as(k, 'POST', '/tenants/tb/api/engine-commands', {
          command: 'tcp.check',
          args: { host: '10.0.0.1', port: 22 },
        })
      ).status,
    ).toBe(403);
    expect((await as(k, 'GET', '/tenants/tb/api/audit')).status).toBe(403);
  });

  it('a forged tenant key gets the same 401 whether its tenant exists, runs, or not', async () => {
    const fake = (t: string) => `ptk_${t}~AAAAAAAAAAAA.${'B'.repeat(43)}`;
    for (const t of ['ta', 'no-such-tenant']) {
      const r = await as(fake(t), 'GET', `/tenants/${t}/api/incidents`);
      expect(r.status, t).toBe(401);
      expect(r.body.error?.code).toBe('ERR_AUTH_INVALID_KEY');
    }
  });

  it('removing a tenant disables its customer users, so a tenant later created under the name is not theirs', async () => {
    expect((await d.api('POST', '/tenants', { name: 'td', host: 'rh' })).status).toBe(201);
    const k = await keyFor((await user({ name: 'td-user', tenant: 'td', roles: ['read-write'] })).id);
    expect((await as(k, 'GET', '/tenants/td/api/incidents')).status).toBe(200);
    const rm = await d.api<{ removed: string[] }>('DELETE', '/tenants/td');
    expect(rm.status).toBe(200);
    expect(rm.body.removed.join(' ')).toContain('td-user');
    expect((await d.api('POST', '/tenants', { name: 'td', host: 'rh' })).status).toBe(201);
    expect((await as(k, 'GET', '/tenants/td/api/incidents')).status).toBe(401);
  });
});

describe('keys created on a tenant', () => {
  let tk = '';
  let tkId = '';
  beforeAll(async () => {
    const u = await user({ name: 'dave', roles: ['read-write'] }, '/tenants/ta/api/users');
    const r = await d.api<Key>('POST', '/tenants/ta/api/apikeys', { user: u.id });
    expect(r.status).toBe(201);
    tk = r.body.key;
    tkId = r.body.id;
  });

  it("work for that tenant through main, with the tenant user's roles", async () => {
    expect(tk).toMatch(/^ptk_ta~/);
    const first = await as(tk, 'GET', '/tenants/ta/api/incidents');
    expect(first.status, first.raw).toBe(200);
    expect(
      (await as(tk, 'POST', '/tenants/ta/api/incidents', { name: 'by dave', type: 't', severity: 1 })).status,
    ).toBe(201);
    // A read-write tenant user cannot manage the tenant's users.
    expect((await as(tk, 'POST', '/tenants/ta/api/users', { name: 'mallory', roles: ['admin'] })).status).toBe(403);
  });

  it('never work on another tenant or on main routes, even with the tenant name edited', async () => {
    expect((await as(tk, 'GET', '/tenants/tb/api/incidents')).status).toBe(404);
    for (const path of ['/tenants', '/hosts', '/users', '/audit'])
      expect((await as(tk, 'GET', path)).status, path).toBe(403);
    // The same secret presented as a key of tb: tb has no such key.
    const forged = tk.replace(/^ptk_ta~/, 'ptk_tb~');
    const r = await as(forged, 'GET', '/tenants/tb/api/incidents');
    expect(r.status).toBe(401);
    // A tenant key with a wrong secret.
    expect((await as(tk.slice(0, -4) + 'AAAA', 'GET', '/tenants/ta/api/incidents')).status).toBe(401);
  });

  it('are listed without secrets, keep a last-used time, and stop working when revoked', async () => {
    const keys = await d.api<{ id: string; lastUsedAt?: string; hash?: string }[]>('GET', '/tenants/ta/api/apikeys');
    const mine = keys.body.find((k) => k.id === tkId)!;
    expect(mine.lastUsedAt).toBeTruthy();
    expect(keys.raw).not.toContain(tk.split('.')[1]);
    expect(mine.hash).toBeUndefined();
    expect((await d.api('DELETE', `/tenants/ta/api/apikeys/${tkId}`)).status).toBe(200);
    expect((await as(tk, 'GET', '/tenants/ta/api/incidents')).status).toBe(401);
  });
});

describe('key use on main', () => {
  it('is audited with who and from where, once a minute per key rather than per request', async () => {
    const key = await keyFor((await user({ name: 'key-user', roles: ['viewer'] })).id);
    const keyId = /^pal_([^.]+)\./.exec(key)![1];
    for (let i = 0; i < 3; i++) expect((await as(key, 'GET', '/tenants')).status).toBe(200);
    const rows = await until('key use audited', async () => {
      const r = await d.api<{ actor: string; action: string; target?: string; outcome: string; remote?: string }[]>(
        'GET',
        '/audit?action=auth.key&limit=1000',
      );
      const mine = r.body.filter((e) => e.target === keyId && e.outcome === 'ok');
      return mine.length ? mine : undefined;
    });
    expect(rows).toHaveLength(1);
    expect(rows[0].remote).toBeTruthy();
  });
});

describe("the tenant's own audit log", () => {
  it('records changes, tenant-key use and denied requests with who and from where; only admins read it', async () => {
    const r = await d.cli(['audit', '--tenant', 'ta', '--limit', '500', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const rows = r.json as { actor: string; action: string; outcome: string; from?: string; status: number }[];
    // alice (read-only, created on main) was refused a write; dave (tenant key) created an incident.
    expect(
      rows.some(
        (e) =>
          e.actor.startsWith('alice-ro') &&
          e.action === 'POST /api/v1/incidents' &&
          e.outcome === 'denied' &&
          e.status === 403,
      ),
    ).toBe(true);
    expect(rows.some((e) => e.actor === 'dave' && e.action === 'POST /api/v1/incidents' && e.outcome === 'ok')).toBe(
      true,
    );
    expect(rows.some((e) => e.action === 'DELETE /api/v1/apikeys/:id' && e.outcome === 'ok')).toBe(true);
    expect(rows.every((e) => typeof e.from === 'string' && e.from.length > 0)).toBe(true);
    // dave's key use is itself a line (at most one a minute per key), with where it came from.
    expect(
      rows.filter((e) => e.action === 'auth.key' && e.actor === 'dave' && e.outcome === 'ok').length,
    ).toBeGreaterThanOrEqual(1);
    // No secret of a key made in this tenant is in its log.
    expect(r.stdout).not.toMatch(/ptk_ta~[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{20,}/);
    const ro = await keyFor((await user({ name: 'ivan-ro', tenant: 'ta', roles: ['read-only'] })).id);
    expect((await as(ro, 'GET', '/tenants/ta/api/audit')).status).toBe(403);
  });
});

describe('keys on main', () => {
  it('are shown once, listed without secrets, and revoked keys and removed users stop working', async () => {
    const u = await user({ name: 'frank', roles: ['viewer'] });
    const created = await d.api<Key>('POST', '/apikeys', { user: 'frank' });
    expect(created.status).toBe(201);
    const k = created.body.key;
    expect((await as(k, 'GET', '/tenants')).status).toBe(200);
    const list = await d.api<{ id: string; lastUsedAt: string | null }[]>('GET', '/apikeys');
    expect(list.raw).not.toContain(k.split('.')[1]);
    expect(list.body.find((x) => x.id === created.body.id)?.lastUsedAt).toBeTruthy();
    expect((await d.api('DELETE', `/apikeys/${created.body.id}`)).status).toBe(200);
    expect((await as(k, 'GET', '/tenants')).status).toBe(401);
    const k2 = await keyFor(u.id);
    const removed = await d.api<{ revokedKeys: string[] }>('DELETE', `/users/${u.id}`);
    expect(removed.status).toBe(200);
    expect((await as(k2, 'GET', '/tenants')).status).toBe(401);
    const audit = (await d.api<{ action: string }[]>('GET', '/audit?action=apikey')).body.map((a) => a.action);
    expect(audit).toEqual(expect.arrayContaining(['apikey.create', 'apikey.revoke']));
  });

  it('the CLI creates users and keys on main and in a tenant', async () => {
    const u = await d.cli(['users', 'create', 'grace', '--roles', 'read-only', '--in-tenant', 'tb', '--json']);
    expect(u.code, u.stdout + u.stderr).toBe(0);
    const k = await d.cli(['apikeys', 'create', '--user', 'grace', '--in-tenant', 'tb', '--json']);
    expect(k.code, k.stdout + k.stderr).toBe(0);
    const key = (k.json as Key).key;
    expect((await as(key, 'GET', '/tenants/tb/api/incidents')).status).toBe(200);
    expect((await as(key, 'POST', '/tenants/tb/api/incidents', { name: 'x', type: 't', severity: 1 })).status).toBe(
      403,
    );
    const bad = await d.cli(['users', 'create', 'h', '--roles', 'overlord']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });
});
