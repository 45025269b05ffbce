/**
 * The figures of the agents-1000 benchmark (bench/agents-1000.ts): what its rounds measured (admission
 * times, main's RSS and CPU, restart times, resumed sessions, retries; and each baseline server's accept
 * time, memory and CPU per connection), and the rows made of their medians. Formatting only: the rounds
 * that fill these measures are in bench/agents-1000.ts.
 */
import { median, type BenchRow } from './bench-util.js';

/** What each round of the Palisade subject records, one sample per round. */
export const MEASURE_KEYS = [
  'coldMs',
  'coldMainCpu',
  'perAgentKb',
  'idleKb',
  'fullKb',
  'stopMs',
  'startMs',
  'againMs',
  'againMainCpu',
  'againSelfCpu',
  'resumed',
  'retries',
] as const;
export type Measures = Record<(typeof MEASURE_KEYS)[number], number[]>;
export type BaselineKind = 'plain' | 'tls' | 'mtls';
export type Baselines = Record<BaselineKind, { ms: number[]; kb: number[]; cpu: number[] }>;

export function report(n: number, m: Measures, base: Baselines): BenchRow[] {
  const rate = (xs: number[]) => n / (median(xs) / 1000);
  const s = (x: number) => `${(x / 1000).toFixed(2)} s`;
  const kb = (x: number) => `${x.toFixed(1)} KiB`;
  const cpu = (x: number) => `${x.toFixed(2)} ms`;
  const plain = rate(base.plain.ms),
    tlsRate = rate(base.tls.ms),
    mtls = rate(base.mtls.ms);
  const plainKb = median(base.plain.kb),
    mtlsKb = median(base.mtls.kb);
  // What one core of the server could take if the clients were elsewhere (here they share the 2 cores).
  const bound = (cpuMsPerConn: number) => 1000 / cpuMsPerConn;
  const mainBound = bound(median(m.againMainCpu)),
    plainBound = bound(median(base.plain.cpu));
  const back = median(m.stopMs) + median(m.startMs) + median(m.againMs);
  return [
    {
      figure: `admit ${n} agents from cold (mTLS + Hello/Welcome), agents/s`,
      value: `${rate(m.coldMs).toFixed(0)}/s (${s(median(m.coldMs))})`,
      baseline: `plain ws accepts ${plain.toFixed(0)}/s`,
      ratio: rate(m.coldMs) / plain,
      target: '(report)',
    },
    {
      figure: 'cold admission vs ws over mTLS (same full handshakes)',
      value: `${rate(m.coldMs).toFixed(0)}/s`,
      baseline: `ws+mTLS accepts ${mtls.toFixed(0)}/s`,
      ratio: rate(m.coldMs) / mtls,
      target: '(context)',
    },
    {
      figure: 'P6 agents re-admitted/s after main restart (TLS resumption)',
      value: `${rate(m.againMs).toFixed(0)}/s (${s(median(m.againMs))})`,
      baseline: `plain ws accepts ${plain.toFixed(0)}/s`,
      ratio: rate(m.againMs) / plain,
      target: '≥ 0.5×',
    },
    {
      figure: 'P6 re-admission, server-CPU-bound (1 / main CPU per agent)',
      value: `${mainBound.toFixed(0)}/s (${cpu(median(m.againMainCpu))})`,
      baseline: `plain ws server ${plainBound.toFixed(0)}/s (${cpu(median(base.plain.cpu))})`,
      ratio: mainBound / plainBound,
      target: '(context: clients elsewhere)',
    },
    {
      figure: 'TLS resumption: re-admission rate vs cold admission rate',
      value: `${rate(m.againMs).toFixed(0)}/s, ${Math.min(...m.resumed)} of ${n} resumed`,
      baseline: `cold ${rate(m.coldMs).toFixed(0)}/s`,
      ratio: rate(m.againMs) / rate(m.coldMs),
      target: '(context)',
    },
    {
      figure: `all ${n} back after SIGTERM: main stop + start + re-admission`,
      value: `${s(back)} (${s(median(m.stopMs))} + ${s(median(m.startMs))} + ${s(median(m.againMs))})`,
      baseline: '-',
      ratio: Number.NaN,
      target: '(report)',
    },
    {
      figure: 'P6 main memory per connected agent (RSS)',
      value: kb(median(m.perAgentKb)),
      baseline: `plain ws ${kb(plainKb)}/conn`,
      ratio: median(m.perAgentKb) / plainKb,
      target: '≤ 2.5×',
    },
    {
      figure: 'main memory per agent vs ws over mTLS per connection',
      value: kb(median(m.perAgentKb)),
      baseline: `ws+mTLS ${kb(mtlsKb)}/conn`,
      ratio: median(m.perAgentKb) / mtlsKb,
      target: '(context)',
    },
    {
      figure: `main RSS idle → with ${n} agents`,
      value: `${(median(m.idleKb) / 1024).toFixed(1)} → ${(median(m.fullKb) / 1024).toFixed(1)} MiB`,
      baseline: '-',
      ratio: Number.NaN,
      target: '(report)',
    },
    {
      figure: 'main CPU per cold admission',
      value: cpu(median(m.coldMainCpu)),
      baseline: `ws+mTLS server ${cpu(median(base.mtls.cpu))}/accept`,
      ratio: median(m.coldMainCpu) / median(base.mtls.cpu),
      target: '(where time goes)',
    },
    {
      figure: "main CPU per re-admission vs a simulated agent's",
      value: cpu(median(m.againMainCpu)),
      baseline: `sim agent ${cpu(median(m.againSelfCpu))}`,
      ratio: median(m.againMainCpu) / median(m.againSelfCpu),
      target: '(where time goes)',
    },
    {
      figure: 'ws over TLS (server cert only) accepts/s',
      value: `${tlsRate.toFixed(0)}/s (server ${cpu(median(base.tls.cpu))}/accept)`,
      baseline: `plain ws ${plain.toFixed(0)}/s`,
      ratio: tlsRate / plain,
      target: '(context)',
    },
    {
      figure: 'ws over mTLS (client certs verified) accepts/s',
      value: `${mtls.toFixed(0)}/s (server ${cpu(median(base.mtls.cpu))}/accept)`,
      baseline: `plain ws ${plain.toFixed(0)}/s`,
      ratio: mtls / plain,
      target: '(context)',
    },
    {
      figure: 'ws over TLS / mTLS memory per connection',
      value: `${kb(median(base.tls.kb))} / ${kb(mtlsKb)}`,
      baseline: `plain ws ${kb(plainKb)}`,
      ratio: mtlsKb / plainKb,
      target: '(context)',
    },
    {
      figure: 'connection retries (all rounds)',
      value: String(m.retries.reduce((x, y) => x + y, 0)),
      baseline: '-',
      ratio: Number.NaN,
      target: '0',
    },
  ];
}
