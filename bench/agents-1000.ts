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
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent as HttpsAgent } from 'node:https';
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { AgentKind, decodeEnvelope, encodeEnvelope } from '#common/codec.js';
import { createCsr, generateRsaKeyPem, signAgentCsr } from '#common/pki.js';
import { tlsProfile } from '#common/tls-profile.js';
import { initMain } from '../main/init.js';
import { Registry } from '../main/registry.js';
import { freePort, REPO } from '../test/harness/processes.js';
import { cpuMs, fdLimits, rssKb, startProcess, stopProcess } from './child-proc.js';
import { deadline, median, rotated, type BenchRow } from './bench-util.js';

const WANTED = Number(process.env.PALISADE_BENCH_AGENTS ?? 1000);
/** Open files kept back for everything but the agents' sockets (main's store, this process's modules…). */
const FD_HEADROOM = 256;
const CONCURRENCY = 50;
/** A connection not admitted by then is retried (a hung one must not stall the benchmark). */
const CONNECT_DEADLINE_MS = 20_000;
const ROUNDS = 3;
/** Let main finish what the admissions started (audit, status) before reading its RSS. */
const SETTLE_MS = 1000;
/** Main drops a peer silent for 30 s (its default dead-peer timeout); a round can take longer under load. */
const HEARTBEAT_MS = 10_000;
const HEARTBEAT = Buffer.from(encodeEnvelope({ id: 2, heartbeat: { sentAtMs: 0 } }));

interface SimAgent {
  name: string;
  ctx: SecureContext;
  tls: HttpsAgent;
  ws?: WebSocket;
}
interface Holder {
  ws?: WebSocket;
}
interface Counters {
  resumed: number;
  retries: number;
}

/** Runs `fn` over items with at most `n` in flight; returns elapsed ms. */
async function pool<T>(items: readonly T[], n: number, fn: (t: T) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
  return performance.now() - t0;
}

/** One attempt, then two more if the connection failed or stalled (counted: a retry is part of the cost). */
async function withRetries(c: Counters, h: Holder, attempt: () => Promise<void>): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      return await deadline(attempt(), CONNECT_DEADLINE_MS, 'connection');
    } catch (e) {
      h.ws?.terminate();
      if (i >= 2) throw e;
      c.retries++;
    }
  }
}

function connectPalisade(url: string, a: SimAgent, c: Counters): Promise<void> {
  return new Promise((resolve, reject) => {
    // A prepared secure context per agent: parsing PEM keys per connection would make the clients the bottleneck.
    // The agent's own https.Agent caches its TLS session, as agent/main-connection.ts does.
    const ws = new WebSocket(`${url}/agent/v1`, {
      agent: a.tls,
      secureContext: a.ctx,
      perMessageDeflate: false,
    } as WebSocket.ClientOptions);
    a.ws = ws;
    ws.on('error', reject); // after the Welcome a late error (main going away) rejects nothing: the promise is settled
    ws.once('upgrade', (res) => {
      if ((res.socket as TLSSocket).isSessionReused()) c.resumed++;
    });
    ws.once('unexpected-response', (_q, res) => {
      reject(new Error(`HTTP ${res.statusCode}`));
      ws.terminate();
    });
    ws.once('open', () =>
      ws.send(
        encodeEnvelope({
          id: 1,
          hello: {
            protocolMajor: 1,
            protocolMinor: 0,
            agentVersion: 'bench',
            kind: AgentKind.AGENT_KIND_HOST,
            name: a.name,
          },
        }),
      ),
    );
    ws.once('message', (d) => (decodeEnvelope(d as Buffer).welcome ? resolve() : reject(new Error('no Welcome'))));
    ws.once('close', (code) => reject(new Error(`closed ${code} before Welcome`)));
  });
}

function connectPlain(url: string, ctx: SecureContext | undefined, h: Holder): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { secureContext: ctx, perMessageDeflate: false } as WebSocket.ClientOptions);
    h.ws = ws;
    ws.on('error', reject);
    ws.once('open', () => ws.send(Buffer.alloc(32)));
    ws.once('message', () => resolve());
    ws.once('close', (code) => reject(new Error(`closed ${code} before the echo`)));
  });
}

