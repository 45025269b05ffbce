/**
 * Managing who may do what on main: users (MSSP staff, optionally limited to some tenants, or customer
 * users of one tenant), their API keys (shown once, stored hashed, revocable) and the role catalogue.
 * Every change is audited. The HTTP edge is http/routes-access.ts.
 */
import { BadParameterError, ConflictError, NotFoundError } from '#common/errors.js';
import { createApiKey, createUser, CUSTOMER_ROLES, ROLE_PERMISSIONS } from './api-keys.js';
import type { AuditLog } from './audit.js';
import type { ApiKeyRecord, Registry, UserRecord } from '../registry.js';
import type { TenantService } from '../tenants/tenants.js';
import type { MainRoles } from './roles.js';

export interface UserView {
  id: string;
  name: string;
  roles: string[];
  tenant: string | null;
  tenants: string[] | null;
  /** A customer user's security profile in its tenant (docs/events.md#security-profiles). */
  profile?: string;
  createdAt: string;
  disabled: boolean;
  /** Console sign-in: whether a password is set, and whether TOTP is on (never the hash or the secret). */
  password: boolean;
  totp: boolean;
}
export interface KeyView {
  id: string;
  user: string;
  userName: string;
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export function userView(u: UserRecord): UserView {
  return {
    id: u.id,
    name: u.name,
    roles: u.roles,
    tenant: u.tenant ?? null,
    tenants: u.tenants ?? null,
    ...(u.profile ? { profile: u.profile } : {}),
    createdAt: u.createdAt,
    disabled: !!u.disabledAt,
    password: !!u.password,
    totp: !!u.totp,
  };
}

export class AccessService {
  constructor(
    private readonly registry: Registry,
    private readonly tenants: TenantService,
    private readonly audit: AuditLog,
    private readonly roles?: MainRoles,
  ) {}

  async createUser(
    b: { name: string; roles: string[]; tenant?: string; tenants?: string[]; profile?: string },
    actor: string,
    remote?: string,
  ): Promise<UserView> {
    if (b.tenant !== undefined && b.tenants !== undefined)
      throw new BadParameterError(
        'ERR_USER_SCOPE',
        'give either tenant (a customer user) or tenants (MSSP staff limited to them), not both',
        { field: 'tenants' },
      );
    if (b.profile !== undefined && b.tenant === undefined)
      throw new BadParameterError('ERR_USER_SCOPE', 'profile: only a customer user (with tenant) carries a profile', {
        field: 'profile',
      });
    const known: readonly string[] = b.tenant !== undefined ? CUSTOMER_ROLES : Object.keys(ROLE_PERMISSIONS);
    // Custom roles serve both kinds: on main they grant staff their main permissions, in tenants their tenant ones.
    const bad = b.roles.find((r) => !known.includes(r) && !this.roles?.has(r));
    if (bad !== undefined)
      throw new BadParameterError(
        'ERR_UNKNOWN_ROLE',
        `roles: "${bad}" is not a ${b.tenant !== undefined ? 'customer' : 'main'} role; use ${known.join(', ')} or a custom role ('palisade roles')`,
        { field: 'roles' },
      );
    for (const t of [...(b.tenant !== undefined ? [b.tenant] : []), ...(b.tenants ?? [])]) {
      if (!this.tenants.peek(t))
        throw new NotFoundError('ERR_TENANT_NOT_FOUND', `no tenant "${t}"`, {
          field: b.tenant !== undefined ? 'tenant' : 'tenants',
        });
    }
    for await (const u of this.registry.users.values()) {
      if (u.name === b.name && !u.disabledAt)
        throw new ConflictError('ERR_USER_EXISTS', `a user named "${b.name}" exists`, { field: 'name' });
    }
    const user = await createUser(this.registry, b.name, b.roles, {
      tenant: b.tenant,
      tenants: b.tenants,
      profile: b.profile,
      createdBy: actor,
    });
    await this.audit.record({
      actor,
      action: 'user.create',
      target: user.id,
      outcome: 'ok',
      remote,
      detail: { name: user.name, roles: user.roles, tenant: user.tenant, tenants: user.tenants, profile: user.profile },
    });
    return userView(user);
  }

  async listUsers(): Promise<UserView[]> {
    const out: UserView[] = [];
    for await (const u of this.registry.users.values()) out.push(userView(u));
    return out;
  }

