/**
 * CLI verbs for users, API keys and roles: on main by default, or inside one tenant with `--in-tenant T`
 * (customer users and keys that work for that tenant only, through main's relay).
 */
import type { Command } from 'commander';
import { adminClient } from '#common/admin-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { withClientOptions, type Common } from './cli.js';

type Scoped = Common & { inTenant?: string };
const at = (o: Scoped, path: string) => (o.inTenant ? `/tenants/${encodeURIComponent(o.inTenant)}/api${path}` : path);
const list = (v?: string) => (v ? v.split(',').map((x) => x.trim()).filter(Boolean) : undefined);
const IN_TENANT = ['--in-tenant <tenant>', "on that tenant's own users and keys instead of main's"] as const;

export function registerAccessCommands(program: Command): void {
  const users = program.command('users').description('users on main (MSSP staff, customer users) or inside a tenant');
  withClientOptions(users.command('create <name>').description('create a user; --tenant makes a customer user of that tenant, --tenants limits MSSP staff'))
    .requiredOption('--roles <a,b>', 'main: admin, analyst, viewer; customer/tenant: admin, read-write, read-only')
    .option('--tenant <tenant>', 'a customer user belonging to this tenant only')
    .option('--tenants <a,b>', 'MSSP staff limited to these tenants')
    .option(...IN_TENANT)
    .action((name: string, o: Scoped & { roles: string; tenant?: string; tenants?: string }) => runAction(o, async () => {
      const r = await adminClient(o).request<{ id: string; name: string; roles: string[] }>('POST', at(o, '/users'), {
        name, roles: list(o.roles), ...(o.tenant ? { tenant: o.tenant } : {}), ...(o.tenants !== undefined ? { tenants: list(o.tenants) ?? [] } : {}),
      });
      printResult(r, o, () => `user ${r.name} (${r.id}) created with roles ${r.roles.join(', ')}${o.inTenant ? ` in tenant ${o.inTenant}` : ''}`);
    }));
  withClientOptions(users.command('list').description('list users'))
    .option(...IN_TENANT)
    .action((o: Scoped) => runAction(o, async () => {
      const rows = await adminClient(o).request<Record<string, unknown>[]>('GET', at(o, '/users'));
      printResult(rows, o, () => table(rows.map((r) => ({ ...r, roles: (r.roles as string[]).join(','), tenants: Array.isArray(r.tenants) ? (r.tenants as string[]).join(',') : r.tenants })), ['id', 'name', 'roles', 'tenant', 'tenants', 'disabled']));
    }));
  withClientOptions(users.command('remove <user>').description('disable a user on main and revoke all its keys'))
    .action((ref: string, o: Common) => runAction(o, async () => {
      const r = await adminClient(o).request<{ user: { name: string }; revokedKeys: string[] }>('DELETE', `/users/${encodeURIComponent(ref)}`);
      printResult(r, o, () => `user ${r.user.name} removed; ${r.revokedKeys.length} key(s) revoked`);
    }));

  const keys = program.command('apikeys').description('API keys (shown once, stored hashed)');
  withClientOptions(keys.command('create').description('create a key for a user; printed once'))
    .requiredOption('--user <user>', 'user id or name')
    .option(...IN_TENANT)
    .action((o: Scoped & { user: string }) => runAction(o, async () => {
      const r = await adminClient(o).request<{ id: string; key: string }>('POST', at(o, '/apikeys'), { user: o.user });
      printResult(r, o, () => `${r.key}\n(key ${r.id}: shown once, store it now${o.inTenant ? `; works for tenant ${o.inTenant} only` : ''})`);
    }));
  withClientOptions(keys.command('list').description('list keys (never their secrets)'))
    .option(...IN_TENANT)
    .action((o: Scoped) => runAction(o, async () => {
      const rows = await adminClient(o).request<Record<string, unknown>[]>('GET', at(o, '/apikeys'));
      printResult(rows, o, () => table(rows, ['id', 'user', 'userName', 'createdAt', 'lastUsedAt', 'revokedAt']));
    }));
  withClientOptions(keys.command('revoke <id>').description('revoke a key: it stops working at once'))
    .option(...IN_TENANT)
    .action((id: string, o: Scoped) => runAction(o, async () => {
      const r = await adminClient(o).request<{ id: string }>('DELETE', at(o, `/apikeys/${encodeURIComponent(id)}`));
      printResult(r, o, () => `key ${r.id} revoked`);
    }));

  withClientOptions(program.command('roles').description("main's roles and their permissions; the customer roles"))
    .action((o: Common) => runAction(o, async () => {
      const r = await adminClient(o).request<{ main: Record<string, string[]>; customer: string[] }>('GET', '/roles');
      printResult(r, o, () => `${Object.entries(r.main).map(([n, p]) => `${n}: ${p.join(', ')}`).join('\n')}\ncustomer roles (inside one tenant): ${r.customer.join(', ')}`);
    }));
}
