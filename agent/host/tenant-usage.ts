/**
 * What each tenant process uses, as its host measures it from outside: CPU (percent of one core, like
 * `top`) and resident memory, read from /proc/PID/stat and /proc/PID/status. The host reads these itself
 * rather than asking the tenant: a busy or hung tenant is exactly the one whose own answer would be late,
 * and a figure the tenant reports about itself is one it could get wrong. Linux only: elsewhere both are
 * null. Not here: limits (tenant-process.ts sets the heap limit), nor the host's own figures (sysinfo.ts).
 */
import { readFile } from 'node:fs/promises';

/**
 * /proc counts CPU time in USER_HZ ticks, which the kernel fixes at 100 for user space on every
 * architecture Palisade runs on (x86-64, arm64), whatever its internal HZ.
 */
const USER_HZ = 100;
/** Two samples closer than this give a percentage mostly made of rounding: the previous figure stands. */
const MIN_SAMPLE_MS = 1000;

export interface Usage {
  /** Percent of one core since the previous sample (or since the process started, at its first). */
  cpuPercent: number | null;
  rssBytes: number | null;
}

/** CPU ticks (user + system) and start time (ticks after boot) from /proc/PID/stat, or undefined. */
export function parseProcStat(text: string): { ticks: number; startTicks: number } | undefined {
  // The command name (field 2) is in parentheses and may hold spaces or ')': fields count from the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const [utime, stime, start] = [rest[11], rest[12], rest[19]].map(Number);
  if (![utime, stime, start].every(Number.isFinite)) return undefined;
  return { ticks: utime + stime, startTicks: start };
}

/** Resident set size in bytes from /proc/PID/status (its `VmRSS: N kB` line), or undefined. */
export function parseVmRss(text: string): number | undefined {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(text);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** CPU percent between two samples of one process: ticks used over the wall time between them. */
export function cpuPercent(ticks: number, seconds: number): number {
  return seconds > 0 ? Math.round((ticks / USER_HZ / seconds) * 1000) / 10 : 0;
}

/** Samples the tenant processes' usage; remembers each pid's last sample for the next delta. */
export class TenantUsage {
  private readonly last = new Map<number, { ticks: number; atMs: number; cpu: number }>();

  /** The usage of each pid given (null figures for one that cannot be read, e.g. gone meanwhile). */
  async sample(pids: readonly number[]): Promise<Map<number, Usage>> {
    const out = new Map<number, Usage>();
    await Promise.all(pids.map(async (pid) => out.set(pid, await this.one(pid))));
    for (const pid of this.last.keys()) if (!out.has(pid)) this.last.delete(pid); // processes gone
    return out;
  }

  private async one(pid: number): Promise<Usage> {
    const [stat, status, uptime] = await Promise.all(
      [`/proc/${pid}/stat`, `/proc/${pid}/status`, '/proc/uptime'].map((p) => readFile(p, 'utf8').catch(() => '')),
    );
    const now = Date.now();
    const s = parseProcStat(stat);
    const rssBytes = parseVmRss(status) ?? null;
    if (!s) return { cpuPercent: null, rssBytes };
    const prev = this.last.get(pid);
    let cpu: number;
    if (prev && now - prev.atMs < MIN_SAMPLE_MS) return { cpuPercent: prev.cpu, rssBytes };
    if (prev) cpu = cpuPercent(s.ticks - prev.ticks, (now - prev.atMs) / 1000);
    else cpu = cpuPercent(s.ticks, Number(uptime.split(' ')[0]) - s.startTicks / USER_HZ);
    this.last.set(pid, { ticks: s.ticks, atMs: now, cpu });
    return { cpuPercent: cpu, rssBytes };
  }
}
