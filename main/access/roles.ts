/**
 * Custom roles on main (docs/access.md). A custom role is a content item of type `role` whose body is a
 * RoleBody (common/roles.ts): its tenant `permissions` reach tenants by content propagation (share,
 * reshare, tenant creation); its `mainPermissions` apply here to staff holding it. Only the published
 * version counts, on main as on tenants, so an edit changes nothing until it is published (and shared).
 *
 * This module keeps the name → role table that authentication reads on every request (in memory,
 * reloaded after each change of a role item), checks role items before the library stores them, and
 * makes, lists and deletes roles for the `/roles` routes. It is not the library or the propagation.
 */
import { BadParameterError, ConflictError, NotFoundError } from '#common/errors.js';
import {
  CUSTOMER_TENANT_ROLES,
  STAFF_TENANT_ROLES,
  checkRoleName,
  parseRoleBody,
  tenantPermissionsOf,
  type RoleBody,
} from '#common/roles.js';
import { padId, type ContentItemRecord, type Registry } from '../registry.js';
import type { AuditLog } from './audit.js';
import { CUSTOMER_ROLES, ROLE_PERMISSIONS, type CustomRoleLookup } from './api-keys.js';
import type { Actor, ContentLibrary, ContentRules } from '../content/library.js';

export interface RoleView {
  name: string;
  source: 'built-in' | 'custom';
  /** Who the role is for: built-in staff or customer roles; a custom role serves both. */
  for: 'staff' | 'customer' | 'any';
  mainPermissions: readonly string[];
  permissions: readonly string[];
  description?: string;
  id?: string;
  version?: number;
  published?: number | null;
  labels?: string[];
  sharedVersion?: number | null;
}

interface CustomRole {
  id: string;
  published: number | null;
  body: RoleBody | null;
}

export class MainRoles implements ContentRules {
  private byName = new Map<string, CustomRole>();

  constructor(
    private readonly registry: Registry,
    private readonly audit: AuditLog,
  ) {}

  /** Reads every role item and its published body. Called at start and after each change of a role item. */
  async load(): Promise<void> {
    const next = new Map<string, CustomRole>();
    for await (const i of this.registry.content.values()) {
      if (i.type !== 'role') continue;
      next.set(i.name, {
        id: i.id,
        published: i.published,
        body: i.published === null ? null : await this.bodyOf(i.id, i.published),
      });
    }
    this.byName = next;
  }

  private async bodyOf(id: string, version: number): Promise<RoleBody | null> {
    const v = await this.registry.contentVersions.get(`${id}!${padId(version)}`);
    if (!v) return null;
    try {
      return parseRoleBody(v.body);
    } catch {
      // Stored before its rules tightened: keep its tenant permissions, grant nothing on main.
      return { permissions: tenantPermissionsOf(v.body), mainPermissions: [] };
    }
  }

  /** For authentication: the main permissions of a custom role (published version), undefined if there is none. */
  readonly lookup: CustomRoleLookup = (name) => this.byName.get(name)?.body?.mainPermissions;

  /** A custom role of this name exists (published or not): users may be given it. */
  has(name: string): boolean {
    return this.byName.has(name);
  }

  // ContentRules: what the library asks before storing an item of type role.
  async check(c: { type: string; name?: string; body?: string }, prev?: ContentItemRecord): Promise<void> {
    if (c.type !== 'role') return;
    if (prev && c.name !== undefined && c.name !== prev.name) {
      throw new BadParameterError(
        'ERR_ROLE_RENAME',
        `name: a role cannot be renamed (users hold it by name); create role "${c.name}" instead`,
        { field: 'name' },
      );
    }
    if (!prev && c.name !== undefined) {
      checkRoleName(c.name);
      for await (const i of this.registry.content.values()) {
        if (i.type === 'role' && i.name === c.name)
          throw new ConflictError('ERR_ROLE_EXISTS', `name: a role named "${c.name}" exists (${i.id})`, {
            field: 'name',
          });
      }
    }
    if (c.body !== undefined) parseRoleBody(c.body);
  }

  async changed(item: ContentItemRecord): Promise<void> {
    if (item.type === 'role') await this.load();
  }

  /** Creates and publishes a role in one step (the library keeps its versions); sharing stays explicit. */
  async create(
    lib: ContentLibrary,
    r: { name: string; body: RoleBody; labels: string[] },
    actor: Actor,
  ): Promise<RoleView> {
    const item = await lib.create(
      { type: 'role', name: r.name, body: JSON.stringify(r.body), labels: r.labels },
      actor,
    );
    await lib.publish(item.id, actor);
    return this.viewOf(await lib.find(item.id));
  }

