/**
 * Content propagation (docs/content.md): `share` makes the latest published version of an item the one every
 * tenant whose labels match (or every tenant, for label `all`) should hold; `unshare` makes it none.
 * Each tenant is then reconciled towards that target by a signed push through main's relay into the
 * tenant's `/api/v1/content/shared/:id` — as CONTENT_PROPAGATION_CALLER, the one identity a tenant
 * accepts there (common/content.ts). A tenant that cannot be reached keeps a failed/out-of-date record
 * and catches up when it is running again (TenantService.onTenantChange) or at the next sweep. A new
 * tenant gets its roles before its creation is answered (onTenantCreated), the rest of its content just after.
 *
 * Per tenant, a status is computed, not stored: `sharing` while a push is in flight, `shared` when it
 * holds the target and nothing newer is published, `out-of-date` when it holds an older version (or a
 * newer one was published since), `failed` when it holds none and the push failed, else `not-shared`.
 * Nothing of a tenant's own data passes through here.
 */
import { errorMessage, PalisadeError } from '#common/errors.js';
import { CONTENT_PROPAGATION_CALLER, type SharedContentPush, type ContentType } from '#common/content.js';
import type { Logger } from '#common/logging.js';
import type { ContentItemRecord, ContentLogRecord, ContentShareRecord, TenantRecord } from '../registry.js';
import type { TenantService } from '../tenants/tenants.js';
import { ContentLibrary, type Actor } from './library.js';

export type TenantShareState = 'not-shared' | 'sharing' | 'shared' | 'failed' | 'out-of-date';
export type Rollup = 'Successful' | 'Sharing' | 'Incomplete' | 'Not Shared';
export interface TenantShareView {
  tenant: string;
  state: TenantShareState;
  version: number | null;
  target: number | null;
  reason: string | null;
  at: string | null;
}
export interface ShareStatus {
  id: string;
  rollup: Rollup;
  version: number;
  published: number | null;
  sharedVersion: number | null;
  labels: string[];
  tenants: TenantShareView[];
  log: ContentLogRecord[];
}

/** One push waits this long for its tenant; a fan-out runs all tenants at once, so a share takes about this at most. */
const PUSH_TIMEOUT_MS = 15_000;
/** Failed and out-of-date tenants are retried this often even without a "back to running" report. */
const SWEEP_INTERVAL_MS = 30_000;

const SYSTEM_ACTOR = 'system:content';

export function labelsMatch(itemLabels: readonly string[], tenantLabels: readonly string[]): boolean {
  return itemLabels.includes('all') || itemLabels.some((l) => tenantLabels.includes(l));
}

export class ContentPropagation {
  /** `${item}!${tenant}` pushes or removals in flight: what `sharing` means. */
  private readonly inflight = new Set<string>();
  private sweepTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly lib: ContentLibrary,
    private readonly tenants: TenantService,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.tenants.onTenantChange = (name) => void this.catchUp(name);
    // Roles decide what the tenant's users may do from their first request: pushed before `tenant create` answers.
    this.tenants.onTenantCreated = (name) => this.catchUp(name, (i) => i.type === 'role');
    this.sweepTimer = setInterval(() => void this.sweep(), SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
    void this.sweep();
  }

  close(): void {
    this.closed = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.tenants.onTenantChange = undefined;
    this.tenants.onTenantCreated = undefined;
  }

  /** What this tenant should hold of this item: the shared version if the item is shared to it, else nothing. */
  private static target(item: ContentItemRecord, t: TenantRecord): number | null {
    return item.sharing && labelsMatch(item.sharing.labels ?? item.labels, t.labels) ? item.sharing.version : null;
  }

  /**
   * The share record of this tenant, unless it describes an earlier tenant of the same name (removed, then re-created).
   */
  private async shareOf(item: string, t: TenantRecord): Promise<ContentShareRecord | undefined> {
    const rec = await this.lib.registry.contentShares.get(`${item}!${t.name}`);
    return rec && (rec.tenantCreatedAt === undefined || rec.tenantCreatedAt === t.createdAt) ? rec : undefined;
  }

  private async tenantRecords(): Promise<TenantRecord[]> {
    const out: TenantRecord[] = [];
    for (const v of await this.tenants.list()) {
      const r = this.tenants.peek(v.name);
      if (r) out.push(r);
    }
    return out;
  }

