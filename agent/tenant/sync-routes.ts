/**
 * The tenant's half of main's `users:sync` and `roles:sync` write commands (common/write-commands.ts): main relays
 * the args as the caller, and the tenant checks them again as it checks its own users and roles routes (the same
 * schema, roles it knows, never more than the caller holds here, never beyond the customer ceiling). Each sync is
 * all or nothing: every entry is checked before one batch writes them. Not the users or roles themselves
 * (access-store.ts, role-store.ts), nor the one-at-a-time routes (access-routes.ts, role-routes.ts).
 */
import type { FastifyInstance } from 'fastify';
import { BadParameterError } from '#common/errors.js';
import { checkRoleName, type TenantPermission } from '#common/roles.js';
import { repeatedName, WRITE_COMMANDS, type SyncRole, type SyncUser } from '#common/write-commands.js';
import type { AccessStore } from './access-store.js';
import type { RoleStore } from './role-store.js';
import { checkGrantable } from './role-routes.js';

function noRepeats(entries: readonly { name: string }[], field: string): void {
  const at = repeatedName(entries, field);
  if (at) throw new BadParameterError('ERR_BAD_REQUEST', `${at}: a name may be listed once`, { field: at });
}

export function registerSyncRoutes(app: FastifyInstance, access: AccessStore, roles: RoleStore): void {
  app.post(
    WRITE_COMMANDS['users:sync'].path,
    { config: { tenantPermission: 'users:write' }, schema: { body: WRITE_COMMANDS['users:sync'].args } },
    async (req) => {
      const { users } = req.body as { users: SyncUser[] };
      noRepeats(users, 'users');
      for (const [i, u] of users.entries()) {
        const unknown = u.roles.find((r) => !roles.knownToCustomers(r));
        if (unknown !== undefined)
          throw new BadParameterError(
            'ERR_UNKNOWN_ROLE',
            `users[${i}].roles: "${unknown}" is not a role of this tenant; sync it first (roles:sync) or use a built-in`,
            { field: `users[${i}].roles` },
          );
      }
      const granted = roles.permissionsOf({ roles: users.flatMap((u) => u.roles), tenant: '' });
      checkGrantable(req, granted, 'users:sync');
      const out = await access.syncUsers(users, req.caller?.id ?? '');
      req.auditAs = { action: 'users.sync', target: 'users', detail: { ...out } };
      return out;
    },
  );

  app.post(
    WRITE_COMMANDS['roles:sync'].path,
    { config: { tenantPermission: 'users:write' }, schema: { body: WRITE_COMMANDS['roles:sync'].args } },
    async (req) => {
      const body = req.body as { roles: SyncRole[] };
      noRepeats(body.roles, 'roles');
      for (const [i, r] of body.roles.entries()) checkRoleName(r.name, `roles[${i}].name`);
      const list = body.roles.map((r) => ({ ...r, permissions: r.permissions as TenantPermission[] }));
      checkGrantable(
        req,
        list.flatMap((r) => r.permissions),
        'roles:sync',
      );
      const out = await roles.sync(list, req.caller?.id ?? '');
      req.auditAs = { action: 'roles.sync', target: 'roles', detail: { ...out } };
      return out;
    },
  );
}