  /**
   * Deletes a custom role from main: refused while it is shared or still held by a tenant (unshare
   * first, so no tenant keeps a role main forgot) or while an enabled user holds it.
   */
  async remove(lib: ContentLibrary, name: string, actor: Actor): Promise<{ name: string; id: string; deleted: true }> {
    const role = this.byName.get(name);
    if (!role)
      throw new NotFoundError('ERR_ROLE_NOT_FOUND', `no custom role "${name}"; list them with 'palisade roles'`, {
        field: 'name',
      });
    return lib.serial(role.id, async () => {
      const item = await lib.find(role.id);
      const shares = await this.registry.contentShares.iterator({ gt: `${item.id}!`, lt: `${item.id}!\uffff` }).all();
      // Records of removed tenants (or of an earlier tenant of the same name) hold nothing: only live ones block.
      let held = false;
      for (const [, r] of shares) {
        const t = await this.registry.tenants.get(r.tenant);
        if (t && (r.tenantCreatedAt === undefined || r.tenantCreatedAt === t.createdAt)) held = true;
      }
      if (item.sharing !== null || held)
        throw new ConflictError(
          'ERR_ROLE_SHARED',
          `role "${name}" is shared to tenants; unshare it first ('palisade content unshare ${item.id}')`,
          { field: 'name' },
        );
      const users: string[] = [];
      for await (const u of this.registry.users.values())
        if (!u.disabledAt && u.roles.includes(name)) users.push(u.name);
      if (users.length)
        throw new ConflictError(
          'ERR_ROLE_IN_USE',
          `role "${name}" is held by ${users.slice(0, 5).join(', ')}${users.length > 5 ? ` and ${users.length - 5} more` : ''}`,
          { field: 'name' },
        );
      const versions = await this.registry.contentVersions.keys({ gt: `${item.id}!`, lt: `${item.id}!\uffff` }).all();
      const logs = await this.registry.contentLog.keys({ gt: `${item.id}!`, lt: `${item.id}!\uffff` }).all();
      await this.registry.db.batch([
        { type: 'del', sublevel: this.registry.content, key: item.id },
        ...versions.map((key) => ({ type: 'del', sublevel: this.registry.contentVersions, key })),
        ...logs.map((key) => ({ type: 'del', sublevel: this.registry.contentLog, key })),
        ...shares.map(([key]) => ({ type: 'del', sublevel: this.registry.contentShares, key })),
      ] as never);
      await this.load();
      await this.audit.record({
        actor: actor.id,
        action: 'role.delete',
        target: item.id,
        outcome: 'ok',
        remote: actor.remote,
        detail: { name },
      });
      return { name, id: item.id, deleted: true as const };
    });
  }

  private viewOf(i: ContentItemRecord): RoleView {
    const body = this.byName.get(i.name)?.body;
    return {
      name: i.name,
      source: 'custom',
      for: 'any',
      mainPermissions: body?.mainPermissions ?? [],
      permissions: body?.permissions ?? [],
      ...(body?.description !== undefined ? { description: body.description } : {}),
      id: i.id,
      version: i.latest,
      published: i.published,
      labels: i.labels,
      sharedVersion: i.sharing?.version ?? null,
    };
  }

  /** Built-in roles (staff, then customer) and every custom role, with what each grants on main and in tenants. */
  async list(): Promise<RoleView[]> {
    const staff: RoleView[] = Object.entries(ROLE_PERMISSIONS).map(([name, main]) => ({
      name,
      source: 'built-in',
      for: 'staff',
      mainPermissions: main,
      permissions: STAFF_TENANT_ROLES[name] ?? [],
    }));
    const customer: RoleView[] = CUSTOMER_ROLES.map((name) => ({
      name,
      source: 'built-in',
      for: 'customer',
      mainPermissions: ['tenants:relay'],
      permissions: CUSTOMER_TENANT_ROLES[name] ?? [],
    }));
    const custom: RoleView[] = [];
    for (const r of this.byName.values()) {
      const i = await this.registry.content.get(r.id);
      if (i) custom.push(this.viewOf(i));
    }
    return [...staff, ...customer, ...custom.sort((a, b) => a.name.localeCompare(b.name))];
  }
}
