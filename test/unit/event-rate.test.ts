/**
 * A tenant's event rate (agent/tenant/events/event-rate.ts): the count its pipeline stored, and per second over
 * about the last 10 s from the samples its usage reports take (every USAGE_REPORT_MS); never negative, 0 at rest.
 * And the IPC check a host applies to the figures in a tenant's usage report.
 */
import { describe, expect, it } from 'vitest';
import { EventRate, RATE_WINDOW_MS } from '../../agent/tenant/events/event-rate.js';
import { USAGE_REPORT_MS, checkTenantMessage } from '../../agent/tenant-ipc.js';

describe('the event rate', () => {
  it('is 0 with nothing stored, and the rate over the window once events are', () => {
    let now = 1_000_000;
    let stored = 0;
    const r = new EventRate(
      () => stored,
      () => now,
    );
    expect(r.sample()).toEqual({ stored: 0, perSecond: 0 }); // no time has passed
    now += USAGE_REPORT_MS;
    expect(r.sample()).toEqual({ stored: 0, perSecond: 0 });
    stored = 250;
    now += USAGE_REPORT_MS;
    expect(r.sample()).toEqual({ stored: 250, perSecond: 25 }); // 250 over the 10 s since the first sample
    stored = 400;
    now += USAGE_REPORT_MS;
    expect(r.sample()).toEqual({ stored: 400, perSecond: 40 }); // since the sample 10 s ago (0)
    now += USAGE_REPORT_MS;
    expect(r.sample()).toEqual({ stored: 400, perSecond: 15 }); // 150 over the last 10 s
    now += USAGE_REPORT_MS;
    expect(r.sample()).toEqual({ stored: 400, perSecond: 0 }); // quiet for a whole window
  });

  it('measures over about RATE_WINDOW_MS whatever the sampling, with one decimal', () => {
    let now = 0;
    let stored = 0;
    const r = new EventRate(
      () => stored,
      () => now,
    );
    for (let i = 1; i <= 60; i++) {
      now += 1000;
      stored += i <= 30 ? 7 : 0;
      const f = r.sample();
      if (i >= 10 && i <= 30) expect(f.perSecond).toBe(7);
      if (i >= 40) expect(f.perSecond).toBe(0);
    }
    now += 3000;
    stored += 13;
    expect(r.sample().perSecond).toBe(1.3); // 13 over the 10 s back to the newest sample at least that old
    expect(RATE_WINDOW_MS).toBe(10_000);
  });

  it('counts from where the pipeline stood when the rate was made', () => {
    let now = 0;
    let stored = 5000;
    const r = new EventRate(
      () => stored,
      () => now,
    );
    now += 2000;
    stored += 10;
    expect(r.sample()).toEqual({ stored: 5010, perSecond: 5 });
  });
});

describe("a host's check of a usage report", () => {
  const check = (m: Record<string, unknown>) =>
    checkTenantMessage({ type: 'usage', cpuMicros: 1, uptimeMs: 1, rssBytes: 1, ...m });

  it('takes a report without events (a tenant without a pipeline) or with well-formed ones', () => {
    expect(check({})).toBeDefined();
    expect(check({ events: { stored: 3, perSecond: 0.5 } })).toMatchObject({ events: { stored: 3, perSecond: 0.5 } });
  });

  it('drops a report whose events are malformed', () => {
    const bad = [null, 5, { stored: -1, perSecond: 0 }, { stored: 1.5, perSecond: 0 }, { stored: 1 }];
    for (const events of [...bad, { stored: 1, perSecond: Infinity }, { stored: 1, perSecond: -2 }])
      expect(check({ events }), JSON.stringify(events)).toBeUndefined();
  });
});
