/**
 * Syslog ingest (issue 19, P10 of docs/benchmarks.md): events per second from a sender on this machine through an
 * engine's TCP listener, the sealed session and the tenant's pipeline (parse, properties, domain tagging on) to
 * stored-and-searchable, against rsyslogd (Debian) receiving the same stream on loopback and writing it to a file
 * (bench/syslog-baseline.ts), in the same run, rounds interleaved, medians. "Stored" is the engine's stored-record
 * count in the tenant's engine list (GET …/api/engines), and the round ends when the last message is found by search.
 * Then as many rounds with the tenant acknowledging each batch once written, not fsynced (`--fsync off`; on by
 * default).
 * UDP at a fixed rate: loss of both. Latency: a paced TCP stream of messages carrying their send time, sampled by
 * polling the tenant's search (so p99 includes up to one poll interval). Needs rsyslog (`apt-get install rsyslog`):
 * without it the baseline is skipped with a message. Not run in CI. Not a test: nothing asserts on time.
 */
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { Deployment } from '../test/harness/deployment.js';
import { freePort, runCli } from '../test/harness/processes.js';
import { median, percentile, type BenchRow } from './bench-util.js';
import { sendTcp, sendUdp, startRsyslog, syntheticLines, until, type Rsyslog } from './syslog-baseline.js';
import { cpuNow, withDescendants } from './tunnel-cpu.js';
import { threadCpuMs } from './child-proc.js';

const N = Number(process.env.PALISADE_BENCH_SYSLOG_N ?? 300_000);
const ROUNDS = 3;
const UDP_N = 20_000;
const UDP_PER_MS = 20;
const LAT_N = 2000;
const LAT_EVERY_MS = 2;
const POLL_MS = 50;
const RUN = randomBytes(3).toString('hex');

interface Events {
  items: { message: string; time: string }[];
  next: string | null;
}

