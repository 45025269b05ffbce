/**
 * One fetch of an integration instance into incidents: run the definition's fetch command through the
 * IntegrationRunner (so it runs where the instance runs: tenant, engine or group), read the items
 * (fetch-items.ts), keep those whose source id this instance has not fetched before, and create them
 * together with their de-duplication records in one LevelDB batch. The records live in the tenant's own
 * store, so they survive restarts and move with the tenant; a crash between fetch and write loses nothing
 * and duplicates nothing (the next fetch sees the same items, and either both landed or neither did).
 * Records are keyed by the instance's generation (random, set at create), not its name: a removed instance's
 * records are purged in bounded batches (resumed after a restart), and one re-created under the same name
 * starts afresh. A fetch that outlives its instance's removal writes nothing (no incident, record or outcome).
 * Each fetch's outcome is kept per instance for `integrations show`; a failure is recorded and logged once
 * without secrets (codes and our own messages only, never the source's answer). Not when fetches run
 * (fetch-scheduler.ts).
 */
import type { Level } from 'level';
import { BadParameterError, DependencyError, NotFoundError, isPalisadeError } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import { extractItems } from './fetch-items.js';
import type { IntegrationCatalog, ResolvedDefinition } from './integration-catalog.js';
import type { IntegrationRunner } from './integration-runner.js';
import type { IntegrationInstance, IntegrationStore } from './integration-store.js';
import type { Sub, TenantStore } from './store.js';

/**
 * New incidents one fetch creates at most; further new items wait for the next fetch (the source answers
 * them again, and they are new still). 500 keeps one batch well under the incident route's 1 000 and one
 * fetch's write short; the http integration's 256 KiB answer cap bounds a single answer before that.
 */
export const MAX_NEW_PER_FETCH = 500;
/**
 * Records deleted per batch when an instance is removed: its records may number in the hundreds of thousands,
 * and one batch of all of them would hold every key in memory at once.
 */
export const PURGE_BATCH = 1_000;

/** What an instance's records are keyed by; `#` cannot start a name, so a generation never meets a name. */
const recordsOf = (i: IntegrationInstance): string => (i.generation ? `#${i.generation}` : i.name);

export interface FetchState {
  lastFetchAt: string;
  outcome: 'ok' | 'failed';
  /** Incidents this fetch created. */
  created: number;
  /** New items left for the next fetch (beyond MAX_NEW_PER_FETCH). */
  pending: number;
  error?: { code: string; message: string };
}

