/**
 * What each tenant process uses — CPU (percent of one core, like `top`) and resident memory — and how many events
 * it stored (in total and per second), from the figures the process reports about itself over IPC
 * (agent/tenant-ipc.ts `usage`, every USAGE_REPORT_MS).
 * The host cannot measure them from outside: an installed host's unit has ProtectProc=invisible, under which
 * another user's /proc/PID (every tenant's) does not exist for it. What that costs: a figure is the tenant's
 * own, so a tenant could understate it (it is shown to operators, never enforced: tenant-process.ts sets
 * the heap limit); and a hung tenant reports nothing, so a figure older than STALE_AFTER_MS is shown as
 * unknown (null) rather than as the last one. Not here: the host's own figures (sysinfo.ts).
 */
import { USAGE_REPORT_MS, type EventFigures, type UsageReport } from '../tenant-ipc.js';

/** Three missed reports: the tenant is hung or gone, and its last figure no longer says anything. */
const STALE_AFTER_MS = 3 * USAGE_REPORT_MS;

export interface Usage {
  /** Percent of one core between the tenant's last two reports (since it started, at its first). */
  cpuPercent: number | null;
  rssBytes: number | null;
  /** Its events as it counted them (null: not reported lately, or a tenant that does not count them). */
  events: EventFigures | null;
}

const UNKNOWN: Usage = Object.freeze({ cpuPercent: null, rssBytes: null, events: null });

/** CPU percent of one core: `cpuMicros` of CPU time used over `seconds` of wall time. */
export function cpuPercent(cpuMicros: number, seconds: number): number {
  return seconds > 0 ? Math.round((cpuMicros / 1e6 / seconds) * 1000) / 10 : 0;
}

/** Each tenant process's last report, turned into a percentage against the one before it. */
export class TenantUsage {
  private readonly last = new Map<number, { cpuMicros: number; atMs: number; usage: Usage }>();

  constructor(private readonly now: () => number = Date.now) {}

  /** A report of process `pid`: its CPU time since it started `uptimeMs` ago, its RSS and its event counts. */
  record(pid: number, r: UsageReport): void {
    const at = this.now();
    const prev = this.last.get(pid);
    const cpu = prev
      ? cpuPercent(r.cpuMicros - prev.cpuMicros, (at - prev.atMs) / 1000)
      : cpuPercent(r.cpuMicros, r.uptimeMs / 1000);
    const events = r.events ? { stored: r.events.stored, perSecond: r.events.perSecond } : null;
    this.last.set(pid, { cpuMicros: r.cpuMicros, atMs: at, usage: { cpuPercent: cpu, rssBytes: r.rssBytes, events } });
  }

  /** The usage of each pid given (null figures for one that has not reported lately); forgets the others. */
  sample(pids: readonly number[]): Map<number, Usage> {
    const out = new Map<number, Usage>();
    const at = this.now();
    for (const pid of pids) {
      const l = this.last.get(pid);
      out.set(pid, l && at - l.atMs <= STALE_AFTER_MS ? l.usage : { ...UNKNOWN });
    }
    for (const pid of this.last.keys()) if (!out.has(pid)) this.last.delete(pid); // processes gone
    return out;
  }
}
