/**
 * Resident memory of the deployment's processes during a load test: samples each given pid's RSS from /proc
 * every 100 ms and reports, per process, how far it grew above where it started and how far it still drifted
 * up late in the run. Tests bound both to show a process holds a budget (windows, queue caps), not the data
 * that flows through it: the peak includes garbage awaiting collection, which scales with the rate (Node 24
 * relays ~1.8× faster than Node 20 and its peaks doubled), while a queue without bound keeps climbing.
 * Linux only (/proc), like the machines the e2e tests run on; not a benchmark (bench/ measures throughput and RSS).
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
  /**
   * After stop(): per process, the peak of the last third of the samples minus the peak of the first third
   * (MiB). Near zero, or below, once a process holds its budget; a queue without bound makes it climb.
   */
  drift(): Record<K, number>;
}

/** Samples the RSS of each named pid until `stop()`. */
export function watchRss<K extends string>(pids: Record<K, number>): RssWatch<K> {
  const names = Object.keys(pids) as K[];
  const base = Object.fromEntries(names.map((k) => [k, rssMiB(pids[k])])) as Record<K, number>;
  const peak = { ...base };
  const samples = Object.fromEntries(names.map((k) => [k, [] as number[]])) as Record<K, number[]>;
  const sampler = setInterval(() => {
    for (const k of names) {
      const rss = rssMiB(pids[k]);
      samples[k].push(rss);
      peak[k] = Math.max(peak[k], rss);
    }
  }, SAMPLE_EVERY_MS);
  const thirdsDrift = (xs: number[]): number => {
    const n = Math.floor(xs.length / 3);
    return n === 0 ? 0 : Math.max(...xs.slice(-n)) - Math.max(...xs.slice(0, n));
  };
  return {
    drift: () => Object.fromEntries(names.map((k) => [k, thirdsDrift(samples[k])])) as Record<K, number>,
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
