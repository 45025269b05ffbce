/**
 * Content propagation (docs/content.md): `share` makes the latest published version of an item the one every
 * tenant whose labels match (or every tenant, for label `all`) should hold; `unshare` makes it none.
 * Each tenant is then reconciled towards that target by a signed push through main's relay into the
 * tenant's `/api/v1/content/shared/:id` — as CONTENT_PROPAGATION_CALLER, the one identity a tenant
 * accepts there (common/content.ts). A tenant that cannot be reached keeps a failed/out-of-date record
 * and catches up when it is running again (TenantService.onTenantChange) or at the next sweep. A new
 * tenant gets its roles before its creation is answered (onTenantCreated), the rest of its content just after.
 *
 * A playbook's share records what it uses (playbook-dependencies.ts) and pushes each of those first, so a tenant
 * never holds a playbook before its dependencies; which version each tenant should hold is share-targets.ts, and the
 * status (computed, not stored) share-status.ts. Nothing of a tenant's own data passes through here.
 */
import { errorMessage, PalisadeError } from '#common/errors.js';
import { CONTENT_PROPAGATION_CALLER, type SharedContentPush, type ContentType } from '#common/content.js';
import type { Logger } from '#common/logging.js';
import type { ContentItemRecord, ContentShareRecord, TenantRecord } from '../registry.js';
import type { TenantService } from '../tenants/tenants.js';
import { dependencyNote, shareDependencies, shareReason } from './dependency-rules.js';
import { ContentLibrary, type Actor } from './library.js';
import { connectionPushBody, connectionShareScope } from './connection-rules.js';
import { inactiveSitesLine, inactiveSitesOf, shareStatus, type ShareStatus } from './share-status.js';
import { ShareTargets } from './share-targets.js';

/** One push waits this long for its tenant; a fan-out runs all tenants at once, so a share takes about this at most. */
const PUSH_TIMEOUT_MS = 15_000;
/** Failed and out-of-date tenants are retried this often even without a "back to running" report. */
const SWEEP_INTERVAL_MS = 30_000;