  /** Finds a user by id or by name (names are unique among enabled users). */
  async findUser(ref: string): Promise<UserRecord> {
    const byId = await this.registry.users.get(ref);
    if (byId) return byId;
    for await (const u of this.registry.users.values()) if (u.name === ref && !u.disabledAt) return u;
    throw new NotFoundError('ERR_USER_NOT_FOUND', `no user "${ref}"`, { field: 'user' });
  }

  /** Disables the user and revokes every key of theirs; the record stays for the audit trail. */
  async removeUser(ref: string, actor: string, remote?: string): Promise<{ user: UserView; revokedKeys: string[] }> {
    const u = await this.findUser(ref);
    if (u.id === actor) throw new ConflictError('ERR_USER_SELF', 'you cannot remove your own user', { field: 'id' });
    const { user: next, revokedKeys: revoked } = await disableUser(this.registry, u);
    await this.audit.record({
      actor,
      action: 'user.remove',
      target: u.id,
      outcome: 'ok',
      remote,
      detail: { revokedKeys: revoked },
    });
    return { user: userView(next), revokedKeys: revoked };
  }

  async createKey(userRef: string, actor: string, remote?: string): Promise<{ id: string; key: string; user: string }> {
    const u = await this.findUser(userRef);
    if (u.disabledAt) throw new ConflictError('ERR_USER_DISABLED', `user "${u.name}" is removed`, { field: 'user' });
    const k = await createApiKey(this.registry, u.id);
    await this.audit.record({
      actor,
      action: 'apikey.create',
      target: k.id,
      outcome: 'ok',
      remote,
      detail: { user: u.id },
    });
    return { id: k.id, key: k.token, user: u.id };
  }

  async listKeys(): Promise<KeyView[]> {
    const names = new Map<string, string>();
    for await (const u of this.registry.users.values()) names.set(u.id, u.name);
    const out: KeyView[] = [];
    for await (const k of this.registry.apiKeys.values()) out.push(keyView(k, names.get(k.userId) ?? ''));
    return out;
  }

  async revokeKey(id: string, actor: string, remote?: string): Promise<KeyView> {
    const k = await this.registry.apiKeys.get(id);
    if (!k) throw new NotFoundError('ERR_APIKEY_NOT_FOUND', `no API key "${id}"`, { field: 'id' });
    const next = k.revokedAt ? k : { ...k, revokedAt: new Date().toISOString() };
    await this.registry.apiKeys.put(id, next);
    await this.audit.record({ actor, action: 'apikey.revoke', target: id, outcome: 'ok', remote });
    const u = await this.registry.users.get(k.userId);
    return keyView(next, u?.name ?? '');
  }
}

/** Disables a user and revokes every key of theirs; the record stays for the audit trail. */
async function disableUser(registry: Registry, u: UserRecord): Promise<{ user: UserRecord; revokedKeys: string[] }> {
  const now = new Date().toISOString();
  const revokedKeys: string[] = [];
  for await (const k of registry.apiKeys.values()) {
    if (k.userId === u.id && !k.revokedAt) {
      await registry.apiKeys.put(k.id, { ...k, revokedAt: now });
      revokedKeys.push(k.id);
    }
  }
  const user = { ...u, disabledAt: now };
  await registry.users.put(u.id, user);
  return { user, revokedKeys };
}

/** After a tenant is removed: its customer users are disabled (keys revoked), and staff scopes drop its name. */
export async function forgetTenantInUsers(
  registry: Registry,
  tenant: string,
  actor: string,
  audit: AuditLog,
  remote?: string,
): Promise<string[]> {
  const out: string[] = [];
  for await (const u of registry.users.values()) {
    if (u.tenant === tenant && !u.disabledAt) {
      await disableUser(registry, u);
      out.push(`customer user ${u.name} (disabled, keys revoked)`);
    } else if (u.tenants?.includes(tenant)) {
      await registry.users.put(u.id, { ...u, tenants: u.tenants.filter((t) => t !== tenant) });
      out.push(`scope of user ${u.name}`);
    }
  }
  if (out.length)
    await audit.record({
      actor,
      action: 'user.tenant-removed',
      target: tenant,
      outcome: 'ok',
      remote,
      detail: { changed: out },
    });
  return out;
}

function keyView(k: ApiKeyRecord, userName: string): KeyView {
  return {
    id: k.id,
    user: k.userId,
    userName,
    createdAt: k.createdAt,
    lastUsedAt: k.lastUsedAt ?? null,
    revokedAt: k.revokedAt ?? null,
  };
}
