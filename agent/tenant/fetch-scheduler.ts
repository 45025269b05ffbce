/**
 * When a tenant's instances fetch incidents: each instance created with fetchIncidents fetches every
 * fetchInterval, one fetch at a time per instance; "fetch now" (POST …/:inst/fetch) joins a fetch under way
 * instead of starting a second. After a restart or a move, an instance whose interval has passed since its
 * last recorded fetch fetches at once, else when it is due. A scheduled fetch that failed because where it
 * runs is not there yet (an engine or group without a session, as after a restart, until the engines dial
 * back in) is tried again soon, 15 s then doubling up to the interval (after a restart, 15 s after that
 * failure); any other failure is tried again next interval. Nothing here throws into a timer. A removed
 * instance's timer and its fetch under way are dropped (that fetch writes nothing: incident-fetch.ts), so a
 * re-created one neither waits for nor joins it.
 * Not what one fetch does (incident-fetch.ts).
 */
import { BadParameterError } from '#common/errors.js';
import { parseDuration } from '#common/duration.js';
import { ERROR_CODES, isErrorCode } from '#common/error-codes.js';
import type { Logger } from '#common/logging.js';
import type { FetchState, IncidentFetcher } from './incident-fetch.js';
import type { IntegrationInstance, IntegrationStore } from './integration-store.js';

/** 30 s: a source polled more often is better served by pushing; 24 h: a fetch a day still catches up. */
export const MIN_FETCH_INTERVAL_MS = 30_000;
export const MAX_FETCH_INTERVAL_MS = 86_400_000;
export const DEFAULT_FETCH_INTERVAL = '5m';
/**
 * First retry of a fetch that found its engine or group unavailable: an engine dials back within seconds of
 * a tenant's restart (its reconnect backoff caps at 30 s), so 15 s, 30 s, 60 s… catches it without waiting
 * the interval (up to 24 h). No jitter: these are a tenant's own few instances against its own sessions,
 * not a herd, and `show` can then name the exact time of the next attempt.
 */
export const UNAVAILABLE_RETRY_MS = 15_000;

/**
 * Failures that say where the instance runs is not there yet: the unavailable category (no engine, engine
 * or group offline) and a group no engine of which has dialled in since the tenant started.
 */
export function isUnavailable(code: string | undefined): boolean {
  if (code === 'ERR_ENGINE_GROUP_UNKNOWN') return true;
  return code !== undefined && isErrorCode(code) && ERROR_CODES[code].category === 'unavailable';
}

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
  /** When each timer fires (ms since the epoch), for `show`. */
  private readonly due = new Map<string, number>();
  /** Unavailable failures in a row, per instance: the retry's exponent. */
  private readonly retries = new Map<string, number>();
  /** The fetch "fetch now" joins, per instance. */
  private readonly running = new Map<string, Promise<FetchState>>();
  /** Every fetch under way, removed instances' included: close waits for all of them. */
  private readonly underway = new Set<Promise<unknown>>();
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

  /**
   * Schedules an instance: due now if it never fetched or its interval has passed; one whose last fetch found
   * its engine or group unavailable (a restart in the middle of retrying) is due a first retry after it.
   */
  async add(i: IntegrationInstance): Promise<void> {
    const every = fetchIntervalMs(i.fetchInterval ?? DEFAULT_FETCH_INTERVAL);
    const last = await this.fetcher.state(i.name);
    const since = last ? Date.now() - Date.parse(last.lastFetchAt) : Infinity;
    const wait = last?.outcome === 'failed' && isUnavailable(last.error?.code) ? UNAVAILABLE_RETRY_MS : every;
    this.arm(i.name, Math.max(0, Math.min(every, wait) - since), every);
  }

  /** Stops an instance's fetching: its timer, and its fetch under way for anyone who would join it. */
  remove(name: string): void {
    this.disarm(name);
    this.retries.delete(name);
    this.running.delete(name);
  }

  /** When the instance fetches next (ISO 8601), if it is scheduled. */
  nextFetchAt(name: string): string | undefined {
    const at = this.due.get(name);
    return at === undefined ? undefined : new Date(at).toISOString();
  }

  /** Fetches now, or joins the fetch under way. */
  fetchNow(name: string): Promise<FetchState> {
    let run = this.running.get(name);
    if (!run) {
      run = this.fetcher.fetchOnce(name).finally(() => {
        // A removed instance's run may end after a re-created one's started: leave that one in place.
        if (this.running.get(name) === run) this.running.delete(name);
        this.underway.delete(run!);
      });
      this.running.set(name, run);
      this.underway.add(run);
    }
    return run;
  }

  /** Stops scheduling and waits for fetches under way, so the store closes after their writes. */
  async close(): Promise<void> {
    this.closed = true;
    for (const name of [...this.timers.keys()]) this.remove(name);
    await Promise.allSettled([...this.underway]);
  }

  private disarm(name: string): void {
    clearTimeout(this.timers.get(name));
    this.timers.delete(name);
    this.due.delete(name);
  }

  private arm(name: string, delayMs: number, everyMs: number): void {
    this.disarm(name);
    if (this.closed) return;
    const timer = setTimeout(() => {
      this.due.delete(name); // under way now; due again once it ends
      this.fetchNow(name)
        .then(
          (state) => this.delayAfter(name, state, everyMs),
          (e: unknown) => {
            this.log.warn({ instance: name, err: e }, 'scheduled fetch not run');
            return everyMs;
          },
        )
        .then((next) => {
          if (this.timers.get(name) === timer) this.arm(name, next, everyMs);
        });
    }, delayMs);
    timer.unref();
    this.timers.set(name, timer);
    this.due.set(name, Date.now() + delayMs);
  }

  /** The interval, or after an unavailable failure the next retry's delay (never longer than the interval). */
  private delayAfter(name: string, state: FetchState, everyMs: number): number {
    if (state.outcome !== 'failed' || !isUnavailable(state.error?.code)) {
      this.retries.delete(name);
      return everyMs;
    }
    const n = this.retries.get(name) ?? 0;
    this.retries.set(name, n + 1);
    return Math.min(everyMs, UNAVAILABLE_RETRY_MS * 2 ** Math.min(n, 20));
  }
}