  share(id: string, actor: Actor): Promise<ShareStatus> {
    return this.lib.serial(id, async () => {
      const item = await this.lib.find(id);
      const version = this.lib.publishedVersion(item);
      const next: ContentItemRecord = {
        ...item,
        sharing: { version, at: new Date().toISOString(), by: actor.id, labels: item.labels },
      };
      await this.lib.registry.content.put(id, next);
      const tenants = await this.tenantRecords();
      const matched = tenants.filter((t) => ContentPropagation.target(next, t) !== null).map((t) => t.name);
      await this.lib.log(id, {
        action: 'share',
        actor: actor.id,
        outcome: 'ok',
        version,
        reason: matched.length
          ? `to ${matched.join(', ')}`
          : `no tenant has label ${next.labels.join(' or ') || '(none)'}`,
      });
      const outcomes = await Promise.all(tenants.map((t) => this.reconcile(next, t, actor.id, true)));
      const failed = outcomes.filter((o) => o === 'failed').length;
      await this.lib.audit.record({
        actor: actor.id,
        action: 'content.share',
        target: id,
        outcome: failed ? 'failed' : 'ok',
        remote: actor.remote,
        detail: { version, labels: next.labels, tenants: matched, failed },
      });
      return this.statusOf(next);
    });
  }

  unshare(id: string, actor: Actor): Promise<ShareStatus> {
    return this.lib.serial(id, async () => {
      const item = await this.lib.find(id);
      const next: ContentItemRecord = { ...item, sharing: null };
      await this.lib.registry.content.put(id, next);
      await this.lib.log(id, { action: 'unshare', actor: actor.id, outcome: 'ok' });
      const outcomes = await Promise.all(
        (await this.tenantRecords()).map((t) => this.reconcile(next, t, actor.id, false)),
      );
      const failed = outcomes.filter((o) => o === 'failed').length;
      await this.lib.audit.record({
        actor: actor.id,
        action: 'content.unshare',
        target: id,
        outcome: failed ? 'failed' : 'ok',
        remote: actor.remote,
        detail: { failed },
      });
      return this.statusOf(next);
    });
  }

  async status(id: string): Promise<ShareStatus> {
    return this.statusOf(await this.lib.find(id));
  }

  /**
   * Brings one tenant up to what it missed, item by item (each in its item's order of operations); `only` picks items.
   */
  async catchUp(tenant: string, only?: (item: ContentItemRecord) => boolean): Promise<void> {
    if (this.closed) return;
    try {
      for await (const item of this.lib.registry.content.values()) {
        if (only && !only(item)) continue;
        await this.lib.serial(item.id, async () => {
          const fresh = await this.lib.registry.content.get(item.id);
          const t = this.tenants.peek(tenant);
          if (fresh && t && !this.closed) await this.reconcile(fresh, t, SYSTEM_ACTOR, false);
        });
      }
    } catch (e) {
      this.log.warn({ tenant, err: errorMessage(e) }, 'content catch-up failed');
    }
  }

  /** Retries every tenant that is running but does not hold what it should. */
  private async sweep(): Promise<void> {
    if (this.closed) return;
    for (const v of await this.tenants.list().catch(() => [])) if (v.status === 'running') await this.catchUp(v.name);
  }

  /**
   * Moves one tenant towards its target for this item: push the target version, or remove the item.
   * `force` re-pushes even when the tenant already holds the target (an explicit share confirms it).
   */
  private async reconcile(
    item: ContentItemRecord,
    t: TenantRecord,
    actor: string,
    force: boolean,
  ): Promise<'ok' | 'failed' | 'skipped'> {
    const key = `${item.id}!${t.name}`;
    const rec = await this.shareOf(item.id, t);
    const target = ContentPropagation.target(item, t);
    if (target === null && !rec) return 'skipped';
    if (target !== null && !force && rec?.state === 'shared' && rec.version === target) return 'skipped';
    this.inflight.add(key);
    try {
      return target === null ? await this.remove(item, t, rec!, actor) : await this.push(item, t, target, rec, actor);
    } finally {
      this.inflight.delete(key);
    }
  }

  private async push(
    item: ContentItemRecord,
    t: TenantRecord,
    target: number,
    rec: ContentShareRecord | undefined,
    actor: string,
  ): Promise<'ok' | 'failed'> {
    const key = `${item.id}!${t.name}`;
    const v = await this.lib.version(item.id, target);
    const payload: SharedContentPush = {
      type: item.type as ContentType,
      name: v.name,
      body: v.body,
      version: target,
      labels: item.labels,
    };
    const why = await this.call(t.name, 'PUT', `/api/v1/content/shared/${item.id}`, JSON.stringify(payload));
    const at = new Date().toISOString();
    if (why === null) {
      await this.lib.registry.contentShares.put(key, {
        item: item.id,
        tenant: t.name,
        state: 'shared',
        version: target,
        target,
        at,
        tenantCreatedAt: t.createdAt,
      });
      await this.lib.log(item.id, { action: 'push', actor, outcome: 'ok', tenant: t.name, version: target });
      return 'ok';
    }
    // It still holds what it had: an older version makes it out-of-date, none makes it failed.
    const held = rec?.version ?? null;
    await this.lib.registry.contentShares.put(key, {
      item: item.id,
      tenant: t.name,
      state: held === null ? 'failed' : 'out-of-date',
      version: held,
      target,
      reason: why,
      at,
      tenantCreatedAt: t.createdAt,
    });
    await this.lib.log(item.id, {
      action: 'push',
      actor,
      outcome: 'failed',
      tenant: t.name,
      version: target,
      reason: why,
    });
    return 'failed';
  }

