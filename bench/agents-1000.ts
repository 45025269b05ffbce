/**
 * 1 000 agents on one main (P6 of docs/benchmarks.md): how long they take to be admitted from a cold start,
 * main's memory per connected agent, and how fast they are re-admitted after main restarts (SIGTERM,
 * start again, every agent reconnects straight away with no backoff; they resume their TLS sessions
 * because main keeps its ticket keys). Not a test: nothing asserts on time.
 *
 * Subject: `palisade main start` as a child process (its RSS and CPU read from /proc), its registry
 * filled beforehand with the agents' records as enrolment writes them (one RSA key shared, a certificate
 * and serial each, signed by main's CA). The agents are simulated in this process: a `ws` client each,
 * its own certificate, the real Hello → Welcome handshake, a heartbeat every 10 s and nothing else.
 * Baselines in the same run, each its own process taking the same clients: plain `ws`, `ws` over TLS
 * (main's certificate and TLS profile) and `ws` over mutual TLS (the agents' certificates, verified).
 * Everything connects 50 at a time (bounded, so the listen backlog never drops a SYN and the figure is
 * the raw admission rate); rounds repeat the whole sequence, order rotated, and the medians are quoted.
 *
 * This module runs the rounds; the rest is split by concern: bench/agents-1000-fleet.ts (main's registry
 * filled with the agents), bench/agents-1000-clients.ts (simulated agents and baseline clients) and
 * bench/agents-1000-report.ts (the figures).
 */
import { rm } from 'node:fs/promises';
import { createSecureContext, type SecureContext } from 'node:tls';
import { join } from 'node:path';
import { tlsProfile } from '#common/tls-profile.js';
import { REPO } from '../test/harness/processes.js';
import { cpuMs, fdLimits, rssKb, startProcess, stopProcess } from './child-proc.js';
import { rotated, type BenchRow } from './bench-util.js';
import {
  closeAll,
  connectPalisade,
  connectPlain,
  freshSessionCache,
  pool,
  startHeartbeats,
  withRetries,
  type Counters,
  type Holder,
  type SimAgent,
} from './agents-1000-clients.js';
import { enrolFleet } from './agents-1000-fleet.js';
import { MEASURE_KEYS, report, type BaselineKind, type Baselines, type Measures } from './agents-1000-report.js';

const WANTED = Number(process.env.PALISADE_BENCH_AGENTS ?? 1000);
/** Open files kept back for everything but the agents' sockets (main's store, this process's modules…). */
const FD_HEADROOM = 256;
const CONCURRENCY = 50;
const ROUNDS = 3;
/** Let main finish what the admissions started (audit, status) before reading its RSS. */
const SETTLE_MS = 1000;

interface Setup {
  n: number;
  url: string;
  pki: string;
  agents: SimAgent[];
  serverOnly: SecureContext;
  startMain(): ReturnType<typeof startProcess>;
}

export async function runAgents1000(): Promise<BenchRow[]> {
  const { soft } = fdLimits();
  // This process holds one socket per agent, main (a child, same limit) the other end.
  const n = Math.min(WANTED, soft - FD_HEADROOM);
  if (n < WANTED)
    process.stderr.write(`  open-file limit ${soft}: simulating ${n} agents, not ${WANTED} (raise ulimit -n)\n`);
  const { dir, data, pki, port, caPem, agents } = await enrolFleet(n);
  const setup: Setup = {
    n,
    url: `wss://127.0.0.1:${port}`,
    pki,
    agents,
    serverOnly: createSecureContext({ ca: caPem, ...tlsProfile() }),
    startMain: () =>
      startProcess(
        [join(REPO, 'bin', 'palisade.js'), 'main', 'start', '--data', data, '--bind', '127.0.0.1'],
        /listening on/,
      ),
  };
  const m = Object.fromEntries(MEASURE_KEYS.map((k) => [k, [] as number[]])) as Measures;
  const base: Baselines = {
    plain: { ms: [], kb: [], cpu: [] },
    tls: { ms: [], kb: [], cpu: [] },
    mtls: { ms: [], kb: [], cpu: [] },
  };
  const heartbeat = startHeartbeats(agents);
  const steps: (() => Promise<void>)[] = [
    () => palisadeRound(setup, m),
    ...(['plain', 'tls', 'mtls'] as const).map((k) => () => baselineRound(setup, k, base[k])),
  ];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      process.stderr.write(`  round ${round + 1}/${ROUNDS}\n`);
      for (const step of rotated(steps, round)) await step();
    }
  } finally {
    clearInterval(heartbeat);
    await closeAll(agents);
    await rm(dir, { recursive: true, force: true });
  }
  return report(n, m, base);
}

