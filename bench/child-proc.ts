/**
 * Child processes for the benchmarks that measure a server on its own (bench/agents-1000): start with a
 * ready line, stop with SIGTERM, read RSS and CPU time from /proc, and the open-file limit they inherit.
 * Linux only (/proc), like the machines the figures of docs/benchmarks.md are measured on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Resident set size of a process, KiB (VmRSS). */
export function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

/** CPU time (user + system, ms) a process has used; /proc counts in clock ticks of 10 ms. */
export function cpuMs(pid: number): number {
  return statCpuMs(`/proc/${pid}/stat`);
}

/** CPU ms used so far by one thread of a process: its main thread unless `tid` is given. */
export function threadCpuMs(pid: number, tid = pid): number {
  return statCpuMs(`/proc/${pid}/task/${tid}/stat`);
}

function statCpuMs(path: string): number {
  const f = readFileSync(path, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** This process's soft and hard limits on open files (children inherit them). */
export function fdLimits(): { soft: number; hard: number } {
  const m = /Max open files\s+(\S+)\s+(\S+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  const n = (s: string | undefined) => (s === undefined ? 1024 : s === 'unlimited' ? Infinity : Number(s));
  return { soft: n(m?.[1]), hard: n(m?.[2]) };
}

export interface Started {
  child: ChildProcess;
  match: RegExpMatchArray;
  startMs: number;
}

/** Children still running: killed if the benchmark process ends early (an error, Ctrl-C), so none outlive it. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(130));

/**
 * Spawns `node args…` and resolves once its output matches `ready` (with the time that took), or rejects at the
 * deadline.
 */
export function startProcess(args: string[], ready: RegExp, timeoutMs = 60_000): Promise<Started> {
  return new Promise((resolve, reject) => {
    // BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles main and the baselines.
    const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const t0 = performance.now();
    const child = spawn(process.execPath, [...nodeArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args.join(' ')} not ready within ${timeoutMs} ms: ${out}`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      if (out.length < 100_000) out += d;
      const m = out.match(ready);
      if (m) {
        clearTimeout(timer);
        resolve({ child, match: m, startMs: performance.now() - t0 });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (c) => {
      live.delete(child);
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited ${c}: ${out}`));
    });
  });
}

/** SIGTERM and wait for the exit (SIGKILL after the deadline); resolves with the ms it took. */
export async function stopProcess(child: ChildProcess, timeoutMs = 30_000): Promise<number> {
  if (child.exitCode !== null || child.signalCode !== null) return 0;
  const t0 = performance.now();
  await new Promise<void>((r) => {
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(t);
      r();
    });
    child.kill('SIGTERM');
  });
  return performance.now() - t0;
}
