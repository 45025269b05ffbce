/**
 * Write commands across tenants (docs/search.md#write-commands) with real processes: main, one host, three tenants
 * (wa and wb labelled `wc`, wz labelled `other`). A key without `commands:write` gets 403 naming it and no tenant
 * changes; roles:sync and users:sync create and update in each chosen tenant, as each tenant's own API shows; a
 * stopped tenant reports its own error while the other succeeds; list:share and playbook:publish leave the item
 * shared on main's status for the chosen tenants only; bad args are a 400 naming the field, and change nothing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Deployment } from '../harness/deployment.js';
import type { ErrorBody } from '../harness/api-shapes.js';
import { tenantAnswering } from '../harness/tenant-api.js';

interface Results {
  results: {
    tenant: string;
    ok: boolean;
    result?: Record<string, unknown>;
    error?: { code: string; message: string };
  }[];
}
interface TenantUser {
  name: string;
  roles: string[];
}
interface ShareRow {
  tenant: string;
  state: string;
  version: number | null;
}

let d: Deployment;
let analystKey: string;
let scopedAdminKey: string;

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'w1');
  await d.startAgent('w1');
  await d.createTenant('wa', 'w1', { labels: ['wc'] });
  await d.createTenant('wb', 'w1', { labels: ['wc'] });
  await d.createTenant('wz', 'w1', { labels: ['other'] });
  for (const t of ['wa', 'wb', 'wz']) await tenantAnswering(d, t);
  analystKey = await d.createKey((await d.createUser({ name: 'ana', roles: ['analyst'] })).id);
  // An admin limited to one tenant: staff scoped to some tenants never hold commands:write.
  scopedAdminKey = await d.createKey((await d.createUser({ name: 'sam', roles: ['admin'], tenants: ['wa'] })).id);
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

const run = (command: string, args: unknown, where: Record<string, unknown>, key?: string) =>
  d.api<Results & ErrorBody>('POST', '/commands', { command, args, ...where }, { key });
const users = async (tenant: string): Promise<TenantUser[]> => {
  const r = await d.api<TenantUser[]>('GET', `/tenants/${tenant}/api/users`);
  expect(r.status, r.raw).toBe(200);
  return r.body;
};
const userNames = async (tenant: string) => (await users(tenant)).map((u) => u.name).sort();
const roleNames = async (tenant: string) => {
  const r = await d.api<{ name: string; source: string }[]>('GET', `/tenants/${tenant}/api/roles`);
  return r.body.filter((x) => x.source === 'tenant').map((x) => x.name);
};
const byTenant = (r: Results) => Object.fromEntries(r.results.map((x) => [x.tenant, x]));
const createItem = async (type: string, name: string, body: string): Promise<string> => {
  const c = await d.api<{ id: string }>('POST', '/content', { type, name, body, labels: ['nobody'] });
  expect(c.status, c.raw).toBe(201);
  expect((await d.api('POST', `/content/${c.body.id}/publish`)).status).toBe(200);
  return c.body.id;
};
const shareRows = async (id: string): Promise<Record<string, ShareRow>> => {
  const s = await d.api<{ tenants: ShareRow[] }>('GET', `/content/${id}/status`);
  return Object.fromEntries(s.body.tenants.map((t) => [t.tenant, t]));
};

describe('write commands across tenants', () => {
  it('refuses a key without commands:write with 403 naming it, and nothing changes in any tenant', async () => {
    const list = await createItem('list', 'denied-list', 'a.example');
    for (const key of [analystKey, scopedAdminKey]) {
      const sync = await run('users:sync', { users: [{ name: 'mallory', roles: ['admin'] }] }, { labels: ['wc'] }, key);
      expect(sync.status, sync.raw).toBe(403);
      expect(sync.body.error.code).toBe('ERR_FORBIDDEN');
      expect(sync.body.error.message).toContain('"commands:write"');
      const roles = await run('roles:sync', { roles: [{ name: 'evil', permissions: [] }] }, { tenants: ['wa'] }, key);
      expect(roles.status).toBe(403);
      const share = await run('list:share', { id: list }, { tenants: ['wa', 'wb', 'wz'] }, key);
      expect(share.status).toBe(403);
    }
    for (const t of ['wa', 'wb', 'wz']) {
      expect(await userNames(t)).not.toContain('mallory');
      expect(await roleNames(t)).not.toContain('evil');
    }
    expect(Object.values(await shareRows(list)).map((r) => r.state)).toEqual([
      'not-shared',
      'not-shared',
      'not-shared',
    ]);
    // The analyst still runs read-only commands.
    expect((await run('incidents.count', {}, { tenants: ['wa'] }, analystKey)).status).toBe(200);
  });

  it('roles:sync then users:sync create in each chosen tenant, then report updated and unchanged', async () => {
    const roles = await run(
      'roles:sync',
      { roles: [{ name: 'soc-lead', permissions: ['incidents:read', 'incidents:write'], description: 'leads' }] },
      { labels: ['wc'] },
    );
    expect(roles.status, roles.raw).toBe(200);
    expect(roles.body.results).toEqual([
      { tenant: 'wa', ok: true, result: { created: ['soc-lead'], updated: [], unchanged: [] } },
      { tenant: 'wb', ok: true, result: { created: ['soc-lead'], updated: [], unchanged: [] } },
    ]);
    const first = await run(
      'users:sync',
      {
        users: [
          { name: 'alice', roles: ['soc-lead'] },
          { name: 'bob', roles: ['read-only'] },
        ],
      },
      { labels: ['wc'] },
    );
    expect(first.status, first.raw).toBe(200);
    for (const t of ['wa', 'wb']) {
      expect(byTenant(first.body)[t]).toEqual({
        tenant: t,
        ok: true,
        result: { created: ['alice', 'bob'], updated: [], unchanged: [] },
      });
      // Each tenant's own API holds them, with their roles.
      const held = await users(t);
      expect(held.find((u) => u.name === 'alice')?.roles).toEqual(['soc-lead']);
      expect(held.find((u) => u.name === 'bob')?.roles).toEqual(['read-only']);
    }
    expect(await userNames('wz')).not.toContain('alice');
    const again = await run(
      'users:sync',
      {
        users: [
          { name: 'alice', roles: ['soc-lead'] },
          { name: 'bob', roles: ['read-write'] },
        ],
      },
      { tenants: ['wa', 'wb'] },
    );
    expect(byTenant(again.body).wa!.result).toEqual({ created: [], updated: ['bob'], unchanged: ['alice'] });
    expect((await users('wb')).find((u) => u.name === 'bob')?.roles).toEqual(['read-write']);
    // A synced user is a real user of its tenant: it gets a tenant key that works there.
    const bob = (await users('wa')).find((u) => u.name === 'bob') as TenantUser & { id: string };
    const key = await d.createKey(bob.id, '/tenants/wa/api/apikeys');
    expect((await d.api('GET', '/tenants/wa/api/incidents', undefined, { key })).status).toBe(200);
    // The write is audited on main with its caller and tenants.
    const audit = await d.api<{ actor: string; action: string; target: string; detail: { tenants: string[] } }[]>(
      'GET',
      '/audit?action=commands.write&limit=1000',
    );
    const line = audit.body.find((a) => a.target === 'users:sync');
    expect(line?.detail.tenants).toEqual(['wa', 'wb']);
    expect(line?.actor).toMatch(/^usr_/);
  });

  it('a stopped tenant reports its own error while the other succeeds', async () => {
    expect((await d.api('POST', '/tenants/wb/stop', {})).status).toBe(200);
    try {
      const r = await run('users:sync', { users: [{ name: 'carol', roles: ['read-only'] }] }, { labels: ['wc'] });
      expect(r.status, r.raw).toBe(200);
      const got = byTenant(r.body);
      expect(got.wa).toEqual({ tenant: 'wa', ok: true, result: { created: ['carol'], updated: [], unchanged: [] } });
      expect(got.wb!.ok).toBe(false);
      expect(got.wb!.error!.code).toMatch(/^ERR_/);
      expect(await userNames('wa')).toContain('carol');
      const audit = await d.api<{ target: string; outcome: string }[]>('GET', '/audit?action=commands.write');
      expect(audit.body.filter((a) => a.target === 'users:sync').map((a) => a.outcome)).toContain('failed');
    } finally {
      expect((await d.api('POST', '/tenants/wb/start', {})).status).toBe(200);
      await tenantAnswering(d, 'wb');
    }
    expect(await userNames('wb')).not.toContain('carol');
  });

  it('list:share and playbook:publish leave the item shared to the chosen tenants on main', async () => {
    const list = await createItem('list', 'blocked-hosts', 'evil.example\nbad.example');
    const shared = await run('list:share', { id: 'blocked-hosts' }, { tenants: ['wa', 'wz'] });
    expect(shared.status, shared.raw).toBe(200);
    expect(shared.body.results).toEqual([
      { tenant: 'wa', ok: true, result: { item: list, state: 'shared', version: 1 } },
      { tenant: 'wz', ok: true, result: { item: list, state: 'shared', version: 1 } },
    ]);
    const rows = await shareRows(list);
    expect(rows.wa).toMatchObject({ state: 'shared', version: 1 });
    expect(rows.wz).toMatchObject({ state: 'shared', version: 1 });
    expect(rows.wb!.state).toBe('not-shared');
    const held = await d.api<{ id: string; shared: boolean }[]>('GET', '/tenants/wz/api/content');
    expect(held.body.find((i) => i.id === list)).toMatchObject({ shared: true });

    const playbook = await createItem(
      'playbook',
      'wc-triage',
      'name: wc-triage\nstart: ask\ntasks:\n  ask: {type: manual, prompt: go}\n',
    );
    const published = await run('playbook:publish', { id: playbook }, { labels: ['wc'] });
    expect(published.status, published.raw).toBe(200);
    expect(published.body.results.map((x) => [x.tenant, x.ok])).toEqual([
      ['wa', true],
      ['wb', true],
    ]);
    const p = await shareRows(playbook);
    expect([p.wa!.state, p.wb!.state, p.wz!.state]).toEqual(['shared', 'shared', 'not-shared']);
    // A later share by the item's labels keeps the tenants it was shared to by name.
    expect((await d.api('POST', `/content/${list}/share`)).status).toBe(200);
    expect((await shareRows(list)).wz!.state).toBe('shared');
  });

  it('bad args are a 400 naming the field, and change nothing', async () => {
    const before = await userNames('wa');
    const cases: [string, unknown, string][] = [
      ['users:sync', { users: [{ name: 'dave' }] }, 'args.users[0].roles'],
      ['users:sync', { users: [] }, 'args.users'],
      [
        'users:sync',
        {
          users: [
            { name: 'dave', roles: ['read-only'] },
            { name: 'dave', roles: ['admin'] },
          ],
        },
        'args.users[1].name',
      ],
      [
        'roles:sync',
        { roles: [{ name: 'tunneller', permissions: ['tunnels:write'] }] },
        'args.roles[0].permissions[0]',
      ],
      ['list:share', {}, 'args.id'],
      ['users:sync', { users: [{ name: 'dave', roles: ['read-only'] }], extra: 1 }, 'args.extra'],
    ];
    for (const [command, args, field] of cases) {
      const r = await run(command, args, { tenants: ['wa'] });
      expect(r.status, `${command} ${JSON.stringify(args)}: ${r.raw}`).toBe(400);
      expect(r.body.error.message).toContain(field);
    }
    // An unknown permission names those a role may hold; an unknown command names every accepted form.
    const perm = await run('roles:sync', { roles: [{ name: 'r', permissions: ['incidents:read', 'nope'] }] }, {});
    expect(perm.body.error.message).toMatch(/^args\.roles\[0\]\.permissions\[1\] must be one of incidents:read, /);
    expect(perm.body.error.message).toContain('events:reveal');
    const command = await run('roles:sink', {}, { tenants: ['wa'] });
    expect(command.status).toBe(400);
    expect(command.body.error.message).toMatch(/^body\.command must be one of .*roles:sync.*; or integration:INSTANCE/);
    // A role is the tenant's to know (it may define its own): its 400 is that tenant's entry, the others go on.
    const unknown = await run(
      'users:sync',
      { users: [{ name: 'dave', roles: ['no-such-role'] }] },
      { tenants: ['wa'] },
    );
    expect(unknown.body.results[0]).toMatchObject({ tenant: 'wa', ok: false, error: { code: 'ERR_UNKNOWN_ROLE' } });
    expect(unknown.body.results[0]!.error!.message).toContain('users[0].roles');
    const playbook = (await d.api<{ id: string; type: string }[]>('GET', '/content')).body.find(
      (i) => i.type === 'playbook',
    )!;
    const wrong = await run('list:share', { id: playbook.id }, { tenants: ['wa'] });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toMatchObject({ code: 'ERR_COMMAND_ITEM_TYPE' });
    expect(wrong.body.error.message).toContain('args.id');
    const missing = await run('users:sync', { users: [{ name: 'dave', roles: ['read-only'] }] }, {});
    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toContain('tenants');
    expect(await userNames('wa')).toEqual(before);
  });

  it('the CLI runs a write command and answers --json with each tenant', async () => {
    const args = JSON.stringify({ users: [{ name: 'erin', roles: ['read-only'] }] });
    const c = await d.cli(['commands', 'run', 'users:sync', '--labels', 'wc', '--args', args, '--json']);
    expect(c.code, c.stdout + c.stderr).toBe(0);
    expect((c.json as Results).results).toEqual([
      { tenant: 'wa', ok: true, result: { created: ['erin'], updated: [], unchanged: [] } },
      { tenant: 'wb', ok: true, result: { created: ['erin'], updated: [], unchanged: [] } },
    ]);
    const denied = await d.cli(['commands', 'run', 'users:sync', '--labels', 'wc', '--args', args, '--json'], {
      PALISADE_API_KEY: analystKey,
    });
    expect(denied.code).not.toBe(0);
    expect((denied.json as ErrorBody).error.message).toContain('commands:write');
  });
});
