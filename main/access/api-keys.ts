/**
 * Users and API keys on main. A key is `pal_<id>.<secret>`; main stores sha256(secret) and compares in
 * constant time. Roles map to permission sets; `admin` holds every permission.
 */
import { randomBytes } from 'node:crypto';
import { hashSecret, newSecret, parseSecret, parseTenantKey, secretMatches } from '#common/secrets.js';
import type { CallerIdentity } from '#common/signed-request.js';
import { UnauthenticatedError } from '#common/errors.js';
import { CUSTOM_MAIN_PERMISSIONS, MAIN_PERMISSIONS, type MainPermission } from '#common/roles.js';
import type { Registry, UserRecord } from '../registry.js';

export const API_KEY_PREFIX = 'pal';

export type Permission = MainPermission;

/**
 * Main's built-in roles for MSSP staff (custom roles are in roles.ts). A customer user (one with `tenant`
 * set) gets none of these on main whatever its roles say: its roles are for its tenant, and on main it
 * may only use that tenant's relay.
 */
export const ROLE_PERMISSIONS: Readonly<Record<string, readonly Permission[]>> = Object.freeze({
  admin: [...MAIN_PERMISSIONS],
  analyst: [
    'agents:read',
    'commands:read',
    'tenants:read',
    'tenants:relay',
    'content:read',
    'search:read',
    'commands:fanout',
    'metrics:read',
  ],
  viewer: [
    'agents:read',
    'commands:read',
    'tenants:read',
    'tenants:relay',
    'content:read',
    'search:read',
    'metrics:read',
  ],
});
/** Roles a customer user may hold; they mean something only inside its tenant. */
export const CUSTOMER_ROLES = ['admin', 'read-write', 'read-only'] as const;
// The relay into their tenant, and main's search over it: the tenant answers with their identity, so their role and
// security profile limit what it returns there (search is scoped to the tenants a caller may reach: theirs).
const CUSTOMER_PERMISSIONS: readonly Permission[] = ['tenants:relay', 'search:read'];

/** Which tenants a caller may reach: every tenant, or a fixed set. */
export type TenantScope = { all: true } | { all: false; tenants: ReadonlySet<string> };

export interface Principal {
  user: UserRecord;
  /** Main's key id, or the tenant key's id for a tenant-created key. */
  keyId: string;
  permissions: ReadonlySet<Permission>;
  scope: TenantScope;
  /** The caller's address as main sees it; travels to tenants for their audit logs. */
  from?: string;
  /** Set for a key created on a tenant: main cannot check it, the tenant does (see CallerIdentity.key). */
  tenantKey?: { tenant: string; id: string; sha256: string };
  /** Set when the caller came with a console session cookie (sessions.ts): its sha256 and CSRF token. */
  session?: { key: string; csrfToken: string; expiresAt: string };
}

export function mayReach(p: Principal, tenant: string): boolean {
  return p.scope.all || p.scope.tenants.has(tenant);
}

/** The identity main signs into a relayed request for this principal. */
export function callerIdentity(p: Principal): CallerIdentity {
  const from = p.from ? { from: p.from } : {};
  if (p.tenantKey)
    return {
      id: `key:${p.tenantKey.id}`,
      name: '',
      roles: [],
      key: { id: p.tenantKey.id, sha256: p.tenantKey.sha256 },
      ...from,
    };
  return {
    id: p.user.id,
    name: p.user.name,
    roles: p.user.roles,
    ...(p.user.tenant ? { tenant: p.user.tenant } : {}),
    ...(p.user.profile ? { profile: p.user.profile } : {}),
    ...from,
  };
}

/**
 * What staff limited to some tenants keep of their roles: work inside those tenants only. Anything that
 * acts on main as a whole (users, keys, installers, agents, audit, tenant lifecycle, the content library
 * with its per-tenant status, sharing) would let them see or reach beyond their tenants: unlimited users only.
 */
const SCOPED_PERMISSIONS: ReadonlySet<Permission> = new Set([
  'tenants:read',
  'tenants:relay',
  'search:read',
  'commands:fanout',
]);

/** The main permissions of a custom role by name (its published version), or undefined for no such role. */
export type CustomRoleLookup = (name: string) => readonly Permission[] | undefined;
const CUSTOM_ALLOWED: ReadonlySet<Permission> = new Set(CUSTOM_MAIN_PERMISSIONS);

