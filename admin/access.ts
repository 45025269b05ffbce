/**
 * CLI verbs for users, API keys and roles: on main by default, or inside one tenant with `--in-tenant T`
 * (customer users and keys that work for that tenant only, through main's relay).
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';
import { registerCredentialCommands } from './credentials.js';

type Scoped = Common & { inTenant?: string };
const at = (o: Scoped, path: string) => (o.inTenant ? `/tenants/${encodeURIComponent(o.inTenant)}/api${path}` : path);
const list = (v?: string) =>
  v
    ? v
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)
    : undefined;
const IN_TENANT = ['--in-tenant <tenant>', "on that tenant's own users and keys instead of main's"] as const;

export function registerAccessCommands(program: Command): void {
  const users = program.command('users').description('users on main (MSSP staff, customer users) or inside a tenant');
  withClientOptions(
    users
      .command('create <name>')
      .description('create a user; --tenant makes a customer user of that tenant, --tenants limits MSSP staff'),
  )
    .requiredOption(
      '--roles <a,b>',
      "main: admin, analyst, viewer; customer/tenant: admin, read-write, read-only; or custom roles ('palisade roles')",
    )
    .option('--tenant <tenant>', 'a customer user belonging to this tenant only')
    .option('--tenants <a,b>', 'MSSP staff limited to these tenants')
    .option('--profile <profile>', "a customer user's security profile: it sees only that profile's domains")
    .option(...IN_TENANT)
    .action((name: string, o: Scoped & { roles: string; tenant?: string; tenants?: string; profile?: string }) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<{ id: string; name: string; roles: string[] }>('POST', at(o, '/users'), {
          name,
          roles: list(o.roles),
          ...(o.tenant ? { tenant: o.tenant } : {}),
          ...(o.tenants !== undefined ? { tenants: list(o.tenants) ?? [] } : {}),
          ...(o.profile !== undefined ? { profile: o.profile } : {}),
        });
        printResult(
          r,
          o,
          () =>
            `user ${r.name} (${r.id}) created with roles ${r.roles.join(', ')}${o.inTenant ? ` in tenant ${o.inTenant}` : ''}`,
        );
      }),
    );
  withClientOptions(users.command('list').description('list users'))
    .option(...IN_TENANT)
    .action((o: Scoped) =>
      runAction(o, async () => {
        const rows = await adminClient(o).request<Record<string, unknown>[]>('GET', at(o, '/users'));
        printResult(rows, o, () =>
          table(
            rows.map((r) => ({
              ...r,
              roles: (r.roles as string[]).join(','),
              tenants: Array.isArray(r.tenants) ? (r.tenants as string[]).join(',') : r.tenants,
            })),
            // Console sign-in is main's: a tenant's own users have neither column.
            ['id', 'name', 'roles', 'tenant', 'tenants', 'disabled', ...(o.inTenant ? [] : ['password', 'totp'])],
          ),
        );
      }),
    );
  withClientOptions(
    users.command('remove <user>').description('disable a user on main and revoke all its keys'),
  ).action((ref: string, o: Common) =>
    runAction(o, async () => {
      const r = await adminClient(o).request<{ user: { name: string }; revokedKeys: string[] }>(
        'DELETE',
        `/users/${encodeURIComponent(ref)}`,
      );
      printResult(r, o, () => `user ${r.user.name} removed; ${r.revokedKeys.length} key(s) revoked`);
    }),
  );

  registerCredentialCommands(users);

  const keys = program.command('apikeys').description('API keys (shown once, stored hashed)');
  withClientOptions(keys.command('create').description('create a key for a user; printed once'))
    .requiredOption('--user <user>', 'user id or name')
    .option(...IN_TENANT)
    .action((o: Scoped & { user: string }) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<{ id: string; key: string }>('POST', at(o, '/apikeys'), {
          user: o.user,
        });
        printResult(r, o, () => [
          r.key,
          `(key ${r.id}: shown once, store it now${o.inTenant ? `; works for tenant ${o.inTenant} only` : ''})`,
        ]);
      }),
    );
  withClientOptions(keys.command('list').description('list keys (never their secrets)'))
    .option(...IN_TENANT)
    .action((o: Scoped) =>
      runAction(o, async () => {
        const rows = await adminClient(o).request<Record<string, unknown>[]>('GET', at(o, '/apikeys'));
        printResult(rows, o, () => table(rows, ['id', 'user', 'userName', 'createdAt', 'lastUsedAt', 'revokedAt']));
      }),
    );
  withClientOptions(keys.command('revoke <id>').description('revoke a key: it stops working at once'))
    .option(...IN_TENANT)
    .action((id: string, o: Scoped) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<{ id: string }>('DELETE', at(o, `/apikeys/${encodeURIComponent(id)}`));
        printResult(r, o, () => `key ${r.id} revoked`);
      }),
    );

  registerRoleCommands(program);
}

interface RoleRow {
  name: string;
  source: string;
  for: string;
  permissions: string[];
  mainPermissions?: string[];
  id?: string;
  published?: number | null;
  labels?: string[];
  sharedVersion?: number | null;
  shadowed?: boolean;
}
type RoleOpts = Scoped & { tenant?: string };
/** `roles … --tenant T` (or --in-tenant T, as for users and keys) works on that tenant's roles. */
const roleTenant = <T extends RoleOpts>(o: T): T => ({ ...o, inTenant: o.inTenant ?? o.tenant });
const TENANT_OPT = [
  '--tenant <tenant>',
  "that tenant's roles (built-in, shared by main, its own) instead of main's",
] as const;