  private async remove(
    item: ContentItemRecord,
    t: TenantRecord,
    rec: ContentShareRecord,
    actor: string,
  ): Promise<'ok' | 'failed'> {
    const key = `${item.id}!${t.name}`;
    const why = await this.call(t.name, 'DELETE', `/api/v1/content/shared/${item.id}`);
    if (why === null) {
      await this.lib.registry.contentShares.del(key);
      await this.lib.log(item.id, {
        action: 'remove',
        actor,
        outcome: 'ok',
        tenant: t.name,
        version: rec.version ?? undefined,
      });
      return 'ok';
    }
    await this.lib.registry.contentShares.put(key, {
      ...rec,
      state: 'failed',
      target: null,
      reason: `removal pending: ${why}`,
      at: new Date().toISOString(),
    });
    await this.lib.log(item.id, { action: 'remove', actor, outcome: 'failed', tenant: t.name, reason: why });
    return 'failed';
  }

  /** One signed call into the tenant; null when it succeeded, else why not (a line for the status and log). */
  private async call(tenant: string, method: string, path: string, body?: string): Promise<string | null> {
    try {
      const r = await this.tenants.relay(tenant, {
        method,
        path,
        body,
        user: CONTENT_PROPAGATION_CALLER,
        timeoutMs: PUSH_TIMEOUT_MS,
      });
      if (r.status >= 200 && r.status < 300) return null;
      let msg = `HTTP ${r.status}`;
      try {
        const e = JSON.parse(r.body.toString('utf8')) as { error?: { code?: string; message?: string } };
        if (e.error) msg = `${e.error.code}: ${e.error.message}`;
      } catch {
        /* not JSON */
      }
      return `tenant refused: ${msg}`;
    } catch (e) {
      return e instanceof PalisadeError ? `${e.code}: ${e.message}` : errorMessage(e);
    }
  }

  private async statusOf(item: ContentItemRecord): Promise<ShareStatus> {
    const rows: TenantShareView[] = [];
    let involved = 0,
      done = 0,
      sharing = 0;
    for (const t of await this.tenantRecords()) {
      const rec = await this.shareOf(item.id, t);
      const target = ContentPropagation.target(item, t);
      const row = this.tenantState(item, t.name, target, rec);
      rows.push(row);
      if (target === null && !rec) continue;
      involved++;
      if (row.state === 'sharing') sharing++;
      if (target !== null && row.state === 'shared' && row.version === target) done++;
    }
    const rollup: Rollup =
      involved === 0 ? 'Not Shared' : sharing > 0 ? 'Sharing' : done === involved ? 'Successful' : 'Incomplete';
    return {
      id: item.id,
      rollup,
      version: item.latest,
      published: item.published,
      sharedVersion: item.sharing?.version ?? null,
      labels: item.labels,
      tenants: rows,
      log: await this.lib.readLog(item.id),
    };
  }

  private tenantState(
    item: ContentItemRecord,
    tenant: string,
    target: number | null,
    rec: ContentShareRecord | undefined,
  ): TenantShareView {
    const base = { tenant, target, version: rec?.version ?? null, at: rec?.at ?? null };
    if (this.inflight.has(`${item.id}!${tenant}`)) return { ...base, state: 'sharing', reason: null };
    if (!rec)
      return {
        ...base,
        state: 'not-shared',
        reason: target === null ? null : 'not pushed yet: waiting for the tenant',
      };
    if (rec.state !== 'shared') return { ...base, state: rec.state, reason: rec.reason ?? null };
    if (target === null) return { ...base, state: 'out-of-date', reason: 'no longer shared to it: removal pending' };
    const newest = Math.max(target, item.published ?? 0);
    if ((rec.version ?? 0) < newest)
      return { ...base, state: 'out-of-date', reason: `holds version ${rec.version}; version ${newest} is published` };
    return { ...base, state: 'shared', reason: null };
  }
}