export function principalFor(user: UserRecord, keyId: string, custom?: CustomRoleLookup): Principal {
  if (user.tenant)
    return {
      user,
      keyId,
      permissions: new Set(CUSTOMER_PERMISSIONS),
      scope: { all: false, tenants: new Set([user.tenant]) },
    };
  // Built-in names first, so a custom role can never redefine admin; custom grants stay under their ceiling even if a
  // stored body says more.
  const permissions = new Set<Permission>(
    user.roles.flatMap((r) =>
      Object.hasOwn(ROLE_PERMISSIONS, r)
        ? ROLE_PERMISSIONS[r]!
        : (custom?.(r) ?? []).filter((p) => CUSTOM_ALLOWED.has(p)),
    ),
  );
  if (!user.tenants) return { user, keyId, permissions, scope: { all: true } };
  return {
    user,
    keyId,
    permissions: new Set([...permissions].filter((p) => SCOPED_PERMISSIONS.has(p))),
    scope: { all: false, tenants: new Set(user.tenants) },
  };
}

export async function createUser(
  registry: Registry,
  name: string,
  roles: string[],
  scope: { tenant?: string; tenants?: string[]; profile?: string; createdBy?: string } = {},
): Promise<UserRecord> {
  const user: UserRecord = {
    id: `usr_${randomBytes(6).toString('hex')}`,
    name,
    roles,
    createdAt: new Date().toISOString(),
    ...(scope.tenant ? { tenant: scope.tenant } : {}),
    ...(scope.tenants ? { tenants: scope.tenants } : {}),
    ...(scope.profile ? { profile: scope.profile } : {}),
    ...(scope.createdBy ? { createdBy: scope.createdBy } : {}),
  };
  await registry.users.put(user.id, user);
  return user;
}

/** Creates a key for a user; the returned token is shown once and never stored. */
export async function createApiKey(registry: Registry, userId: string): Promise<{ id: string; token: string }> {
  const s = newSecret(API_KEY_PREFIX);
  await registry.apiKeys.put(s.id, { id: s.id, hash: s.hash, userId, createdAt: new Date().toISOString() });
  return { id: s.id, token: s.token };
}

/** Resolves a bearer token to a principal, or throws 401. Updates last-used time (best effort). */
/**
 * The principal behind a bearer token. `onKeyUse` hears of a main key's use at most once a minute per
 * key (when its last-used time is written), so key use can be audited without a line per request.
 */
export async function authenticate(
  registry: Registry,
  token: string | undefined,
  custom?: CustomRoleLookup,
  onKeyUse?: (keyId: string, userId: string) => void,
): Promise<Principal> {
  const tk = token ? parseTenantKey(token) : null;
  if (tk) {
    // Main keeps no record of tenant keys: the tenant checks this one. On main it can only relay to its tenant.
    const user: UserRecord = {
      id: `key:${tk.id}`,
      name: `key of tenant ${tk.tenant}`,
      roles: [],
      tenant: tk.tenant,
      createdAt: '',
    };
    // Only the relay: it answers a key the tenant refuses with the same 401 whether the tenant exists (and throttles
    // guesses); main's search would run a fan-out for a caller nobody has checked yet.
    return {
      ...principalFor(user, tk.id),
      permissions: new Set<Permission>(['tenants:relay']),
      tenantKey: { tenant: tk.tenant, id: tk.id, sha256: hashSecret(tk.secret) },
    };
  }
  const parsed = token ? parseSecret(API_KEY_PREFIX, token) : null;
  if (!parsed)
    throw new UnauthenticatedError(
      'ERR_AUTH_REQUIRED',
      'a valid API key is required: send Authorization: Bearer <key>',
    );
  const rec = await registry.apiKeys.get(parsed.id);
  // Compare even when the id is unknown, so timing does not reveal which key ids exist.
  const ok = secretMatches(parsed.secret, rec?.hash ?? '0'.repeat(64)) && rec !== undefined && !rec.revokedAt;
  if (!ok || !rec) throw new UnauthenticatedError('ERR_AUTH_INVALID_KEY', 'the API key is invalid or revoked');
  const user = await registry.users.get(rec.userId);
  if (!user || user.disabledAt)
    throw new UnauthenticatedError('ERR_AUTH_INVALID_KEY', 'the API key is invalid or revoked');
  // Last-used time at minute resolution: a write per request would double the cost of every API call.
  if (!rec.lastUsedAt || Date.now() - Date.parse(rec.lastUsedAt) > 60_000) {
    void registry.apiKeys.put(rec.id, { ...rec, lastUsedAt: new Date().toISOString() }).catch(() => undefined);
    onKeyUse?.(rec.id, user.id);
  }
  return principalFor(user, rec.id, custom);
}
