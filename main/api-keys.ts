/**
 * Users and API keys on main. A key is `pal_<id>.<secret>`; main stores sha256(secret) and compares in
 * constant time. Roles map to permission sets; `admin` holds every permission.
 */
import { randomBytes } from 'node:crypto';
import { newSecret, parseSecret, secretMatches } from '#common/secrets.js';
import { UnauthenticatedError } from '#common/errors.js';
import type { Registry, UserRecord } from './registry.js';

export const API_KEY_PREFIX = 'pal';

export type Permission =
  | 'installers:create' | 'agents:read' | 'agents:write' | 'commands:run' | 'commands:read' | 'audit:read'
  | 'tenants:read' | 'tenants:write' | 'tenants:relay';

export const ROLE_PERMISSIONS: Readonly<Record<string, readonly Permission[]>> = Object.freeze({
  admin: ['installers:create', 'agents:read', 'agents:write', 'commands:run', 'commands:read', 'audit:read', 'tenants:read', 'tenants:write', 'tenants:relay'],
  viewer: ['agents:read', 'commands:read', 'tenants:read', 'tenants:relay'],
});

export interface Principal { user: UserRecord; keyId: string; permissions: ReadonlySet<Permission> }

export async function createUser(registry: Registry, name: string, roles: string[]): Promise<UserRecord> {
  const user: UserRecord = { id: `usr_${randomBytes(6).toString('hex')}`, name, roles, createdAt: new Date().toISOString() };
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
export async function authenticate(registry: Registry, token: string | undefined): Promise<Principal> {
  const parsed = token ? parseSecret(API_KEY_PREFIX, token) : null;
  if (!parsed) throw new UnauthenticatedError('ERR_AUTH_REQUIRED', 'a valid API key is required: send Authorization: Bearer <key>');
  const rec = await registry.apiKeys.get(parsed.id);
  // Compare even when the id is unknown, so timing does not reveal which key ids exist.
  const ok = secretMatches(parsed.secret, rec?.hash ?? '0'.repeat(64)) && rec !== undefined && !rec.revokedAt;
  if (!ok || !rec) throw new UnauthenticatedError('ERR_AUTH_INVALID_KEY', 'the API key is invalid or revoked');
  const user = await registry.users.get(rec.userId);
  if (!user) throw new UnauthenticatedError('ERR_AUTH_INVALID_KEY', 'the API key is invalid or revoked');
  const permissions = new Set<Permission>(user.roles.flatMap((r) => ROLE_PERMISSIONS[r] ?? []));
  // Last-used time at minute resolution: a write per request would double the cost of every API call.
  if (!rec.lastUsedAt || Date.now() - Date.parse(rec.lastUsedAt) > 60_000) {
    void registry.apiKeys.put(rec.id, { ...rec, lastUsedAt: new Date().toISOString() }).catch(() => undefined);
  }
  return { user, keyId: rec.id, permissions };
}
