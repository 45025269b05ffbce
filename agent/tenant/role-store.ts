/**
 * The tenant's role table: which permissions a caller's role names give inside this tenant.
 *
 * Three sources, in order: built-in roles (common/roles.ts), roles shared by main (content items of
 * type `role` that main's propagation wrote into the content store) and roles defined here
 * (tenant-only, in their own sublevel). Who may use what:
 * - MSSP staff (main users; main signs their role names): built-in staff roles and shared roles. A role
 *   defined here never applies to them: the customer does not decide what MSSP staff may do.
 * - The customer's people (users of this tenant, created on main or here, and their keys): built-in
 *   customer roles, shared roles and roles defined here — never more than CUSTOMER_CEILING, whatever
 *   any role says.
 * A name defined here may not take a built-in or shared name; if main later shares a role of the same
 * name, the shared one wins and the local one is listed as shadowed.
 *
 * Lookups are in memory (every request needs one); the table is rebuilt when a shared role arrives or
 * leaves and when a local role changes. Not the users and keys: access-store.ts.
 */
import type { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';
import { ConflictError, NotFoundError } from '#common/errors.js';
import {
  BUILT_IN_ROLE_NAMES,
  CUSTOMER_CEILING,
  CUSTOMER_TENANT_ROLES,
  STAFF_TENANT_ROLES,
  ROLE_NAME_PATTERN,
  tenantPermissionsOf,
  type TenantPermission,
} from '#common/roles.js';
import type { CallerIdentity } from '#common/signed-request.js';
import { sameNames, type SyncOutcome } from '#common/write-commands.js';
import type { ContentStore } from './content-store.js';

export interface LocalRole {
  name: string;
  permissions: TenantPermission[];
  description?: string;
  createdAt: string;
  createdBy: string;
  /** Set when roles:sync changed it. */
  updatedAt?: string;
  updatedBy?: string;
}
export interface RoleView {
  name: string;
  source: 'built-in' | 'shared' | 'tenant';
  for: 'staff' | 'customer' | 'any';
  permissions: readonly TenantPermission[];
  description?: string;
  id?: string;
  version?: number;
  shadowed?: boolean;
}
type Sub<V> = AbstractSublevel<Level<string, unknown>, string | Buffer | Uint8Array, string, V>;
interface SharedRole {
  id: string;
  version: number;
  permissions: TenantPermission[];
}

const ROLE_NAME_RE = new RegExp(ROLE_NAME_PATTERN);
const own = <V>(table: Readonly<Record<string, V>>, name: string): V | undefined =>
  Object.hasOwn(table, name) ? table[name] : undefined;

export class RoleStore {
  private readonly roles: Sub<LocalRole>;
  private local = new Map<string, LocalRole>();
  private shared = new Map<string, SharedRole>();
  /** One change at a time, so a create cannot race a shared role of the same name or another create. */
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    db: Level<string, unknown>,
    private readonly content: ContentStore,
  ) {
    this.roles = db.sublevel<string, LocalRole>('roles', { valueEncoding: 'json' }) as unknown as Sub<LocalRole>;
  }

  async load(): Promise<void> {
    const local = new Map<string, LocalRole>();
    for await (const r of this.roles.values()) local.set(r.name, r);
    this.local = local;
    await this.loadShared();
  }

  /** Rebuilds the shared part from the content store; main's propagation awaits it before its push is answered. */
  async loadShared(): Promise<void> {
    const shared = new Map<string, SharedRole>();
    for (const i of await this.content.list({ type: 'role', shared: true })) {
      // Main refuses such names; a store written by an older main must not redefine a built-in.
      if (!ROLE_NAME_RE.test(i.name) || BUILT_IN_ROLE_NAMES.has(i.name)) continue;
      shared.set(i.name, { id: i.id, version: i.version, permissions: tenantPermissionsOf(i.body) });
    }
    this.shared = shared;
  }

  private permissionsOfRole(name: string, customer: boolean): readonly TenantPermission[] {
    const builtIn = own(customer ? CUSTOMER_TENANT_ROLES : STAFF_TENANT_ROLES, name);
    if (builtIn) return builtIn;
    return this.shared.get(name)?.permissions ?? (customer ? this.local.get(name)?.permissions : undefined) ?? [];
  }

  /** What the caller may do here. A customer (caller.tenant set) never exceeds the customer ceiling. */
  permissionsOf(caller: Pick<CallerIdentity, 'roles' | 'tenant'>): Set<TenantPermission> {
    const customer = caller.tenant !== undefined;
    const out = new Set<TenantPermission>();
    for (const r of Array.isArray(caller.roles) ? caller.roles : []) {
      for (const p of this.permissionsOfRole(String(r), customer)) if (!customer || CUSTOMER_CEILING.has(p)) out.add(p);
    }
    return out;
  }

  /** A role a user of this tenant may be given: a built-in customer role, a shared role or one defined here. */
  knownToCustomers(name: string): boolean {
    return own(CUSTOMER_TENANT_ROLES, name) !== undefined || this.shared.has(name) || this.local.has(name);
  }

  list(): RoleView[] {
    const builtIn = (
      table: Readonly<Record<string, readonly TenantPermission[]>>,
      f: 'staff' | 'customer',
    ): RoleView[] =>
      Object.entries(table).map(([name, permissions]) => ({ name, source: 'built-in', for: f, permissions }));
    return [
      ...builtIn(STAFF_TENANT_ROLES, 'staff'),
      ...builtIn(CUSTOMER_TENANT_ROLES, 'customer'),
      ...[...this.shared].map(([name, r]): RoleView => ({
        name,
        source: 'shared',
        for: 'any',
        permissions: r.permissions,
        id: r.id,
        version: r.version,
      })),
      ...[...this.local.values()].map((r): RoleView => ({
        name: r.name,
        source: 'tenant',
        for: 'customer',
        permissions: r.permissions,
        ...(r.description !== undefined ? { description: r.description } : {}),
        ...(this.shared.has(r.name) ? { shadowed: true } : {}),
      })),
    ];
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Defines a tenant-only role; the caller has checked the permissions against the ceiling and its own. */
  create(r: { name: string; permissions: TenantPermission[]; description?: string }, by: string): Promise<LocalRole> {
    return this.serial(async () => {
      await this.loadShared();
      if (this.shared.has(r.name) || this.local.has(r.name)) {
        throw new ConflictError(
          'ERR_ROLE_EXISTS',
          `name: a ${this.shared.has(r.name) ? 'role shared by main' : 'role'} named "${r.name}" exists in this tenant`,
          { field: 'name' },
        );
      }
      const role: LocalRole = {
        name: r.name,
        permissions: [...new Set(r.permissions)],
        ...(r.description !== undefined ? { description: r.description } : {}),
        createdAt: new Date().toISOString(),
        createdBy: by,
      };
      await this.roles.put(role.name, role);
      this.local.set(role.name, role);
      return role;
    });
  }

  /**
   * `roles:sync` (common/write-commands.ts): defines the listed tenant-only roles this tenant lacks and updates those
   * that differ, in one batch. A name main shares here (or a built-in) refuses the whole sync: nothing is written.
   * The caller has checked names, the ceiling and its own permissions.
   */
  sync(
    list: readonly { name: string; permissions: TenantPermission[]; description?: string }[],
    by: string,
  ): Promise<SyncOutcome> {
    return this.serial(async () => {
      await this.loadShared();
      const taken = list.find((r) => this.shared.has(r.name));
      if (taken)
        throw new ConflictError('ERR_ROLE_EXISTS', `roles: "${taken.name}" is a role shared by main, read-only here`, {
          field: 'roles',
        });
      const out: SyncOutcome = { created: [], updated: [], unchanged: [] };
      const next: LocalRole[] = [];
      const at = new Date().toISOString();
      for (const r of list) {
        const old = this.local.get(r.name);
        const permissions = [...new Set(r.permissions)];
        if (old && sameNames(old.permissions, permissions) && old.description === r.description) {
          out.unchanged.push(r.name);
          continue;
        }
        const base = old ? { createdAt: old.createdAt, createdBy: old.createdBy, updatedAt: at, updatedBy: by } : null;
        next.push({
          name: r.name,
          permissions,
          ...(r.description !== undefined ? { description: r.description } : {}),
          ...(base ?? { createdAt: at, createdBy: by }),
        });
        (old ? out.updated : out.created).push(r.name);
      }
      if (next.length) await this.roles.batch(next.map((value) => ({ type: 'put' as const, key: value.name, value })));
      for (const r of next) this.local.set(r.name, r);
      return out;
    });
  }

  /** Removes a tenant-only role; `inUse` names who still holds it (then it is refused). */
  remove(name: string, inUse: (name: string) => Promise<string[]>): Promise<{ name: string; deleted: true }> {
    return this.serial(async () => {
      if (!this.local.has(name)) {
        const why = this.shared.has(name)
          ? 'is shared by main and read-only here'
          : (own(CUSTOMER_TENANT_ROLES, name) ?? own(STAFF_TENANT_ROLES, name))
            ? 'is built-in'
            : undefined;
        if (why) throw new ConflictError('ERR_ROLE_READONLY', `name: role "${name}" ${why}`, { field: 'name' });
        throw new NotFoundError('ERR_ROLE_NOT_FOUND', `no role "${name}" defined in this tenant`, { field: 'name' });
      }
      const users = await inUse(name);
      if (users.length)
        throw new ConflictError(
          'ERR_ROLE_IN_USE',
          `role "${name}" is held by ${users.slice(0, 5).join(', ')}${users.length > 5 ? ` and ${users.length - 5} more` : ''}`,
          { field: 'name' },
        );
      await this.roles.del(name);
      this.local.delete(name);
      return { name, deleted: true as const };
    });
  }
}