export class IncidentFetcher {
  /** `#generation \0 sourceId` (an instance created before generations: `name \0 sourceId`) → the incident's id. */
  private readonly fetched: Sub<string>;
  private readonly states: Sub<FetchState>;
  /** Removed instances whose records are still being purged: `recordsOf` → the instance's name (for logs). */
  private readonly purges: Sub<string>;
  /**
   * One write at a time, so two fetches never both find an item new, and a removal's `forget` falls wholly
   * before or after a fetch's write (which then sees the instance gone).
   */
  private chain: Promise<unknown> = Promise.resolve();
  private purging: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly store: TenantStore,
    private readonly instances: IntegrationStore,
    private readonly catalog: IntegrationCatalog,
    private readonly runner: IntegrationRunner,
    private readonly log: Logger,
  ) {
    const db = store.db as Level<string, unknown>;
    this.fetched = db.sublevel<string, string>('fetched', { valueEncoding: 'json' }) as unknown as Sub<string>;
    this.states = db.sublevel<string, FetchState>('fetch-state', {
      valueEncoding: 'json',
    }) as unknown as Sub<FetchState>;
    this.purges = db.sublevel<string, string>('fetch-purge', { valueEncoding: 'json' }) as unknown as Sub<string>;
  }

  /** Resumes the purges a stop or crash interrupted. */
  async start(): Promise<void> {
    for await (const [prefix, name] of this.purges.iterator()) this.purgeLater(prefix, name);
  }

  /** Stops purging between batches (the rest resumes at the next start). */
  async close(): Promise<void> {
    this.closed = true;
    await this.purging;
  }

  state(instance: string): Promise<FetchState | undefined> {
    return this.states.get(instance);
  }

  /**
   * Forgets a removed instance: its last outcome at once, its de-duplication records in the background
   * (a re-created instance has another generation, so it never sees them meanwhile).
   */
  async forget(removed: IntegrationInstance): Promise<void> {
    const prefix = recordsOf(removed);
    await this.serial(() =>
      this.store.db.batch([
        { type: 'del', sublevel: this.states, key: removed.name },
        { type: 'put', sublevel: this.purges, key: prefix, value: removed.name },
      ] as never),
    );
    this.purgeLater(prefix, removed.name);
  }

  /** Resolves when no purge is under way (tests). */
  purged(): Promise<void> {
    return this.purging;
  }

  /**
   * Fetches once and records the outcome. An instance that is gone or does not fetch is the caller's
   * mistake (thrown, not recorded); everything after that is recorded, never thrown.
   */
  async fetchOnce(name: string): Promise<FetchState> {
    const instance = await this.instances.get(name);
    if (!instance.fetchIncidents)
      throw new BadParameterError(
        'ERR_INTEGRATION_FETCH_OFF',
        `instance ${name} does not fetch incidents: re-create it with fetchIncidents`,
        { field: 'name' },
      );
    const lastFetchAt = new Date().toISOString();
    let state: FetchState;
    try {
      state = { lastFetchAt, outcome: 'ok', ...(await this.pull(instance)) };
    } catch (e) {
      const error = isPalisadeError(e)
        ? { code: e.code, message: e.message }
        : { code: 'ERR_INTERNAL', message: 'the fetch failed on a bug; the tenant log has it' };
      state = { lastFetchAt, outcome: 'failed', created: 0, pending: 0, error };
      this.log.warn({ instance: name, code: error.code, ...(isPalisadeError(e) ? {} : { err: e }) }, 'fetch failed');
    }
    const kept = await this.serial(async () => {
      if (!(await this.isCurrent(instance))) return false;
      await this.states.put(name, state);
      return true;
    });
    if (!kept) this.log.info({ instance: name }, 'fetch outlived its instance; outcome dropped');
    return state;
  }

  private async pull(instance: IntegrationInstance): Promise<{ created: number; pending: number }> {
    const def = await this.catalog.resolve(instance.integration);
    if (!def.fetch)
      throw new BadParameterError(
        'ERR_INTEGRATION_FETCH_UNSUPPORTED',
        `${def.name} declares no fetch (its definition says what to call and how to read items)`,
        { field: 'integration' },
      );
    const run = await this.runner.run(instance.name, def.fetch.command, instance.fetchArgs ?? {}, { readOnly: true });
    checkAnswered(def, run.result);
    const items = extractItems(run.result, def.fetch, { instance: instance.name, integration: def.name });
    return this.serial(() => this.createNew(instance, items));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Whether the instance still exists as the same generation (not removed, nor removed and re-created). */
  private async isCurrent(i: IntegrationInstance): Promise<boolean> {
    const now = await this.instances.find(i.name);
    return now !== undefined && now.generation === i.generation;
  }

  private async createNew(
    instance: IntegrationInstance,
    items: ReturnType<typeof extractItems>,
  ): Promise<{ created: number; pending: number }> {
    if (!(await this.isCurrent(instance)))
      throw new NotFoundError('ERR_INTEGRATION_NOT_FOUND', `instance ${instance.name} was removed during its fetch`, {
        field: 'name',
      });
    const prefix = recordsOf(instance);
    const key = (sourceId: string) => `${prefix}\u0000${sourceId}`;
    const known = await this.fetched.getMany(items.map((i) => key(i.sourceId)));
    const fresh = items.filter((_, k) => known[k] === undefined);
    const now = fresh.slice(0, MAX_NEW_PER_FETCH);
    if (now.length > 0)
      await this.store.createIncidents(
        now.map(({ sourceId: _s, ...incident }) => incident),
        (created) =>
          created.map((inc, k) => ({
            sublevel: this.fetched as Sub<unknown>,
            key: key(now[k].sourceId),
            value: inc.id,
          })),
      );
    return { created: now.length, pending: fresh.length - now.length };
  }

  private purgeLater(prefix: string, name: string): void {
    this.purging = this.purging.then(() =>
      this.purge(prefix).catch((e: unknown) => this.log.warn({ instance: name, err: e }, 'fetch records not purged')),
    );
  }

  /** Deletes `prefix`'s records a batch at a time, then its marker; stops between batches once closed. */
  private async purge(prefix: string): Promise<void> {
    const range = { gte: `${prefix}\u0000`, lt: `${prefix}\u0001`, limit: PURGE_BATCH };
    for (;;) {
      if (this.closed) return;
      const keys = await this.fetched.keys(range).all();
      if (keys.length === 0) break;
      await this.fetched.batch(keys.map((key) => ({ type: 'del' as const, key })));
    }
    await this.purges.del(prefix);
  }
}

/** An http source's answer counts only when it succeeded: an error page is not a list of items. */
function checkAnswered(def: ResolvedDefinition, result: unknown): void {
  if (def.connectionType !== 'http') return;
  const status = (result as { status?: unknown } | null)?.status;
  if (typeof status === 'number' && (status < 200 || status > 299))
    throw new DependencyError('ERR_INTEGRATION_FETCH_ITEMS', `the source answered HTTP ${status}, not items`);
}