async function closeAll(xs: readonly Holder[]): Promise<void> {
  await Promise.all(
    xs.map(
      (x) =>
        new Promise<void>((r) => {
          if (!x.ws || x.ws.readyState === WebSocket.CLOSED) return r();
          x.ws.once('close', () => r());
          x.ws.terminate();
        }),
    ),
  );
}

/** initMain, then register `n` agents straight into the registry exactly as main/enrolment/enrolment.ts does. */
async function prepare(n: number) {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-1000-'));
  const data = join(dir, 'main');
  const port = await freePort(); // fixed from here on: agents reconnect to the same address after the restart
  await initMain({ data, hostname: '127.0.0.1', port });
  const pki = join(data, 'pki');
  const [caPem, caKey] = await Promise.all([
    readFile(join(pki, 'ca.pem'), 'utf8'),
    readFile(join(pki, 'ca-key.pem'), 'utf8'),
  ]);
  const key = await generateRsaKeyPem();
  const csr = createCsr(key, 'bench');
  const registry = new Registry(join(data, 'registry'));
  await registry.open();
  const agents: SimAgent[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const id = `hst_${randomBytes(8).toString('hex')}`;
      const name = `sim-${i}`;
      const issued = signAgentCsr({ certPem: caPem, keyPem: caKey }, csr, id);
      await registry.db.batch([
        {
          type: 'put',
          sublevel: registry.agents,
          key: id,
          value: {
            id,
            name,
            kind: 'host',
            certSerial: issued.serial,
            fingerprint: issued.fingerprint,
            enrolledAt: new Date().toISOString(),
          },
        },
        { type: 'put', sublevel: registry.agentNames, key: `host:${name}`, value: id },
        { type: 'put', sublevel: registry.certSerials, key: issued.serial, value: id },
      ] as never);
      agents.push({
        name,
        ctx: createSecureContext({ cert: issued.certPem, key, ca: caPem, ...tlsProfile() }),
        tls: freshSessionCache(),
      });
    }
  } finally {
    await registry.close();
  }
  return { dir, data, pki, port, caPem, agents };
}

const freshSessionCache = () => new HttpsAgent({ maxCachedSessions: 2, keepAlive: false });

interface Setup {
  n: number;
  url: string;
  pki: string;
  agents: SimAgent[];
  serverOnly: SecureContext;
  startMain(): ReturnType<typeof startProcess>;
}
type Measures = Record<
  | 'coldMs'
  | 'coldMainCpu'
  | 'perAgentKb'
  | 'idleKb'
  | 'fullKb'
  | 'stopMs'
  | 'startMs'
  | 'againMs'
  | 'againMainCpu'
  | 'againSelfCpu'
  | 'resumed'
  | 'retries',
  number[]
>;
type BaselineKind = 'plain' | 'tls' | 'mtls';
type Baselines = Record<BaselineKind, { ms: number[]; kb: number[]; cpu: number[] }>;

export async function runAgents1000(): Promise<BenchRow[]> {
  const { soft } = fdLimits();
  // This process holds one socket per agent, main (a child, same limit) the other end.
  const n = Math.min(WANTED, soft - FD_HEADROOM);
  if (n < WANTED)
    process.stderr.write(`  open-file limit ${soft}: simulating ${n} agents, not ${WANTED} (raise ulimit -n)\n`);
  const { dir, data, pki, port, caPem, agents } = await prepare(n);
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
  const m = Object.fromEntries(
    [
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
    ].map((k) => [k, [] as number[]]),
  ) as Measures;
  const base: Baselines = {
    plain: { ms: [], kb: [], cpu: [] },
    tls: { ms: [], kb: [], cpu: [] },
    mtls: { ms: [], kb: [], cpu: [] },
  };
  const heartbeat = setInterval(() => {
    for (const a of agents) if (a.ws?.readyState === WebSocket.OPEN) a.ws.send(HEARTBEAT);
  }, HEARTBEAT_MS);
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

function report(n: number, m: Measures, base: Baselines): BenchRow[] {
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
