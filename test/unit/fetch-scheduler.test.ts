/**
 * When instances fetch (agent/tenant/fetch-scheduler.ts), with fake timers and a fetcher that records its
 * calls: a new instance fetches at once, then every interval; one restarted before its interval passed waits
 * for it, one past it fetches at once; a failed fetch is tried again next interval, but one whose engine or
 * group is not there yet after 15 s, 30 s, 60 s… up to the interval, with the next attempt's time shown;
 * "fetch now" joins a fetch under way, but never a removed instance's; close waits for that one too; a removed
 * instance stops; intervals are bounded. No I/O.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { silentLogger } from '#common/logging.js';
import { FetchScheduler, fetchIntervalMs, isUnavailable } from '../../agent/tenant/fetch-scheduler.js';
import type { FetchState, IncidentFetcher } from '../../agent/tenant/incident-fetch.js';
import type { IntegrationInstance, IntegrationStore } from '../../agent/tenant/integration-store.js';

const instance = (name: string, fetchInterval = '1m'): IntegrationInstance => ({
  name,
  integration: 'http',
  connection: 'svc',
  runOn: 'tenant',
  fetchIncidents: true,
  fetchInterval,
  createdAt: '2026-01-01T00:00:00.000Z',
  createdBy: 'test',
});

/**
 * A fetcher whose fetches take `takesMs` and fail while `failing` (with `failCode`, if set); `calls` lists the
 * instance of each.
 */
function fakeFetcher(last: Record<string, string> = {}) {
  const f = {
    calls: [] as string[],
    failing: false,
    failCode: undefined as string | undefined,
    takesMs: 0,
    state: async (name: string) =>
      last[name] ? ({ lastFetchAt: last[name], outcome: 'ok', created: 0, pending: 0 } as FetchState) : undefined,
    fetchOnce: async (name: string): Promise<FetchState> => {
      f.calls.push(name);
      if (f.takesMs) await new Promise((r) => setTimeout(r, f.takesMs));
      const lastFetchAt = new Date().toISOString();
      if (!f.failing) return { lastFetchAt, outcome: 'ok', created: 0, pending: 0 };
      const error = f.failCode ? { error: { code: f.failCode, message: 'not there' } } : {};
      return { lastFetchAt, outcome: 'failed', created: 0, pending: 0, ...error };
    },
  };
  return f;
}
const store = (list: IntegrationInstance[]) => ({ list: async () => list }) as unknown as IntegrationStore;
const scheduler = (f: ReturnType<typeof fakeFetcher>, list: IntegrationInstance[] = []) =>
  new FetchScheduler(f as unknown as IncidentFetcher, store(list), silentLogger());