/** Cold admission and memory on a fresh main, then SIGTERM, start again and re-admission of everyone. */
async function palisadeRound(x: Setup, m: Measures): Promise<void> {
  let main = await x.startMain();
  try {
    // Cold: agents with no TLS session to resume.
    for (const a of x.agents) a.tls = freshSessionCache();
    const cold: Counters = { resumed: 0, retries: 0 };
    const rss0 = rssKb(main.child.pid!),
      cpu0 = cpuMs(main.child.pid!);
    m.coldMs.push(
      await pool(x.agents, CONCURRENCY, (a) => withRetries(cold, a, () => connectPalisade(x.url, a, cold))),
    );
    m.coldMainCpu.push((cpuMs(main.child.pid!) - cpu0) / x.n);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const rss1 = rssKb(main.child.pid!);
    m.idleKb.push(rss0);
    m.fullKb.push(rss1);
    m.perAgentKb.push((rss1 - rss0) / x.n);

    // Restart with every agent connected; then everyone back at once (no backoff), resuming their sessions.
    m.stopMs.push(await stopProcess(main.child));
    await closeAll(x.agents);
    main = await x.startMain();
    m.startMs.push(main.startMs);
    const again: Counters = { resumed: 0, retries: 0 };
    const mainCpu0 = cpuMs(main.child.pid!),
      self0 = process.cpuUsage();
    m.againMs.push(
      await pool(x.agents, CONCURRENCY, (a) => withRetries(again, a, () => connectPalisade(x.url, a, again))),
    );
    const self = process.cpuUsage(self0);
    m.againMainCpu.push((cpuMs(main.child.pid!) - mainCpu0) / x.n);
    m.againSelfCpu.push((self.user + self.system) / 1000 / x.n);
    m.resumed.push(again.resumed);
    m.retries.push(cold.retries + again.retries);
  } finally {
    await stopProcess(main.child);
    await closeAll(x.agents);
  }
}

/** The same clients against a baseline server in its own process (prepared contexts, no session cache). */
async function baselineRound(x: Setup, kind: BaselineKind, out: Baselines[BaselineKind]): Promise<void> {
  const tlsArgs =
    kind === 'plain'
      ? []
      : [
          '--tls',
          join(x.pki, 'server-key.pem'),
          join(x.pki, 'server.pem'),
          ...(kind === 'mtls' ? ['--ca', join(x.pki, 'ca.pem')] : []),
        ];
  const { child, match } = await startProcess(
    [join(REPO, 'dist', 'bench', 'ws-baseline-server.js'), ...tlsArgs],
    /port (\d+)/,
  );
  const holders: Holder[] = x.agents.map(() => ({}));
  const retries: Counters = { resumed: 0, retries: 0 };
  try {
    const b0 = rssKb(child.pid!),
      c0 = cpuMs(child.pid!);
    const target = `${kind === 'plain' ? 'ws' : 'wss'}://127.0.0.1:${match[1]}`;
    out.ms.push(
      await pool(
        x.agents.map((a, i) => ({ a, h: holders[i] })),
        CONCURRENCY,
        ({ a, h }) =>
          withRetries(retries, h, () =>
            connectPlain(target, kind === 'plain' ? undefined : kind === 'tls' ? x.serverOnly : a.ctx, h),
          ),
      ),
    );
    if (retries.retries) process.stderr.write(`  ${kind} baseline: ${retries.retries} connection retries\n`);
    out.cpu.push((cpuMs(child.pid!) - c0) / x.n);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    out.kb.push((rssKb(child.pid!) - b0) / x.n);
  } finally {
    await closeAll(holders);
    await stopProcess(child);
  }
}
