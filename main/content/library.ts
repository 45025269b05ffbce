/**
 * The content library on main (docs/content.md): playbooks, scripts, integrations, lists, incident types,
 * automation rules and roles, each with numbered versions. An edit makes a new version; publishing marks
 * the latest one publishable; only a published version is ever shared (propagation.ts pushes it).
 * Every change is audited. Changes to one item are serialised, so a share never reads a half-made edit.
 */
import { randomBytes } from 'node:crypto';
import { ConflictError, NotFoundError, isPalisadeError } from '#common/errors.js';
import type { ContentType } from '#common/content.js';
import {
  padId,
  type ContentItemRecord,
  type ContentLogRecord,
  type ContentVersionRecord,
  type Registry,
} from '../registry.js';
import type { AuditLog } from '../access/audit.js';

export interface ContentView {
  id: string;
  type: string;
  name: string;
  labels: string[];
  version: number;
  published: number | null;
  shared: boolean;
  sharedVersion: number | null;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
}
export interface VersionView {
  version: number;
  name: string;
  body: string;
  createdAt: string;
  createdBy: string;
  published: boolean;
  publishedAt: string | null;
}
export interface Actor {
  id: string;
  remote?: string;
}

/**
 * Rules of item types that mean more than text (roles: roles.ts; integrations: integration-rules.ts; playbooks:
 * playbook-rules.ts).
 * `check` runs before an item is created or edited and `publishing` before a version is published; each
 * throws a 4xx to refuse, so nothing is stored; `changed` hears of every stored change (create, edit,
 * publish) before the caller is answered.
 */
export interface ContentRules {
  check?(c: { type: string; name?: string; body?: string }, prev?: ContentItemRecord): Promise<void>;
  /** Answers what the publisher should hear but that does not stop it (`warnings` of the answer), if anything. */
  publishing?(item: ContentItemRecord, body: string): Promise<string[] | void>;
  changed?(item: ContentItemRecord): Promise<void>;
}

/** The sharing log shown in a status keeps its newest entries. */
const LOG_SHOWN = 500;

export class ContentLibrary {
  private readonly chains = new Map<string, Promise<unknown>>();
  private logSeq = 0;

  constructor(
    readonly registry: Registry,
    readonly audit: AuditLog,
    private readonly rules: readonly ContentRules[] = [],
  ) {}

  private async checkRules(c: { type: string; name?: string; body?: string }, prev?: ContentItemRecord) {
    for (const r of this.rules) await r.check?.(c, prev);
  }

  private async changedRules(item: ContentItemRecord) {
    for (const r of this.rules) await r.changed?.(item);
  }

