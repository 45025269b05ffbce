/**
 * What main and a tenant agree on about roles (docs/access.md): the permission names of
 * each side, the built-in roles, the ceiling of what a customer user may ever hold, and the body of a
 * custom role (a content item of type `role` on main, pushed to tenants by content propagation).
 * Not the resolution of a caller's roles: main does that in main/access/api-keys.ts, a tenant in its guard.
 *
 * A custom role body is JSON: `{"permissions": [tenant permissions], "mainPermissions"?: [main
 * permissions], "description"?: "…"}`. `permissions` apply inside every tenant the role reaches;
 * `mainPermissions` apply on main to staff holding the role.
 */
import { BadParameterError } from './errors.js';

export const MAIN_PERMISSIONS = [
  'installers:create',
  'installers:read',
  'installers:revoke',
  'agents:read',
  'agents:write',
  'commands:run',
  'commands:read',
  'audit:read',
  'tenants:read',
  'tenants:write',
  'tenants:relay',
  'users:read',
  'users:write',
  'roles:write',
  'content:read',
  'content:write',
  'content:share',
  'search:read',
  'commands:fanout',
  'commands:write',
  'metrics:read',
] as const;
export type MainPermission = (typeof MAIN_PERMISSIONS)[number];

/**
 * What a custom role may grant on main: everything built-in admin has except deciding who may do what.
 * `users:write` mints users of any role and `roles:write` edits roles (its holder's own included): either
 * would let a custom role climb to admin, so both stay with built-in admins; so does `commands:write`, which
 * writes users and roles into many tenants at once (common/write-commands.ts).
 */
export const CUSTOM_MAIN_PERMISSIONS: readonly MainPermission[] = MAIN_PERMISSIONS.filter(
  (p) => p !== 'users:write' && p !== 'roles:write' && p !== 'commands:write',
);

export const TENANT_PERMISSIONS = [
  'incidents:read',
  'incidents:write',
  'tenant:read',
  'tunnels:write',
  'engines:run',
  'users:read',
  'users:write',
  'content:read',
  'content:write',
  'audit:read',
  'connections:read',
  'connections:write',
  'integrations:read',
  'integrations:run',
  'integrations:write',
  'scripts:run',
  'playbooks:read',
  'playbooks:run',
  'playbooks:write',
  'sites:write',
  'events:read',
  'events:write',
  /** Opening obfuscated event values with a rule's key (docs/events.md#obfuscation). */
  'events:reveal',
] as const;
export type TenantPermission = (typeof TENANT_PERMISSIONS)[number];

/** Built-in roles of MSSP staff inside a tenant (main users without a tenant), as main's claim names them. */
export const STAFF_TENANT_ROLES: Readonly<Record<string, readonly TenantPermission[]>> = Object.freeze({
  admin: [...TENANT_PERMISSIONS],
  analyst: [
    'incidents:read',
    'incidents:write',
    'tenant:read',
    'tunnels:write',
    'engines:run',
    'content:read',
    'content:write',
    'connections:read',
    'integrations:read',
    'integrations:run',
    'scripts:run',
    'playbooks:read',
    'playbooks:run',
    'events:read',
  ],
  'read-write': ['incidents:read', 'incidents:write', 'tenant:read', 'content:read', 'content:write', 'events:read'],
  'read-only': ['incidents:read', 'tenant:read', 'content:read', 'events:read'],
  viewer: ['incidents:read', 'tenant:read', 'content:read', 'events:read'],
});

/**
 * Built-in roles of the customer's own people (users of one tenant, created on main or on the tenant,
 * and their keys). A customer admin manages its users and data, but tunnels and engine commands reach
 * into networks and the MSSP host, and the audit log names MSSP staff and their addresses.
 */
export const CUSTOMER_TENANT_ROLES: Readonly<Record<string, readonly TenantPermission[]>> = Object.freeze({
  admin: [
    'incidents:read',
    'incidents:write',
    'tenant:read',
    'users:read',
    'users:write',
    'content:read',
    'content:write',
    'connections:read',
    'connections:write',
    'integrations:read',
    'integrations:run',
    'integrations:write',
    'scripts:run',
    'playbooks:read',
    'playbooks:run',
    'playbooks:write',
    'sites:write',
    'events:read',
    'events:write',
    'events:reveal',
  ],
  'read-write': ['incidents:read', 'incidents:write', 'tenant:read', 'content:read', 'content:write', 'events:read'],
  'read-only': ['incidents:read', 'tenant:read', 'content:read', 'events:read'],
});

/** The most a customer user may hold in its tenant, whatever its roles (custom ones included) say. */
export const CUSTOMER_CEILING: ReadonlySet<TenantPermission> = new Set(CUSTOMER_TENANT_ROLES.admin);

