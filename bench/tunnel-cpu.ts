/**
 * CPU sampling for the tunnel benchmark (bench/tunnel.ts), from Linux /proc: the CPU time each role of a
 * path has used so far (a process with its descendants), and what the rest of the machine did meanwhile,
 * to see which process a path spends its cycles in. Sampling only: the rounds that take the differences
 * and the shares they print are in bench/tunnel-rounds.ts.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { cpuMs } from './child-proc.js';

/** A process and all its descendants (sshd forks per connection; the host runs its tenant as a child). */
export function withDescendants(pid: number): number[] {
  const out = [pid];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean))
        out.push(...withDescendants(Number(c)));
    }
  } catch {
    /* gone */
  }
  return out;
}

/** Busy CPU time of the whole machine (ms, all cores; /proc/stat counts in ticks of 10 ms). */
function machineBusyMs(): number {
  const [user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return (user + nice + system + irq + softirq) * 10;
}

/** CPU ms so far per role, and `rest`: everything else the machine did (kernel, other processes — a
 * concurrent build or test run on a 2-vCPU box skews the multi-process tunnel most, so it is shown). */
export function cpuNow(pids: Record<string, number[]>): Record<string, number> {
  const u = process.cpuUsage();
  const out: Record<string, number> = { bench: (u.user + u.system) / 1000 };
  for (const [role, list] of Object.entries(pids))
    out[role] = list.reduce((sum, p) => {
      try {
        return sum + cpuMs(p);
      } catch {
        return sum;
      }
    }, 0);
  out.rest = machineBusyMs() - Object.values(out).reduce((a, b) => a + b, 0);
  return out;
}
