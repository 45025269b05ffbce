/**
 * The figures of the tunnel benchmark (bench/tunnel.ts) from its samples: P1 throughput each way against
 * ssh -L and raw TCP, P2 round trip p50/p99 and what the tunnel adds over raw TCP, and the count of
 * Nagle-sized stalls. Medians of the rounds; a skipped ssh -L baseline gives rows that say so. Formatting
 * only: the samples come from bench/tunnel-rounds.ts.
 */
import { median, ms, type BenchRow } from './bench-util.js';
import { mb, PINGS, ROUNDS, SPIKE_MS, type Stats } from './tunnel-rounds.js';
import { PING_SIZE } from './tunnel-traffic.js';

export function rows(s: Map<string, Stats>, sshSkipped?: string): BenchRow[] {
  const tun = s.get('tunnel')!,
    raw = s.get('raw TCP')!,
    ssh = s.get('ssh -L');
  const out: BenchRow[] = [];
  for (const [dir, key] of [
    ['upload', 'up'],
    ['download', 'down'],
  ] as const) {
    const t = median(tun[key]);
    out.push(
      ssh
        ? {
            figure: `P1 tunnel ${dir} vs ssh -L`,
            value: mb(t),
            baseline: `ssh -L aes128-gcm ${mb(median(ssh[key]))}`,
            ratio: t / median(ssh[key]),
            target: '≥ 1.0×',
          }
        : {
            figure: `P1 tunnel ${dir} vs ssh -L`,
            value: mb(t),
            baseline: `skipped: ${sshSkipped}`,
            ratio: NaN,
            target: '≥ 1.0×',
          },
    );
    out.push({
      figure: `P1 tunnel ${dir} vs raw TCP`,
      value: mb(t),
      baseline: `raw TCP ${mb(median(raw[key]))}`,
      ratio: t / median(raw[key]),
      target: '≥ 0.5× (issue)',
    });
  }
  // Added latency: what each path costs over a raw loopback round trip.
  const added = (st: Stats, key: 'p50' | 'p99') =>
    `${ms(median(st[key]))} (+${ms(median(st[key]) - median(raw[key]))})`;
  for (const [key, target] of [
    ['p50', '≤ 1.0×'],
    ['p99', '≤ 1.2×'],
  ] as const) {
    out.push({
      figure: `P2 tunnel ${PING_SIZE} B round trip ${key} (+ over raw TCP)`,
      value: added(tun, key),
      baseline: ssh ? `ssh -L ${added(ssh, key)}` : `skipped: ${sshSkipped}`,
      ratio: ssh ? median(tun[key]) / median(ssh[key]) : NaN,
      target,
    });
  }
  // The form of the latency target: what the tunnel adds over raw TCP, against what ssh -L adds.
  const over = (st: Stats) => median(st.p50) - median(raw.p50);
  out.push({
    figure: `P2 added round trip p50 (over raw TCP)`,
    value: `+${ms(over(tun))}`,
    baseline: ssh ? `ssh -L +${ms(over(ssh))}` : `skipped: ${sshSkipped}`,
    ratio: ssh && over(ssh) > 0 ? over(tun) / over(ssh) : NaN,
    target: '≤ 2× (issue)',
  });
  out.push({
    figure: `P2 round trips ≥ ${SPIKE_MS} ms (Nagle)`,
    value: `${tun.spikes} of ${ROUNDS * PINGS}`,
    baseline: ssh ? `ssh -L ${ssh.spikes}, raw TCP ${raw.spikes}` : `raw TCP ${raw.spikes}`,
    ratio: NaN,
    target: '0',
  });
  return out;
}
