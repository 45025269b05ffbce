/**
 * Resident memory of the deployment's processes during a load test: samples each given pid's RSS from /proc
 * every 100 ms and reports, per process, how far it grew above where it started. Tests bound that growth
 * to show a process holds a budget (windows, queue caps), not the data that flows through it. Linux only
 * (/proc), like the machines the e2e tests run on; not a benchmark (bench/ measures throughput and RSS).
 */
import { readFileSync } from 'node:fs';

/** How often the sampler looks: short enough to see a peak of a burst that lasts a fraction of a second. */
const SAMPLE_EVERY_MS = 100;

/** Resident set size of a process, MiB (VmRSS). */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

export interface RssWatch<K extends string> {
  /** Stops sampling, logs base → peak per process under `label`, and returns each one's growth (MiB). */
  stop(label: string): Record<K, number>;
}

/** Samples the RSS of each named pid until `stop()`. */
export function watchRss<K extends string>(pids: Record<K, number>): RssWatch<K> {
  const names = Object.keys(pids) as K[];
  const base = Object.fromEntries(names.map((k) => [k, rssMiB(pids[k])])) as Record<K, number>;
  const peak = { ...base };
  const sampler = setInterval(() => {
    for (const k of names) peak[k] = Math.max(peak[k], rssMiB(pids[k]));
  }, SAMPLE_EVERY_MS);
  return {
    stop(label) {
      clearInterval(sampler);
      console.log(
        `${label}: RSS MiB base → peak: ${names
          .map((k) => `${k} ${base[k].toFixed(0)} → ${peak[k].toFixed(0)}`)
          .join(', ')}`,
      );
      return Object.fromEntries(names.map((k) => [k, peak[k] - base[k]])) as Record<K, number>;
    },
  };
}