function roleTable(rows: RoleRow[], inTenant: boolean): string[] {
  return table(
    rows.map((r) => ({
      ...r,
      permissions: r.permissions.join(',') || '-',
      mainPermissions: (r.mainPermissions ?? []).join(',') || '-',
      shared: r.sharedVersion ? `v${r.sharedVersion} → ${(r.labels ?? []).join(',')}` : r.shadowed ? 'shadowed' : '',
    })),
    inTenant
      ? ['name', 'source', 'for', 'permissions', 'shared']
      : ['name', 'source', 'for', 'mainPermissions', 'permissions', 'shared'],
  );
}

function registerRoleCommands(program: Command): void {
  const roles = program
    .command('roles')
    .description(
      'roles and their permissions: built-in, custom (main, shared to tenants by label) and tenant-only (--tenant T)',
    );
  withClientOptions(
    roles.command('list', { isDefault: true }).description('list roles with what they grant (the default verb)'),
  )
    .option(...TENANT_OPT)
    .option(...IN_TENANT)
    .action((raw: RoleOpts) =>
      runAction(raw, async () => {
        const o = roleTenant(raw);
        if (o.inTenant) {
          const rows = await adminClient(o).request<RoleRow[]>('GET', at(o, '/roles'));
          return printResult(rows, o, () => roleTable(rows, true));
        }
        const r = await adminClient(o).request<{ roles: RoleRow[] }>('GET', '/roles');
        printResult(r, o, () => roleTable(r.roles, false));
      }),
    );
  withClientOptions(
    roles
      .command('create <name>')
      .description(
        'define a role: on main (a published content item of type role; --share pushes it to tenants with --labels) or, with --tenant, for that tenant only',
      ),
  )
    .requiredOption('--permissions <a,b>', 'tenant permissions, e.g. incidents:read,incidents:write ("" for none)')
    .option(
      '--main-permissions <a,b>',
      'main permissions for staff holding it (main roles only; never users:write or roles:write)',
    )
    .option('--description <text>', 'what the role is for')
    .option('--labels <a,b>', 'propagation labels (main roles; `all` for every tenant)')
    .option('--share', 'share it to the tenants matching --labels right away (main roles)')
    .option(...TENANT_OPT)
    .option(...IN_TENANT)
    .action(
      (
        name: string,
        raw: RoleOpts & {
          permissions: string;
          mainPermissions?: string;
          description?: string;
          labels?: string;
          share?: boolean;
        },
      ) =>
        runAction(raw, async () => {
          const o = roleTenant(raw);
          const base = {
            name,
            permissions: list(o.permissions) ?? [],
            ...(o.description !== undefined ? { description: o.description } : {}),
          };
          if (o.inTenant) {
            const misplaced = (['mainPermissions', 'labels', 'share'] as const).find((k) => o[k] !== undefined);
            if (misplaced)
              throw new BadParameterError(
                'ERR_CLI_TENANT_ROLE',
                `--${misplaced.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} is for roles on main; a tenant role stays in its tenant`,
                { field: misplaced },
              );
            const r = await adminClient(o).request<{ name: string; permissions: string[] }>(
              'POST',
              at(o, '/roles'),
              base,
            );
            return printResult(
              r,
              o,
              () => `role ${r.name} created in tenant ${o.inTenant}: ${r.permissions.join(', ') || '(no permissions)'}`,
            );
          }
          const client = adminClient(o);
          const r = await client.request<RoleRow>('POST', '/roles', {
            ...base,
            ...(o.mainPermissions !== undefined ? { mainPermissions: list(o.mainPermissions) ?? [] } : {}),
            labels: list(o.labels) ?? [],
          });
          const status = o.share
            ? await client.request<{ rollup: string }>('POST', `/content/${encodeURIComponent(r.id ?? '')}/share`)
            : undefined;
          printResult(
            status ? { ...r, share: status } : r,
            o,
            () =>
              `role ${r.name} created (${r.id}, published v${r.published})${status ? `; shared: ${status.rollup}` : r.labels?.length ? `; share it with 'palisade content share ${r.id}'` : ''}`,
          );
        }),
    );
  withClientOptions(
    roles
      .command('delete <name>')
      .description('delete a custom role (main: unshare it first; refused while a user holds it)'),
  )
    .option(...TENANT_OPT)
    .option(...IN_TENANT)
    .action((name: string, raw: RoleOpts) =>
      runAction(raw, async () => {
        const o = roleTenant(raw);
        const r = await adminClient(o).request<{ name: string }>('DELETE', at(o, `/roles/${encodeURIComponent(name)}`));
        printResult(r, o, () => `role ${r.name} deleted${o.inTenant ? ` from tenant ${o.inTenant}` : ''}`);
      }),
    );
}