const SYSTEM_ACTOR = 'system:content';

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
        sharing: {
          version,
          at: new Date().toISOString(),
          by: actor.id,
          labels: item.labels,
          // Tenants a write command shared it to by name stay: a share by labels adds to them.
          ...(item.sharing?.tenants?.length ? { tenants: item.sharing.tenants } : {}),
          ...(await shareDependencies(this.lib, item, version)),
          ...(item.type === 'connection'
            ? { scope: connectionShareScope((await this.lib.version(id, version)).body) }
            : {}),
        },
      };
      await this.lib.registry.content.put(id, next);
      const tenants = await this.tenantRecords();
      const matched = tenants.filter((t) => ShareTargets.own(next, t) !== null).map((t) => t.name);
      const targets = await ShareTargets.load(this.lib.registry);
      // Tenants that get it anyway, as a dependency of a shared playbook they hold: the log says so.
      const through = tenants
        .filter((t) => !matched.includes(t.name) && targets.target(next, t) !== null)
        .map((t) => t.name);
      await this.lib.log(id, {
        action: 'share',
        actor: actor.id,
        outcome: 'ok',
        version,
        reason: shareReason(next, matched, through),
      });
      const outcomes = await Promise.all(tenants.map((t) => this.reconcileTree(next, t, actor.id, true, targets)));
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

  /**
   * Shares the item's latest published version to these tenants by name, besides the labels it is shared by, if it
   * is (the `list:share` and `playbook:publish` write commands): every tenant is reconciled as a share does, and
   * each named tenant's outcome is answered on its own (null: it holds that version; else why not).
   */
  shareTo(
    id: string,
    names: readonly string[],
    actor: Actor,
  ): Promise<{ version: number; outcomes: { tenant: string; failed: string | null }[] }> {
    return this.lib.serial(id, async () => {
      const item = await this.lib.find(id);
      const version = this.lib.publishedVersion(item);
      const tenants = await this.tenantRecords();
      const chosen = tenants.filter((t) => names.includes(t.name));
      const kept = (item.sharing?.tenants ?? []).filter((x) => !chosen.some((t) => t.name === x.name));
      const next: ContentItemRecord = {
        ...item,
        sharing: {
          version,
          at: new Date().toISOString(),
          by: actor.id,
          // Not shared yet: to the named tenants only, whatever its labels say.
          labels: item.sharing ? (item.sharing.labels ?? item.labels) : [],
          tenants: [...kept, ...chosen.map((t) => ({ name: t.name, createdAt: t.createdAt }))],
          ...(await shareDependencies(this.lib, item, version)),
        },
      };
      await this.lib.registry.content.put(id, next);
      const note = dependencyNote(next);
      const to = `to ${chosen.map((t) => t.name).join(', ')} by name`;
      await this.lib.log(id, { action: 'share', actor: actor.id, outcome: 'ok', version, reason: to + note });
      const targets = await ShareTargets.load(this.lib.registry);
      const done = await Promise.all(tenants.map((t) => this.reconcileTree(next, t, actor.id, true, targets)));
      const outcomes = await Promise.all(
        chosen.map(async (t) => {
          if (done[tenants.indexOf(t)] !== 'failed') return { tenant: t.name, failed: null };
          return { tenant: t.name, failed: (await this.shareOf(id, t))?.reason ?? 'the push failed' };
        }),
      );
      return { version, outcomes };
    });
  }

  unshare(id: string, actor: Actor): Promise<ShareStatus> {
    return this.lib.serial(id, async () => {
      const item = await this.lib.find(id);
      const next: ContentItemRecord = { ...item, sharing: null };
      await this.lib.registry.content.put(id, next);
      await this.lib.log(id, { action: 'unshare', actor: actor.id, outcome: 'ok' });
      const tenants = await this.tenantRecords();
      const targets = await ShareTargets.load(this.lib.registry);
      const outcomes = await Promise.all(tenants.map((t) => this.reconcile(next, t, actor.id, false, targets)));
      // Then what it took with it, unless another share still wants it there (the playbook first: see reconcileTree).
      for (const dep of item.sharing?.dependencies ?? [])
        for (const t of tenants)
          await this.lib.serial(dep.id, async () => {
            const fresh = await this.lib.registry.content.get(dep.id);
            if (fresh) await this.reconcile(fresh, t, actor.id, false, targets);
          });
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
      // One snapshot for the pass: it only lets a settled item be skipped cheaply (reconcile re-reads before acting).
      const targets = await ShareTargets.load(this.lib.registry);
      for await (const item of this.lib.registry.content.values()) {
        if (only && !only(item)) continue;
        await this.lib.serial(item.id, async () => {
          if (!this.closed) await this.reconcileFresh(item.id, tenant, SYSTEM_ACTOR, targets);
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

  /** Reconciles one item on one tenant as the registry holds them now; call it in the item's serial order. */
  private async reconcileFresh(id: string, tenant: string, actor: string, targets?: ShareTargets): Promise<void> {
    const item = await this.lib.registry.content.get(id);
    const t = this.tenants.peek(tenant);
    if (item && t)
      await this.reconcileTree(item, t, actor, false, targets ?? (await ShareTargets.load(this.lib.registry)));
  }

  /**
   * Reconciles a playbook shared to this tenant after what it uses, each dependency in its own serial order, so a
   * tenant never holds a playbook before its dependencies: while one is missing, the playbook is held back (the
   * tenant keeps what it had) and its record names the dependency. Any other item: reconcile.
   */
  private async reconcileTree(
    item: ContentItemRecord,
    t: TenantRecord,
    actor: string,
    force: boolean,
    targets: ShareTargets,
  ): Promise<'ok' | 'failed' | 'skipped'> {
    const own = ShareTargets.own(item, t);
    const deps = item.sharing?.dependencies ?? [];
    if (own === null || (deps.length === 0 && !item.sharing?.problems?.length))
      return this.reconcile(item, t, actor, force, targets);
    const missing = [...(item.sharing?.problems ?? [])];
    for (const dep of deps) {
      // The list is transitive, so each dependency is reconciled alone: one level of serial order, never a chain.
      const why = await this.lib.serial(dep.id, async () => {
        const fresh = await this.lib.registry.content.get(dep.id);
        if (fresh) await this.reconcile(fresh, t, actor, false, targets);
        const rec = await this.shareOf(dep.id, t);
        if (rec?.state === 'shared' && (rec.version ?? 0) >= dep.version) return null;
        return `missing dependency ${dep.type} "${dep.name}" v${dep.version}: ${rec?.reason ?? 'not pushed'}`;
      });
      if (why) missing.push(why);
    }
    if (missing.length === 0) return this.reconcile(item, t, actor, force, targets);
    const rec = await this.shareOf(item.id, t);
    const target = targets.target(item, t) ?? own;
    if (rec?.state === 'shared' && rec.version === target) return 'failed'; // it holds it; status names what is missing
    await this.recordFailure(item, t, target, rec, actor, missing.join('; '));
    return 'failed';
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
    targets: ShareTargets,
  ): Promise<'ok' | 'failed' | 'skipped'> {
    const key = `${item.id}!${t.name}`;
    const rec = await this.shareOf(item.id, t);
    const settled = (target: number | null) =>
      target === null ? !rec : !force && rec?.state === 'shared' && rec.version === target;
    if (settled(targets.target(item, t))) return 'skipped';
    // About to push or remove: ask the library as it is now, so a snapshot older than a concurrent share of a
    // playbook using this item can neither remove it nor push an older version over the one that share pushed.
    const target = (await ShareTargets.load(this.lib.registry)).target(item, t);
    if (settled(target)) return 'skipped';
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
    // A connection: this tenant's own sealed copy only, and its region (region-scoped items apply to it).
    const own = item.type === 'connection' ? connectionPushBody(v.name, item.id, v.body, t.name) : { body: v.body };
    const payload: SharedContentPush = {
      type: item.type as ContentType,
      name: v.name,
      body: 'body' in own ? own.body : '',
      version: target,
      labels: item.labels,
      ...(item.type === 'connection' ? { region: t.region ?? null } : {}),
    };
    const answer: { body?: Buffer } = {};
    const why =
      'why' in own
        ? own.why
        : await this.call(t.name, 'PUT', `/api/v1/content/shared/${item.id}`, JSON.stringify(payload), answer);
    const at = new Date().toISOString();
    if (why === null) {
      const inactive = inactiveSitesOf(answer.body);
      await this.lib.registry.contentShares.put(key, {
        item: item.id,
        tenant: t.name,
        state: 'shared',
        version: target,
        target,
        at,
        tenantCreatedAt: t.createdAt,
        ...(inactive.length ? { inactiveSites: inactive } : {}),
      });
      await this.lib.log(item.id, {
        action: 'push',
        actor,
        outcome: 'ok',
        tenant: t.name,
        version: target,
        ...(inactive.length ? { reason: inactiveSitesLine(t.name, inactive) } : {}),
      });
      return 'ok';
    }
    await this.recordFailure(item, t, target, rec, actor, why);
    return 'failed';
  }

  private async recordFailure(
    item: ContentItemRecord,
    t: TenantRecord,
    target: number,
    rec: ContentShareRecord | undefined,
    actor: string,
    why: string,
  ): Promise<void> {
    const key = `${item.id}!${t.name}`;
    const at = new Date().toISOString();
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
  private async call(
    tenant: string,
    method: string,
    path: string,
    body?: string,
    answer?: { body?: Buffer },
  ): Promise<string | null> {
    try {
      const r = await this.tenants.relay(tenant, {
        method,
        path,
        body,
        user: CONTENT_PROPAGATION_CALLER,
        timeoutMs: PUSH_TIMEOUT_MS,
      });
      if (answer) answer.body = r.body;
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
    return shareStatus(item, {
      tenants: await this.tenantRecords(),
      targets: await ShareTargets.load(this.lib.registry),
      shareOf: (id, t) => this.shareOf(id, t),
      inflight: this.inflight,
      log: await this.lib.readLog(item.id),
    });
  }
}
