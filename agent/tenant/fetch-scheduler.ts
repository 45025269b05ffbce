/**
 * When a tenant's instances fetch incidents: each instance created with fetchIncidents fetches every
 * fetchInterval, one fetch at a time per instance; "fetch now" (POST …/:inst/fetch) joins a fetch under way
 * instead of starting a second. After a restart or a move, an instance whose interval has passed since its
 * last recorded fetch fetches at once, else when it is due. A failed fetch is recorded and tried again next
 * interval: nothing here throws into a timer. Not what one fetch does (incident-fetch.ts).
 */
import { BadParameterError } from '#common/errors.js';
import { parseDuration } from '#common/duration.js';
import type { Logger } from '#common/logging.js';
import type { FetchState, IncidentFetcher } from './incident-fetch.js';
import type { IntegrationInstance, IntegrationStore } from './integration-store.js';

/** 30 s: a source polled more often is better served by pushing; 24 h: a fetch a day still catches up. */
export const MIN_FETCH_INTERVAL_MS = 30_000;
export const MAX_FETCH_INTERVAL_MS = 86_400_000;
export const DEFAULT_FETCH_INTERVAL = '5m';

/** The interval in ms, or a 400 naming fetchInterval. */
export function fetchIntervalMs(text: string): number {
  const ms = parseDuration(text, 'fetchInterval');
  if (ms < MIN_FETCH_INTERVAL_MS || ms > MAX_FETCH_INTERVAL_MS)
    throw new BadParameterError('ERR_BAD_REQUEST', `fetchInterval: must be from 30s to 24h, not ${text}`, {
      field: 'fetchInterval',
    });
  return ms;
}

export class FetchScheduler {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly running = new Map<string, Promise<FetchState>>();
  private closed = false;

  constructor(
    private readonly fetcher: IncidentFetcher,
    private readonly instances: IntegrationStore,
    private readonly log: Logger,
  ) {}

  /** Schedules every fetching instance from its last recorded fetch. */
  async start(): Promise<void> {
    for (const i of await this.instances.list()) {
      if (!i.fetchIncidents) continue;
      // One instance that cannot be scheduled must not keep the tenant from starting, nor the others from fetching.
      await this.add(i).catch((e: unknown) => this.log.warn({ instance: i.name, err: e }, 'fetch not scheduled'));
    }
  }

  /** Schedules an instance: due now if it never fetched or its interval has passed. */
  async add(i: IntegrationInstance): Promise<void> {
    const every = fetchIntervalMs(i.fetchInterval ?? DEFAULT_FETCH_INTERVAL);
    const last = (await this.fetcher.state(i.name))?.lastFetchAt;
    const since = last ? Date.now() - Date.parse(last) : Infinity;
    this.arm(i.name, Math.max(0, every - since), every);
  }

  remove(name: string): void {
    clearTimeout(this.timers.get(name));
    this.timers.delete(name);
  }

  /** Fetches now, or joins the fetch under way. */
  fetchNow(name: string): Promise<FetchState> {
    let run = this.running.get(name);
    if (!run) {
      run = this.fetcher.fetchOnce(name).finally(() => this.running.delete(name));
      this.running.set(name, run);
    }
    return run;
  }

  /** Stops scheduling and waits for fetches under way, so the store closes after their writes. */
  async close(): Promise<void> {
    this.closed = true;
    for (const name of [...this.timers.keys()]) this.remove(name);
    await Promise.allSettled([...this.running.values()]);
  }

  private arm(name: string, delayMs: number, everyMs: number): void {
    this.remove(name);
    if (this.closed) return;
    const timer = setTimeout(() => {
      this.fetchNow(name)
        .catch((e: unknown) => this.log.warn({ instance: name, err: e }, 'scheduled fetch not run'))
        .finally(() => {
          if (this.timers.get(name) === timer) this.arm(name, everyMs, everyMs);
        });
    }, delayMs);
    timer.unref();
    this.timers.set(name, timer);
  }
}