/** Role names: what `POST /users {"roles"}` accepts on main and on a tenant. */
export const ROLE_NAME_PATTERN = '^[a-z][a-z0-9-]{0,31}$';
const ROLE_NAME_RE = new RegExp(ROLE_NAME_PATTERN);

/** Names no custom role may take, on main or on a tenant: they would shadow (or be shadowed by) a built-in. */
export const BUILT_IN_ROLE_NAMES: ReadonlySet<string> = new Set([
  'admin',
  'analyst',
  'viewer',
  'read-write',
  'read-only',
]);

export interface RoleBody {
  permissions: TenantPermission[];
  mainPermissions: MainPermission[];
  description?: string;
}

/** Checks a custom role's name: the pattern, and not a built-in. `field` names it in the 400. */
export function checkRoleName(name: string, field = 'name'): void {
  if (!ROLE_NAME_RE.test(name))
    throw new BadParameterError(
      'ERR_BAD_NAME',
      `${field}: a role name is lower-case letters, digits and '-', starting with a letter, at most 32 characters`,
      { field },
    );
  if (BUILT_IN_ROLE_NAMES.has(name))
    throw new BadParameterError('ERR_ROLE_BUILT_IN', `${field}: "${name}" is a built-in role; pick another name`, {
      field,
    });
}

/** Checks a list of permission names against `allowed`; the 400 names the field and the first bad entry. */
export function checkPermissions<P extends string>(
  v: unknown,
  allowed: readonly P[],
  field: string,
  what: string,
): P[] {
  if (!Array.isArray(v))
    throw new BadParameterError('ERR_ROLE_BODY', `${field}: must be an array of ${what}`, { field });
  if (v.length > allowed.length)
    throw new BadParameterError('ERR_ROLE_BODY', `${field}: at most ${allowed.length} entries`, { field });
  for (const p of v) {
    if (typeof p !== 'string' || !(allowed as readonly string[]).includes(p)) {
      throw new BadParameterError(
        'ERR_ROLE_PERMISSION',
        `${field}: ${JSON.stringify(p).slice(0, 80)} is not one of the ${what} (${allowed.join(', ')})`,
        { field },
      );
    }
  }
  return [...new Set(v as P[])];
}

/** Parses and checks a custom role body (JSON text) as main accepts it; errors name `body.<field>`. */
export function parseRoleBody(text: string): RoleBody {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new BadParameterError(
      'ERR_ROLE_BODY',
      'body: a role is JSON: {"permissions": [tenant permissions], "mainPermissions"?: [main permissions], "description"?: "…"}',
      { field: 'body' },
    );
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new BadParameterError('ERR_ROLE_BODY', 'body: a role is a JSON object with "permissions"', { field: 'body' });
  const o = raw as Record<string, unknown>;
  const extra = Object.keys(o).find((k) => !['permissions', 'mainPermissions', 'description'].includes(k));
  if (extra !== undefined)
    throw new BadParameterError(
      'ERR_ROLE_BODY',
      `body.${extra.slice(0, 40)}: is not a known field (permissions, mainPermissions, description)`,
      { field: `body.${extra}` },
    );
  if (o.permissions === undefined)
    throw new BadParameterError(
      'ERR_ROLE_BODY',
      'body.permissions: is required (an array of tenant permissions, may be empty)',
      { field: 'body.permissions' },
    );
  const permissions = checkPermissions(o.permissions, TENANT_PERMISSIONS, 'body.permissions', 'tenant permissions');
  const mainPermissions =
    o.mainPermissions === undefined
      ? []
      : checkPermissions(
          o.mainPermissions,
          CUSTOM_MAIN_PERMISSIONS,
          'body.mainPermissions',
          'main permissions a custom role may grant',
        );
  if (o.description !== undefined && (typeof o.description !== 'string' || o.description.length > 500)) {
    throw new BadParameterError('ERR_ROLE_BODY', 'body.description: must be a string of at most 500 characters', {
      field: 'body.description',
    });
  }
  return { permissions, mainPermissions, ...(typeof o.description === 'string' ? { description: o.description } : {}) };
}

/**
 * A tenant reads a pushed role body leniently: main checked it, but a body from a newer main may name a
 * permission this tenant does not know yet, and it must not lose the role over it (unknown names grant nothing).
 */
export function tenantPermissionsOf(text: string): TenantPermission[] {
  try {
    const p = (JSON.parse(text) as { permissions?: unknown }).permissions;
    return Array.isArray(p)
      ? p.filter((x): x is TenantPermission => (TENANT_PERMISSIONS as readonly unknown[]).includes(x))
      : [];
  } catch {
    return [];
  }
}