export async function runSyslogIngest(): Promise<BenchRow[]> {
  const rs = await startRsyslog();
  if (!rs) process.stderr.write('syslog-ingest: rsyslogd not installed (apt-get install rsyslog): no baseline\n');
  const d = await Deployment.create();
  try {
    await d.install('host', 'bench-host');
    await d.startAgent('bench-host');
    await d.createTenant('bench', 'bench-host');
    const [tcp, udp] = [await freePort(), await freePort()];
    const flags = ['--syslog', `tcp:127.0.0.1:${tcp}`, '--syslog', `udp:127.0.0.1:${udp}`];
    await d.startEngine('bench-eng', 'bench', { flags });
    await tagging(d);
    const stored = async () => {
      const r = await d.api<{ engines: { name: string; events?: { records: number } }[] }>(
        'GET',
        '/tenants/bench/api/engines',
      );
      return r.body.engines.find((e) => e.name === 'bench-eng')?.events?.records ?? 0;
    };
    const searchable = async (q: string, from: number) => {
      const qs = new URLSearchParams({ q, from: String(from), limit: '1' });
      const r = await d.api<Events>('GET', `/tenants/bench/api/events?${qs}`);
      return r.status === 200 && r.body.items.length > 0;
    };
    const load: number[] = [];
    const rate = { engine: [] as number[], rsyslog: [] as number[], unsynced: [] as number[] };
    /** One round down the engine: events/s from the first send until all N are stored and the last is found. */
    const engineRound = async (lines: string[]): Promise<number> => {
      const before = await stored();
      const t0 = Date.now();
      await sendTcp(tcp, lines);
      const got = await until(async () => (await stored()) - before, N, t0, 30_000);
      if (got.reached < N) throw new Error(`engine over TCP stored ${got.reached} of ${N}: loss`);
      // Stored is not yet searchable for a moment; a minute more means it never will be.
      const deadline = Date.now() + 60_000;
      while (!(await searchable(`seq=${N - 1}`, t0))) {
        if (Date.now() > deadline) throw new Error(`engine over TCP: message seq=${N - 1} stored but not found`);
        await sleep(20);
      }
      return (N / (Date.now() - t0)) * 1000;
    };
    // CPU time per process over the TCP rounds: where an event's cost goes, against rsyslogd's whole cost.
    const pid = (name: string) => d.agents.get(name)!.proc!.child.pid!;
    const pids = () => ({
      main: [d.main!.child.pid!],
      host: [pid('bench-host')],
      tenant: withDescendants(pid('bench-host')).slice(1),
      engine: [pid('bench-eng')],
      rsyslogd: rs ? [rs.pid] : [],
    });
    const cpu: Record<string, number> = {};
    // The tenant's main thread apart: what limits its ingest (LevelDB writes in the thread pool).
    const now = () => {
      const c = cpuNow(pids());
      const tenant = pids().tenant[0];
      c.tenantMain = tenant ? threadCpuMs(tenant) : 0;
      return c;
    };
    const count = async (f: () => Promise<void>) => {
      const before = now();
      await f();
      for (const [k, v] of Object.entries(now())) cpu[k] = (cpu[k] ?? 0) + v - before[k];
    };
    // Round -1 warms up both (the tenant's and engine's JIT, rsyslogd's file and caches): neither rate nor CPU counts.
    for (let r = -1; r < ROUNDS; r++) {
      const lines = syntheticLines(N, `t${RUN}r${r}`);
      const order = r % 2 === 0 ? (['engine', 'rsyslog'] as const) : (['rsyslog', 'engine'] as const);
      const warm = r < 0;
      const measured = (f: () => Promise<void>) => (warm ? f() : count(f));
      for (const who of order) {
        if (!warm) load.push(loadavg()[0]);
        if (who === 'rsyslog') {
          if (!rs) continue;
          await measured(async () => {
            const eps = await rsyslogRound(rs, lines);
            if (!warm) rate.rsyslog.push(eps);
          });
          continue;
        }
        await measured(async () => {
          const eps = await engineRound(lines);
          if (!warm) rate.engine.push(eps);
        });
      }
    }
    const udpLoss = await udpRound(d, rs, udp, stored);
    const lat = await latency(d, tcp);
    // The same rounds with the tenant acknowledging each batch once written, not fsynced (`events settings --fsync
    // off`; on by default: docs/events.md), against the rsyslogd rounds above; last, so that the compactions their
    // writes leave behind fall in no other figure.
    await setFsync(d, false);
    for (let r = 0; r < ROUNDS; r++) rate.unsynced.push(await engineRound(syntheticLines(N, `f${RUN}r${r}`)));
    const eps = (x: number) => `${Math.round(x)} events/s`;
    const base = rs ? median(rate.rsyslog) : NaN;
    const rounds = rate.engine.length;
    /** CPU µs per event of these roles over the engine's rounds (or `per` kinds of round). */
    const perEvent = (role: string, per = 1, roles = [role]) =>
      ((roles.reduce((a, k) => a + (cpu[k] ?? 0), 0) / per / (rounds * N)) * 1000).toFixed(1);
    const la = `load ${median(load).toFixed(1)}`;
    return [
      {
        figure: `syslog TCP ${N} msgs → stored (fsynced)+searchable, tagging on (${la})`,
        value: eps(median(rate.engine)),
        baseline: rs ? `rsyslogd → file ${eps(base)}` : 'rsyslogd not installed',
        ratio: median(rate.engine) / base,
        target: '≥ 1.0×',
      },
      {
        figure: `syslog TCP ${N} msgs, batches not fsynced (events settings --fsync off)`,
        value: eps(median(rate.unsynced)),
        baseline: rs ? `rsyslogd → file ${eps(base)}` : 'rsyslogd not installed',
        ratio: median(rate.unsynced) / base,
        target: '(report)',
      },
      {
        // Both kinds of round count: the sender (bench) runs in both; the others in one kind each.
        figure: `CPU µs per TCP event: engine ${perEvent('engine')}, tenant ${perEvent('tenant')} (main thread ${perEvent(
          'tenantMain',
        )}), main ${perEvent('main')}, host ${perEvent('host')}, sender+polls ${perEvent('bench', 2)}`,
        value: `${perEvent('engine', 1, ['engine', 'tenant', 'main', 'host'])} µs`,
        baseline: rs ? `rsyslogd ${perEvent('rsyslogd')} µs` : '-',
        ratio: NaN,
        target: '(report)',
      },
      {
        figure: `syslog UDP ${UDP_N} msgs at ${UDP_PER_MS}k/s: loss`,
        value: `${udpLoss.engine.toFixed(2)} %`,
        baseline: rs ? `rsyslogd ${udpLoss.rsyslog.toFixed(2)} %` : '-',
        ratio: NaN,
        target: '(report)',
      },
      {
        figure: `syslog send → searchable p99 (${1000 / LAT_EVERY_MS}/s paced, ${POLL_MS} ms polls)`,
        value: `${lat.p99.toFixed(0)} ms`,
        baseline: `p50 ${lat.p50.toFixed(0)} ms`,
        ratio: NaN,
        target: '(report)',
      },
    ];
  } finally {
    await d.stop();
    await rs?.stop();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function tagging(d: Deployment): Promise<void> {
  for (const args of [
    ['properties', 'create', 'user', '--tenant', 'bench', '--regex', 'user=(\\w+)'],
    ['domains', 'create', 'hq', '--tenant', 'bench'],
    ['domains', 'map', 'hq', '--tenant', 'bench', '--property', 'user=u1'],
    ['domains', 'create', 'dc', '--tenant', 'bench'],
    ['domains', 'map', 'dc', '--tenant', 'bench', '--event-collector', 'bench-eng'],
  ]) {
    const r = await runCli(args, d.env);
    if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
}

async function setFsync(d: Deployment, on: boolean): Promise<void> {
  const r = await runCli(['events', 'settings', '--tenant', 'bench', '--fsync', on ? 'on' : 'off'], d.env);
  if (r.code !== 0) throw new Error(`events settings --fsync: ${r.stdout}${r.stderr}`);
}

async function rsyslogRound(rs: Rsyslog, lines: readonly string[]): Promise<number> {
  await rs.reset();
  const t0 = Date.now();
  await sendTcp(rs.tcpPort, lines);
  const got = await until(() => rs.received(), lines.length, t0, 10_000);
  if (got.reached < lines.length) throw new Error(`rsyslogd over TCP wrote ${got.reached} of ${lines.length}`);
  return (lines.length / got.ms) * 1000;
}

async function udpRound(
  d: Deployment,
  rs: Rsyslog | null,
  port: number,
  stored: () => Promise<number>,
): Promise<{ engine: number; rsyslog: number }> {
  const lines = syntheticLines(UDP_N, `u${RUN}`);
  const loss = (got: number) => (100 * (UDP_N - got)) / UDP_N;
  const before = await stored();
  let t0 = Date.now();
  await sendUdp(port, lines, UDP_PER_MS);
  const engine = loss((await until(async () => (await stored()) - before, UDP_N, t0, 5000)).reached);
  if (!rs) return { engine, rsyslog: NaN };
  await rs.reset();
  t0 = Date.now();
  await sendUdp(rs.udpPort, lines, UDP_PER_MS);
  return { engine, rsyslog: loss((await until(() => rs.received(), UDP_N, t0, 3000)).reached) };
}

/** Paced stamped messages over one TCP connection; each one's first sighting in search minus its send time. */
async function latency(d: Deployment, port: number): Promise<{ p50: number; p99: number }> {
  const tag = `lat${RUN}`;
  const sentAt = new Map<number, number>();
  const seen = new Map<number, number>();
  let sending = true;
  let last = Date.now();
  // As an analyst would: the window since the stream began, not the whole store (the rounds before hold 300k events).
  const started = Date.now() - 1000;
  const poller = (async () => {
    while (sending || seen.size < sentAt.size) {
      // Newest first, page on until a page holds only events already seen: a batch may bring more than one page.
      let before: string | null = null;
      do {
        const qs = new URLSearchParams({ q: tag, limit: '1000', from: String(started), ...(before ? { before } : {}) });
        const r: { body: Events } = await d.api<Events>('GET', `/tenants/bench/api/events?${qs}`);
        const now = Date.now();
        let fresh = 0;
        for (const e of r.body.items ?? []) {
          const i = Number(/ i=(\d+)/.exec(e.message)?.[1]);
          if (seen.has(i)) continue;
          seen.set(i, now);
          fresh++;
        }
        before = fresh > 0 ? r.body.next : null;
      } while (before);
      if (!sending && Date.now() - last > 30_000) break;
      await sleep(POLL_MS);
    }
  })();
  const { connect } = await import('node:net');
  const s = connect(port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  for (let i = 0; i < LAT_N; i++) {
    const now = Date.now();
    sentAt.set(i, now);
    s.write(`<134>1 2026-12-06T23:00:00.000Z web-01 ${tag} 1 - - stamped i=${i} user=u${i % 7}\n`);
    if (i % Math.max(1, Math.round(LAT_EVERY_MS)) === 0) await sleep(LAT_EVERY_MS);
  }
  s.end();
  sending = false;
  last = Date.now();
  await poller;
  const lat = [...seen].map(([i, at]) => at - (sentAt.get(i) ?? at));
  if (lat.length < LAT_N) process.stderr.write(`syslog-ingest: ${LAT_N - lat.length} stamped messages not seen\n`);
  return { p50: percentile(lat, 50), p99: percentile(lat, 99) };
}
