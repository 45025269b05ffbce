/**
 * The tenant's event rate as its host, main and the console's overview see it: how many events its pipeline stored
 * since the process started, and how many per second over about the last RATE_WINDOW_MS. Sampled when the tenant
 * reports its usage to its host (tenant-main.ts, every USAGE_REPORT_MS), so it costs one subtraction per report and
 * nothing per event. Numbers only: no event, source or sender leaves the tenant this way. Not the per-engine counts
 * (tunnels/engine-events.ts), which only the tenant's own API shows.
 */
import type { EventFigures } from '../../tenant-ipc.js';

/** The rate is the change over this long: long enough to smooth engines' batching (one batch a second or so). */
export const RATE_WINDOW_MS = 10_000;

export class EventRate {
  /** Oldest first; the first is the newest sample at least RATE_WINDOW_MS old (or the oldest there is). */
  private readonly samples: { at: number; stored: number }[];

  constructor(
    private readonly count: () => number,
    private readonly now: () => number = Date.now,
  ) {
    this.samples = [{ at: now(), stored: count() }];
  }

  /** The count now, and the rate since the base sample (per second, one decimal). */
  sample(): EventFigures {
    const at = this.now();
    const stored = this.count();
    this.samples.push({ at, stored });
    while (this.samples.length > 2 && at - this.samples[1]!.at >= RATE_WINDOW_MS) this.samples.shift();
    const base = this.samples[0]!;
    const seconds = (at - base.at) / 1000;
    const perSecond = seconds > 0 ? Math.round((Math.max(0, stored - base.stored) / seconds) * 10) / 10 : 0;
    return { stored, perSecond };
  }
}