  /** Runs `fn` after every earlier operation on this item has finished. */
  serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(id) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.chains.set(id, tail);
    void tail.then(() => {
      if (this.chains.get(id) === tail) this.chains.delete(id);
    });
    return run;
  }

  static view(i: ContentItemRecord): ContentView {
    return {
      id: i.id,
      type: i.type,
      name: i.name,
      labels: i.labels,
      version: i.latest,
      published: i.published,
      shared: i.sharing !== null,
      sharedVersion: i.sharing?.version ?? null,
      createdAt: i.createdAt,
      createdBy: i.createdBy,
      updatedAt: i.updatedAt,
    };
  }

  async find(id: string): Promise<ContentItemRecord> {
    const i = await this.registry.content.get(id);
    if (!i)
      throw new NotFoundError(
        'ERR_CONTENT_NOT_FOUND',
        `no content item "${id}"; list them with 'palisade content list'`,
        { field: 'id' },
      );
    return i;
  }

  async list(f: { type?: string; label?: string } = {}): Promise<ContentView[]> {
    const out: ContentView[] = [];
    for await (const i of this.registry.content.values()) {
      if (f.type && i.type !== f.type) continue;
      if (f.label && !i.labels.includes(f.label)) continue;
      out.push(ContentLibrary.view(i));
    }
    return out;
  }

  async versions(id: string): Promise<VersionView[]> {
    const out: VersionView[] = [];
    for await (const v of this.registry.contentVersions.values({ gt: `${id}!`, lt: `${id}!\uffff` })) {
      out.push({
        version: v.version,
        name: v.name,
        body: v.body,
        createdAt: v.createdAt,
        createdBy: v.createdBy,
        published: !!v.publishedAt,
        publishedAt: v.publishedAt ?? null,
      });
    }
    return out;
  }

  async version(id: string, version: number): Promise<ContentVersionRecord> {
    const v = await this.registry.contentVersions.get(`${id}!${padId(version)}`);
    if (!v)
      throw new NotFoundError('ERR_CONTENT_VERSION_NOT_FOUND', `content item "${id}" has no version ${version}`, {
        field: 'version',
      });
    return v;
  }

  /** Creates of one type run one at a time, so a type's rules (a role's unique name) see every earlier create. */
  create(
    c: { type: ContentType; name: string; body: string; labels: string[] },
    actor: Actor,
  ): Promise<ContentView & { versions: VersionView[] }> {
    return this.serial(`new!${c.type}`, () => this.createNow(c, actor));
  }

  private async createNow(
    c: { type: ContentType; name: string; body: string; labels: string[] },
    actor: Actor,
  ): Promise<ContentView & { versions: VersionView[] }> {
    await this.checkRules(c);
    const now = new Date().toISOString();
    const item: ContentItemRecord = {
      id: `cnt_${randomBytes(6).toString('hex')}`,
      type: c.type,
      name: c.name,
      labels: [...new Set(c.labels)],
      latest: 1,
      published: null,
      sharing: null,
      createdAt: now,
      createdBy: actor.id,
      updatedAt: now,
    };
    const v: ContentVersionRecord = {
      id: item.id,
      version: 1,
      name: c.name,
      body: c.body,
      createdAt: now,
      createdBy: actor.id,
    };
    await this.registry.db.batch([
      { type: 'put', sublevel: this.registry.content, key: item.id, value: item },
      { type: 'put', sublevel: this.registry.contentVersions, key: `${item.id}!${padId(1)}`, value: v },
    ] as never);
    await this.log(item.id, { action: 'create', actor: actor.id, outcome: 'ok', version: 1 });
    await this.audit.record({
      actor: actor.id,
      action: 'content.create',
      target: item.id,
      outcome: 'ok',
      remote: actor.remote,
      detail: { type: c.type, name: c.name, labels: item.labels },
    });
    if (c.type === 'role')
      await this.audit.record({
        actor: actor.id,
        action: 'role.create',
        target: item.id,
        outcome: 'ok',
        remote: actor.remote,
        detail: { name: c.name, body: c.body },
      });
    await this.changedRules(item);
    return { ...ContentLibrary.view(item), versions: await this.versions(item.id) };
  }

  /** A new version with the changed name/body (the previous one's where not given); labels change in place. */
  update(id: string, patch: { name?: string; body?: string; labels?: string[] }, actor: Actor): Promise<ContentView> {
    return this.serial(id, async () => {
      const item = await this.find(id);
      await this.checkRules({ type: item.type, ...patch }, item);
      const prev = await this.version(id, item.latest);
      const now = new Date().toISOString();
      const version = item.latest + 1;
      const next: ContentItemRecord = {
        ...item,
        name: patch.name ?? item.name,
        labels: patch.labels ? [...new Set(patch.labels)] : item.labels,
        latest: version,
        updatedAt: now,
      };
      const v: ContentVersionRecord = {
        id,
        version,
        name: next.name,
        body: patch.body ?? prev.body,
        createdAt: now,
        createdBy: actor.id,
      };
      await this.registry.db.batch([
        { type: 'put', sublevel: this.registry.content, key: id, value: next },
        { type: 'put', sublevel: this.registry.contentVersions, key: `${id}!${padId(version)}`, value: v },
      ] as never);
      await this.log(id, { action: 'update', actor: actor.id, outcome: 'ok', version });
      await this.audit.record({
        actor: actor.id,
        action: 'content.update',
        target: id,
        outcome: 'ok',
        remote: actor.remote,
        detail: { version, fields: Object.keys(patch) },
      });
      if (item.type === 'role' && patch.body !== undefined)
        await this.audit.record({
          actor: actor.id,
          action: 'role.update',
          target: id,
          outcome: 'ok',
          remote: actor.remote,
          detail: { name: item.name, version, body: patch.body },
        });
      await this.changedRules(next);
      return ContentLibrary.view(next);
    });
  }

  /**
   * Publishes the latest version; publishing it again is a no-op that still answers, with the warnings the
   * rules give now (the rules only read).
   */
  publish(id: string, actor: Actor): Promise<ContentView & { warnings?: string[] }> {
    return this.serial(id, async () => {
      const item = await this.find(id);
      const v = await this.version(id, item.latest);
      if (item.published === item.latest) {
        const again = await this.repeatWarnings(item, v.body);
        return { ...ContentLibrary.view(item), ...(again.length ? { warnings: again } : {}) };
      }
      const warnings: string[] = [];
      for (const r of this.rules) warnings.push(...((await r.publishing?.(item, v.body)) ?? []));
      const now = new Date().toISOString();
      const next: ContentItemRecord = { ...item, published: item.latest, updatedAt: now };
      await this.registry.db.batch([
        { type: 'put', sublevel: this.registry.content, key: id, value: next },
        {
          type: 'put',
          sublevel: this.registry.contentVersions,
          key: `${id}!${padId(v.version)}`,
          value: { ...v, publishedAt: now, publishedBy: actor.id },
        },
      ] as never);
      await this.log(id, { action: 'publish', actor: actor.id, outcome: 'ok', version: item.latest });
      await this.audit.record({
        actor: actor.id,
        action: 'content.publish',
        target: id,
        outcome: 'ok',
        remote: actor.remote,
        detail: { version: item.latest },
      });
      await this.changedRules(next);
      return { ...ContentLibrary.view(next), ...(warnings.length ? { warnings } : {}) };
    });
  }

  /**
   * The warnings of a version published before, as a first publish would give them now. Nothing is refused
   * (it is published already): what a rule would refuse today, e.g. a scope's tenant now unknown, is a warning.
   */
  private async repeatWarnings(item: ContentItemRecord, body: string): Promise<string[]> {
    const warnings: string[] = [];
    for (const r of this.rules) {
      try {
        warnings.push(...((await r.publishing?.(item, body)) ?? []));
      } catch (e) {
        if (!isPalisadeError(e)) throw e;
        warnings.push(e.message);
      }
    }
    return warnings;
  }

  /** The version a share pushes: the latest published one. */
  publishedVersion(item: ContentItemRecord): number {
    if (item.published === null)
      throw new ConflictError(
        'ERR_CONTENT_NOT_PUBLISHED',
        `content item "${item.id}" has no published version; publish it first ('palisade content publish ${item.id}')`,
        { field: 'id' },
      );
    return item.published;
  }

  async log(id: string, e: Omit<ContentLogRecord, 'at'>): Promise<void> {
    const key = `${id}!${Date.now().toString().padStart(15, '0')}!${(this.logSeq++ % 1e6).toString().padStart(6, '0')}`;
    await this.registry.contentLog.put(key, { at: new Date().toISOString(), ...e });
  }

  /** The newest LOG_SHOWN entries of an item's sharing log, oldest first. */
  async readLog(id: string): Promise<ContentLogRecord[]> {
    const out = await this.registry.contentLog
      .values({ gt: `${id}!`, lt: `${id}!\uffff`, reverse: true, limit: LOG_SHOWN })
      .all();
    return out.reverse();
  }
}
