/**
 * Security profiles (docs/events.md#security-profiles): a named set of event domains. A user who carries a profile
 * (a customer user created on main or on the tenant with `--profile P`) sees events, incidents and searches of
 * those domains only; a user without one sees every domain. Kept in the tenant's store (`profiles`), in memory too,
 * since every scoped request asks. A profile that a caller names but this tenant does not hold grants no domain
 * (fail closed): main cannot know a tenant's profiles when it creates the user. Not the enforcement
 * (profile-scope.ts) nor HTTP (profile-routes.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Level } from 'level';
import { ConflictError, NotFoundError } from '#common/errors.js';
import type { Sub } from './store.js';

export interface SecurityProfile {
  id: string;
  name: string;
  domains: string[];
  createdAt: string;
  createdBy: string;
}

export const PROFILE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$';

export class ProfileStore {
  private readonly sub: Sub<SecurityProfile>;
  private readonly byName = new Map<string, SecurityProfile>();

  constructor(db: Level<string, unknown>) {
    this.sub = db.sublevel<string, SecurityProfile>('profiles', {
      valueEncoding: 'json',
    }) as unknown as Sub<SecurityProfile>;
  }

  async load(): Promise<void> {
    this.byName.clear();
    for await (const p of this.sub.values()) this.byName.set(p.name, p);
  }

  list(): SecurityProfile[] {
    return [...this.byName.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
  }

  /** The profile named, or undefined. */
  find(name: string): SecurityProfile | undefined {
    return this.byName.get(name);
  }

  get(name: string): SecurityProfile {
    const p = this.byName.get(name);
    if (!p)
      throw new NotFoundError('ERR_PROFILE_NOT_FOUND', `no security profile "${name}" in this tenant`, {
        field: 'profile',
      });
    return p;
  }

  async create(name: string, domains: string[], createdBy: string): Promise<SecurityProfile> {
    if (this.byName.has(name))
      throw new ConflictError('ERR_PROFILE_EXISTS', `a security profile named "${name}" exists in this tenant`, {
        field: 'name',
      });
    const p: SecurityProfile = {
      id: `prf_${randomBytes(6).toString('hex')}`,
      name,
      domains: [...new Set(domains)],
      createdAt: new Date().toISOString(),
      createdBy,
    };
    await this.sub.put(p.id, p);
    this.byName.set(name, p);
    return p;
  }

  async remove(name: string): Promise<SecurityProfile> {
    const p = this.get(name);
    await this.sub.del(p.id);
    this.byName.delete(name);
    return p;
  }
}