beforeEach(() => {
  vi.useFakeTimers({ now: Date.parse('2026-12-06T12:00:00.000Z') });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('FetchScheduler', () => {
  it('fetches a new instance at once, then every interval, failed or not', async () => {
    const f = fakeFetcher();
    const s = scheduler(f);
    await s.add(instance('a'));
    await vi.advanceTimersByTimeAsync(0);
    expect(f.calls).toEqual(['a']);
    f.failing = true;
    await vi.advanceTimersByTimeAsync(59_999);
    expect(f.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(f.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(f.calls).toHaveLength(3);
    await s.close();
  });

  it('after a restart, waits out the interval since the last fetch, or fetches at once when it has passed', async () => {
    const f = fakeFetcher({ fresh: '2026-12-06T11:59:30.000Z', stale: '2026-12-06T11:50:00.000Z' });
    const s = scheduler(f, [instance('fresh'), instance('stale'), { ...instance('off'), fetchIncidents: false }]);
    await s.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(f.calls).toEqual(['stale']);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(f.calls).toEqual(['stale', 'fresh']);
    await s.close();
  });

  it('retries a fetch whose engine is not there yet at 15 s, 30 s, 60 s… up to the interval, showing when', async () => {
    const f = fakeFetcher();
    f.failing = true;
    f.failCode = 'ERR_ENGINE_OFFLINE';
    const s = scheduler(f);
    const t0 = Date.now();
    await s.add(instance('a', '2m'));
    await vi.advanceTimersByTimeAsync(0);
    expect(f.calls).toHaveLength(1);
    expect(s.nextFetchAt('a')).toBe(new Date(t0 + 15_000).toISOString());
    // Each step: one ms short of the retry nothing runs; at it, one fetch.
    for (const [k, wait] of [15_000, 30_000, 60_000, 120_000, 120_000].entries()) {
      await vi.advanceTimersByTimeAsync(wait - 1);
      expect(f.calls, `retry ${k}`).toHaveLength(k + 1);
      await vi.advanceTimersByTimeAsync(1);
      expect(f.calls, `retry ${k}`).toHaveLength(k + 2);
    }
    // Through at last: back to the interval, and a later outage starts again at 15 s.
    f.failing = false;
    await vi.advanceTimersByTimeAsync(120_000);
    expect(f.calls).toHaveLength(7);
    expect(s.nextFetchAt('a')).toBe(new Date(Date.now() + 120_000).toISOString());
    f.failing = true;
    f.failCode = 'ERR_ENGINE_GROUP_UNKNOWN';
    await vi.advanceTimersByTimeAsync(120_000 + 15_000);
    expect(f.calls).toHaveLength(9);
    await s.close();
  });

  it('after a restart in the middle of retrying, retries 15 s after the last failure, not a whole interval', async () => {
    const f = fakeFetcher();
    f.state = async () => ({
      lastFetchAt: '2026-12-06T11:59:55.000Z',
      outcome: 'failed',
      created: 0,
      pending: 0,
      error: { code: 'ERR_ENGINE_GROUP_OFFLINE', message: 'not there' },
    });
    const s = scheduler(f, [instance('a', '1h')]);
    await s.start();
    expect(s.nextFetchAt('a')).toBe('2026-12-06T12:00:10.000Z');
    await vi.advanceTimersByTimeAsync(9_999);
    expect(f.calls).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(f.calls).toEqual(['a']);
    await s.close();
  });

  it('retries soon only where the engine or group is not there: other failures wait the interval', async () => {
    for (const code of ['ERR_NO_ENGINE', 'ERR_ENGINE_OFFLINE', 'ERR_ENGINE_GROUP_OFFLINE', 'ERR_ENGINE_GROUP_UNKNOWN'])
      expect(isUnavailable(code), code).toBe(true);
    for (const code of ['ERR_INTEGRATION_FETCH_ITEMS', 'ERR_INTEGRATION_HTTP_UNREACHABLE', 'ERR_INTERNAL', undefined])
      expect(isUnavailable(code), code).toBe(false);
    const f = fakeFetcher();
    f.failing = true;
    f.failCode = 'ERR_INTEGRATION_FETCH_ITEMS';
    const s = scheduler(f);
    await s.add(instance('a', '2m'));
    await vi.advanceTimersByTimeAsync(119_999);
    expect(f.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(f.calls).toHaveLength(2);
    await s.close();
  });

  it('"fetch now" joins a fetch under way instead of starting a second', async () => {
    const f = fakeFetcher();
    f.takesMs = 1_000;
    const s = scheduler(f);
    const one = s.fetchNow('a');
    const two = s.fetchNow('a');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await one).toBe(await two);
    expect(f.calls).toEqual(['a']);
    await s.close();
  });

  it("never joins a removed instance's fetch under way; close still waits for it", async () => {
    const f = fakeFetcher();
    f.takesMs = 1_000;
    const s = scheduler(f);
    const old = s.fetchNow('a');
    await vi.advanceTimersByTimeAsync(500);
    s.remove('a'); // removed, then re-created under its name
    const fresh = s.fetchNow('a');
    expect(fresh).not.toBe(old);
    await vi.advanceTimersByTimeAsync(600); // the old fetch has ended; the new one runs on
    expect(s.fetchNow('a')).toBe(fresh);
    expect(f.calls).toEqual(['a', 'a']);
    s.remove('a');
    let closed = false;
    const closing = s.close().then(() => (closed = true));
    await vi.advanceTimersByTimeAsync(300);
    expect(closed).toBe(false);
    await vi.advanceTimersByTimeAsync(100);
    await closing;
    expect(closed).toBe(true);
  });

  it('stops fetching a removed instance, and everything at close', async () => {
    const f = fakeFetcher();
    const s = scheduler(f);
    await s.add(instance('a'));
    await s.add(instance('b'));
    await vi.advanceTimersByTimeAsync(0);
    s.remove('a');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(f.calls.sort()).toEqual(['a', 'b', 'b']);
    await s.close();
    await vi.advanceTimersByTimeAsync(600_000);
    expect(f.calls).toHaveLength(3);
  });

  it('keeps intervals from 30s to 24h, naming fetchInterval', () => {
    expect(fetchIntervalMs('30s')).toBe(30_000);
    expect(fetchIntervalMs('24h')).toBe(86_400_000);
    for (const bad of ['29s', '25h', '0', 'soon'])
      expect(() => fetchIntervalMs(bad)).toThrow(expect.objectContaining({ field: 'fetchInterval' }));
  });
});
