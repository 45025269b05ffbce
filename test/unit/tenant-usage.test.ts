/**
 * The host's figures of a tenant's CPU, memory and events from what the tenant reports over IPC
 * (agent/host/tenant-usage.ts): CPU as percent of one core between two reports (since start at the first),
 * RSS and event counts as reported, and nothing shown for a tenant that stopped reporting.
 */
import { describe, expect, it } from 'vitest';
import { TenantUsage, cpuPercent } from '../../agent/host/tenant-usage.js';
import { USAGE_REPORT_MS } from '../../agent/tenant-ipc.js';

describe('tenant usage from its reports', () => {
  it('gives percent of one core: a second of CPU time in one second is one full core', () => {
    expect(cpuPercent(1_000_000, 1)).toBe(100);
    expect(cpuPercent(250_000, 10)).toBe(2.5);
    expect(cpuPercent(3_000_000, 1.5)).toBe(200); // two cores busy
    expect(cpuPercent(10, 0)).toBe(0);
  });

  it('measures the first report since the start, later ones against the report before', () => {
    let now = 1_000_000;
    const u = new TenantUsage(() => now);
    u.record(42, { cpuMicros: 2_000_000, uptimeMs: 20_000, rssBytes: 50 << 20 });
    expect(u.sample([42]).get(42)).toEqual({ cpuPercent: 10, rssBytes: 50 << 20, events: null });
    now += USAGE_REPORT_MS;
    const events = { stored: 1200, perSecond: 12.5 };
    u.record(42, { cpuMicros: 2_000_000 + USAGE_REPORT_MS * 500, uptimeMs: 25_000, rssBytes: 60 << 20, events });
    expect(u.sample([42]).get(42)).toEqual({ cpuPercent: 50, rssBytes: 60 << 20, events });
  });

  it('shows nothing for a process that has not reported lately, or never', () => {
    let now = 0;
    const u = new TenantUsage(() => now);
    u.record(7, { cpuMicros: 0, uptimeMs: 1000, rssBytes: 1 << 20, events: { stored: 5, perSecond: 1 } });
    now += 3 * USAGE_REPORT_MS;
    expect(u.sample([7]).get(7)).toMatchObject({ rssBytes: 1 << 20, events: { stored: 5, perSecond: 1 } });
    now += 1;
    const unknown = { cpuPercent: null, rssBytes: null, events: null };
    expect(u.sample([7, 8])).toEqual(
      new Map([
        [7, unknown],
        [8, unknown],
      ]),
    );
  });

  it('forgets a process once it is no longer asked about: a reused pid starts afresh', () => {
    let now = 0;
    const u = new TenantUsage(() => now);
    u.record(9, { cpuMicros: 5_000_000, uptimeMs: 10_000, rssBytes: 1 });
    u.sample([]);
    now += 1000;
    u.record(9, { cpuMicros: 100_000, uptimeMs: 1000, rssBytes: 1 });
    expect(u.sample([9]).get(9)?.cpuPercent).toBe(10);
  });
});
