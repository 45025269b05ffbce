/**
 * A tenant's content: its own items (ids `loc_…`, editable here) and items shared by main (main's ids
 * `cnt_…`, read-only here: only main's propagation writes them). Both live in one sublevel, so a list
 * shows local and shared items of the same type side by side. Not the library itself: versions and
 * sharing state are main's.
 *
 * Scripts and playbooks are found by name as well as by id (playbook tasks name them), so a local one may not take
 * the name of a shared one of its type (409 ERR_CONTENT_NAME_TAKEN). A shared item that arrives later with a local
 * one's name wins that name (`named`); the local one stays reachable by its id.
 */
import { randomBytes } from 'node:crypto';
import type { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';
import { AccessDeniedError, ConflictError, NotFoundError } from '#common/errors.js';
import type { ContentType, SharedContentPush } from '#common/content.js';

export interface TenantContentItem {
  id: string;
  type: ContentType;
  name: string;
  body: string;
  labels: string[];
  version: number;
  shared: boolean;
  created: string;
  updated: string;
  createdBy?: string;
}

/** The types whose items other items name (a playbook's script and playbook tasks). */
const NAMED_TYPES: ReadonlySet<ContentType> = new Set<ContentType>(['script', 'playbook']);

type Sub<V> = AbstractSublevel<Level<string, unknown>, string | Buffer | Uint8Array, string, V>;

/** Items kept as read, by id (a run reads its playbook and its script on every run); past this, all are forgotten. */
const MAX_CACHED_ITEMS = 256;

export class ContentStore {
  private readonly items: Sub<TenantContentItem>;
  /**
   * Reads by id, kept until this store changes that item (it is the sublevel's one writer, in this one process per
   * tenant): each change forgets the item once written, so a read begun before a change is not kept past it.
   */
  private readonly byId = new Map<string, Promise<TenantContentItem | undefined>>();
  /** Awaited after a shared role arrives, changes or leaves, so main's push is answered only once the role applies. */
  onSharedRoleChange?: () => Promise<void>;
  /**
   * A shared connection's push and removal (shared-connections.ts): the push answers the body this store keeps, its
   * secret taken out and kept sealed at rest there.
   */
  sharedConnections?: {
    accept(id: string, p: SharedContentPush): Promise<string>;
    remove(id: string): Promise<void>;
  };

  constructor(db: Level<string, unknown>) {
    this.items = db.sublevel<string, TenantContentItem>('content', {
      valueEncoding: 'json',
    }) as unknown as Sub<TenantContentItem>;
  }

  async list(f: { type?: string; shared?: boolean }): Promise<TenantContentItem[]> {
    const out: TenantContentItem[] = [];
    for await (const i of this.items.values()) {
      if (f.type && i.type !== f.type) continue;
      if (f.shared !== undefined && i.shared !== f.shared) continue;
      out.push(i);
    }
    return out;
  }

  async get(id: string): Promise<TenantContentItem> {
    let read = this.byId.get(id);
    if (!read) {
      if (this.byId.size >= MAX_CACHED_ITEMS) this.byId.clear();
      const p = this.items.get(id);
      this.byId.set(id, p);
      // Only items are kept: an id not there (or a failed read) is asked of the store again next time.
      p.then(
        (i) => i === undefined && this.byId.get(id) === p && this.byId.delete(id),
        () => this.byId.get(id) === p && this.byId.delete(id),
      );
      read = p;
    }
    const i = await read;
    if (!i) throw new NotFoundError('ERR_CONTENT_NOT_FOUND', `no content item ${id} in this tenant`, { field: 'id' });
    return { ...i, labels: [...i.labels] }; // a copy: what a caller does with it never reaches the kept one
  }

  /** Writes item `id` through `write`, then forgets it as read before (a read begun meanwhile included). */
  private async changing<T>(id: string, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } finally {
      this.byId.delete(id);
    }
  }

  /**
   * The items of `type` a name finds: the shared ones of that name if any (main's names win, so a shared
   * playbook naming another keeps working whatever a tenant adds), else the local ones.
   */
  async named(type: ContentType, name: string): Promise<TenantContentItem[]> {
    const named = (await this.list({ type })).filter((i) => i.name === name);
    const shared = named.filter((i) => i.shared);
    return shared.length > 0 ? shared : named;
  }

  /** Refuses a local script or playbook taking a shared one's name: tasks find them by name. */
  private async checkName(type: ContentType, name: string): Promise<void> {
    if (!NAMED_TYPES.has(type)) return;
    const taken = (await this.list({ type, shared: true })).find((i) => i.name === name);
    if (taken)
      throw new ConflictError(
        'ERR_CONTENT_NAME_TAKEN',
        `name: the shared ${type} ${taken.id} is named "${name}"; playbooks find ${type}s by name, so pick another`,
        { field: 'name' },
      );
  }

  async createLocal(
    c: { type: ContentType; name: string; body: string; labels?: string[] },
    by: string,
  ): Promise<TenantContentItem> {
    await this.checkName(c.type, c.name);
    const now = new Date().toISOString();
    const item: TenantContentItem = {
      id: `loc_${randomBytes(6).toString('hex')}`,
      type: c.type,
      name: c.name,
      body: c.body,
      labels: c.labels ?? [],
      version: 1,
      shared: false,
      created: now,
      updated: now,
      createdBy: by,
    };
    await this.changing(item.id, () => this.items.put(item.id, item));
    return item;
  }

  /** Refuses shared items whoever asks: they change only when main pushes a new version. */
  private async local(id: string): Promise<TenantContentItem> {
    const i = await this.get(id);
    if (i.shared)
      throw new AccessDeniedError(
        'ERR_CONTENT_SHARED_READONLY',
        `content item ${id} is shared by main and read-only in this tenant; change it on main`,
      );
    return i;
  }

  async updateLocal(
    id: string,
    patch: { name?: string; body?: string; labels?: string[] },
  ): Promise<TenantContentItem> {
    const i = await this.local(id);
    if (patch.name !== undefined && patch.name !== i.name) await this.checkName(i.type, patch.name);
    const next: TenantContentItem = {
      ...i,
      name: patch.name ?? i.name,
      body: patch.body ?? i.body,
      labels: patch.labels ?? i.labels,
      version: i.version + 1,
      updated: new Date().toISOString(),
    };
    await this.changing(id, () => this.items.put(id, next));
    return next;
  }

  async deleteLocal(id: string): Promise<{ id: string; deleted: true }> {
    await this.local(id);
    await this.changing(id, () => this.items.del(id));
    return { id, deleted: true };
  }

  /** Main's push: creates or replaces the shared item; an older version never overwrites a newer one. */
  async putShared(id: string, p: SharedContentPush): Promise<TenantContentItem> {
    const prev = await this.items.get(id);
    const now = new Date().toISOString();
    if (prev?.shared && prev.version > p.version) return prev;
    const body =
      p.type === 'connection' && this.sharedConnections ? await this.sharedConnections.accept(id, p) : p.body;
    const item: TenantContentItem = {
      id,
      type: p.type,
      name: p.name,
      body,
      labels: p.labels,
      version: p.version,
      shared: true,
      created: prev?.created ?? now,
      updated: now,
      createdBy: 'main',
    };
    await this.changing(id, () => this.items.put(id, item));
    if (item.type === 'role' || prev?.type === 'role') await this.onSharedRoleChange?.();
    return item;
  }

  /** Main's un-share; idempotent, so a retried removal after a lost answer still succeeds. */
  async deleteShared(id: string): Promise<{ id: string; deleted: boolean }> {
    const prev = await this.items.get(id);
    if (!prev) return { id, deleted: false };
    await this.changing(id, () => this.items.del(id));
    if (prev.type === 'role') await this.onSharedRoleChange?.();
    if (prev.type === 'connection') await this.sharedConnections?.remove(id);
    return { id, deleted: true };
  }
}
