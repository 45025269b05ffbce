/**
 * The measurement loops of the tunnel benchmark (bench/tunnel.ts): a warm-up per path, then rounds that
 * interleave the paths (order rotated) for bulk upload, bulk download and round trips, with the CPU each
 * path's processes use during its bulk samples. Reads the benchmark's knobs (PALISADE_BENCH_TUNNEL_MB,
 * PALISADE_BENCH_TUNNEL_ROUNDS, PALISADE_BENCH_RTT_N). Not how the paths are set up (bench/tunnel.ts,
 * bench/tunnel-baselines.ts) nor the figures made of the samples (bench/tunnel-report.ts).
 */
import { cpuNow } from './tunnel-cpu.js';
import { download, pingPong, upload, type Ports } from './tunnel-traffic.js';
import { deadline, ms, percentile, rotated } from './bench-util.js';

const BYTES = Number(process.env.PALISADE_BENCH_TUNNEL_MB ?? 256) * 1024 * 1024;
export const PINGS = Number(process.env.PALISADE_BENCH_RTT_N ?? 2000);
/**
 * Five rounds, as loopback throughput on a 2-vCPU VM swings ±30% from one sample to the next (where the
 * scheduler puts client, tenant and engine): the median of five is what a figure can rest on.
 */
export const ROUNDS = Number(process.env.PALISADE_BENCH_TUNNEL_ROUNDS ?? 5);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1)
  throw new Error(
    `PALISADE_BENCH_TUNNEL_ROUNDS must be a whole number ≥ 1, not "${process.env.PALISADE_BENCH_TUNNEL_ROUNDS}"`,
  );
/** A round trip this slow on loopback is a Nagle / delayed-ACK stall (40 ms on Linux), not noise. */
export const SPIKE_MS = 30;
/** Generous (≥ 2 MB/s): a path that stalls fails the run instead of hanging it. */
const SAMPLE_DEADLINE_MS = 60_000 + BYTES / 2_000;

/** One way from the benchmark's client to the target servers, and the processes it runs through, by role. */
export interface Path {
  name: string;
  ports: Ports;
  pids(): Record<string, number[]>;
}
/** A path's samples over every round, and its CPU ms per role (with `bulkMs`, the time they were taken in). */
export interface Stats {
  up: number[];
  down: number[];
  p50: number[];
  p99: number[];
  spikes: number;
  cpu: Record<string, number>;
  bulkMs: number;
}

/** MB/s counts 10^6 bytes. */
export const mb = (x: number) => `${x.toFixed(0)} MB/s`;

async function bulk(p: Path, st: Stats, run: () => Promise<number>): Promise<number> {
  const pids = p.pids(),
    before = cpuNow(pids),
    t0 = performance.now();
  const mbps = await deadline(run(), SAMPLE_DEADLINE_MS, `${p.name} bulk sample`);
  st.bulkMs += performance.now() - t0;
  for (const [role, v] of Object.entries(cpuNow(pids))) st.cpu[role] = (st.cpu[role] ?? 0) + v - before[role];
  return mbps;
}

export async function measure(paths: Path[]): Promise<Map<string, Stats>> {
  const stats = new Map(
    paths.map((p) => [p.name, { up: [], down: [], p50: [], p99: [], spikes: 0, cpu: {}, bulkMs: 0 } as Stats]),
  );
  // Warm-up, not recorded: one full-size sample each way per path (JIT, socket buffers, the long-lived
  // engine connection's autotuned windows, allocator and heap sizes). A tunnel runs for months; what
  // P1 compares is steady state (a fresh deployment's first GB through the tunnel measured up to ~30% slower).
  for (const p of paths) {
    await upload(p.ports.sink, BYTES);
    await download(p.ports.source, BYTES);
    await pingPong(p.ports.echo, 200);
  }
  for (let r = 0; r < ROUNDS; r++) {
    const order = rotated(paths, r);
    for (const p of order) {
      const st = stats.get(p.name)!;
      st.up.push(await bulk(p, st, () => upload(p.ports.sink, BYTES)));
    }
    for (const p of order) {
      const st = stats.get(p.name)!;
      st.down.push(await bulk(p, st, () => download(p.ports.source, BYTES)));
    }
    for (const p of order) {
      const st = stats.get(p.name)!;
      const t = await deadline(pingPong(p.ports.echo, PINGS), 120_000, `${p.name} round trips`);
      st.p50.push(percentile(t, 50));
      st.p99.push(percentile(t, 99));
      st.spikes += t.filter((x) => x >= SPIKE_MS).length;
    }
    const latest = (p: Path) => {
      const st = stats.get(p.name)!;
      return `${p.name} ↑${mb(st.up.at(-1)!)} ↓${mb(st.down.at(-1)!)} p50 ${ms(st.p50.at(-1)!)}`;
    };
    process.stderr.write(`  round ${r + 1}/${ROUNDS}: ${order.map(latest).join(' · ')}\n`);
  }
  for (const [name, st] of stats) {
    const share = Object.entries(st.cpu)
      .map(([role, v]) => `${role} ${Math.round((100 * v) / st.bulkMs)}%`)
      .join(', ');
    process.stderr.write(`  ${name}: CPU during bulk samples (100% = one core): ${share}\n`);
  }
  return stats;
}
