/**
 * A tenant's own users and API keys (customer users created on the tenant). Keys are `ptk_<tenant>~id.secret`;
 * the tenant keeps sha256(secret) and compares the hash main forwards in its signed claim in constant time.
 */
import { randomBytes } from 'node:crypto';
import type { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';
import { hashesMatch, newTenantKey } from '#common/secrets.js';
import { sameNames, type SyncOutcome, type SyncUser } from '#common/write-commands.js';
import { ConflictError, NotFoundError, UnauthenticatedError } from '#common/errors.js';

export interface TenantUser {
  id: string;
  name: string;
  roles: string[];
  /** Its security profile (profiles.ts): it sees only that profile's domains. */
  profile?: string;
  createdAt: string;
  createdBy: string;
  /** Set when users:sync changed its roles. */
  updatedAt?: string;
  updatedBy?: string;
}
export interface TenantKey {
  id: string;
  hash: string;
  userId: string;
  createdAt: string;
  createdBy: string;
  lastUsedAt?: string;
  revokedAt?: string;
}
type Sub<V> = AbstractSublevel<Level<string, unknown>, string | Buffer | Uint8Array, string, V>;

export class AccessStore {
  private readonly users: Sub<TenantUser>;
  private readonly keys: Sub<TenantKey>;

  constructor(
    db: Level<string, unknown>,
    private readonly tenant: string,
  ) {
    this.users = db.sublevel<string, TenantUser>('users', { valueEncoding: 'json' }) as unknown as Sub<TenantUser>;
    this.keys = db.sublevel<string, TenantKey>('apikeys', { valueEncoding: 'json' }) as unknown as Sub<TenantKey>;
  }

  async createUser(name: string, roles: string[], createdBy: string, profile?: string): Promise<TenantUser> {
    for await (const u of this.users.values())
      if (u.name === name)
        throw new ConflictError('ERR_USER_EXISTS', `a user named "${name}" exists in this tenant`, { field: 'name' });
    const user: TenantUser = {
      id: `tusr_${randomBytes(6).toString('hex')}`,
      name,
      roles,
      ...(profile !== undefined ? { profile } : {}),
      createdAt: new Date().toISOString(),
      createdBy,
    };
    await this.users.put(user.id, user);
    return user;
  }

  /**
   * `users:sync` (common/write-commands.ts): creates the listed users this tenant lacks and sets the roles of those
   * it has, in one batch, so a failure writes none of it. The caller has checked the roles and the names' repeats.
   */
  async syncUsers(list: readonly SyncUser[], by: string): Promise<SyncOutcome> {
    const byName = new Map<string, TenantUser>();
    for await (const u of this.users.values()) byName.set(u.name, u);
    const out: SyncOutcome = { created: [], updated: [], unchanged: [] };
    const puts: { type: 'put'; key: string; value: TenantUser }[] = [];
    const at = new Date().toISOString();
    for (const w of list) {
      const roles = [...new Set(w.roles)];
      const u = byName.get(w.name);
      if (u && sameNames(u.roles, roles)) {
        out.unchanged.push(w.name);
        continue;
      }
      const value: TenantUser = u
        ? { ...u, roles, updatedAt: at, updatedBy: by }
        : { id: `tusr_${randomBytes(6).toString('hex')}`, name: w.name, roles, createdAt: at, createdBy: by };
      puts.push({ type: 'put', key: value.id, value });
      (u ? out.updated : out.created).push(w.name);
    }
    if (puts.length) await this.users.batch(puts);
    return out;
  }

  async listUsers(): Promise<TenantUser[]> {
    const out: TenantUser[] = [];
    for await (const u of this.users.values()) out.push(u);
    return out;
  }

  /** Names of this tenant's users holding the role (a role in use is not deleted under them). */
  async usersWithRole(role: string): Promise<string[]> {
    const out: string[] = [];
    for await (const u of this.users.values()) if (u.roles.includes(role)) out.push(u.name);
    return out;
  }

  private async findUser(ref: string): Promise<TenantUser> {
    const byId = await this.users.get(ref);
    if (byId) return byId;
    for await (const u of this.users.values()) if (u.name === ref) return u;
    throw new NotFoundError('ERR_USER_NOT_FOUND', `no user "${ref}" in this tenant`, { field: 'user' });
  }

  async createKey(userRef: string, createdBy: string): Promise<{ id: string; key: string; user: string }> {
    const u = await this.findUser(userRef);
    const s = newTenantKey(this.tenant);
    await this.keys.put(s.id, { id: s.id, hash: s.hash, userId: u.id, createdAt: new Date().toISOString(), createdBy });
    return { id: s.id, key: s.token, user: u.id };
  }

  async listKeys(): Promise<Omit<TenantKey, 'hash'>[]> {
    const out: Omit<TenantKey, 'hash'>[] = [];
    for await (const k of this.keys.values()) {
      const { hash: _h, ...view } = k;
      out.push(view);
    }
    return out;
  }

  async revokeKey(id: string): Promise<Omit<TenantKey, 'hash'>> {
    const k = await this.keys.get(id);
    if (!k) throw new NotFoundError('ERR_APIKEY_NOT_FOUND', `no API key "${id}" in this tenant`, { field: 'id' });
    const next = k.revokedAt ? k : { ...k, revokedAt: new Date().toISOString() };
    await this.keys.put(id, next);
    const { hash: _h, ...view } = next;
    return view;
  }

  /**
   * The user behind a tenant key main forwarded (id + sha256 of the presented secret), or 401.
   * `onKeyUse` hears of a key's use at most once a minute (when its last-used time is written).
   */
  async authenticate(
    key: { id: string; sha256: string },
    onKeyUse?: (keyId: string, user: TenantUser) => void,
  ): Promise<TenantUser> {
    const k = typeof key.id === 'string' ? await this.keys.get(key.id) : undefined;
    // Compare even for an unknown id, so timing does not reveal which ids exist.
    const ok =
      hashesMatch(typeof key.sha256 === 'string' ? key.sha256 : '', k?.hash ?? '0'.repeat(64)) &&
      k !== undefined &&
      !k.revokedAt;
    const user = ok && k ? await this.users.get(k.userId) : undefined;
    if (!ok || !k || !user) throw new UnauthenticatedError('ERR_AUTH_INVALID_KEY', 'the API key is invalid or revoked');
    if (!k.lastUsedAt || Date.now() - Date.parse(k.lastUsedAt) > 60_000) {
      void this.keys.put(k.id, { ...k, lastUsedAt: new Date().toISOString() }).catch(() => undefined);
      onKeyUse?.(k.id, user);
    }
    return user;
  }
}
