/**
 * The engine's side of syslog ingest alone (agent/engine/syslog/*): the TCP listener, the spool (segments on a temp
 * directory) and the forwarder in this process, sending each batch as a sealed `events.batch` command on a real
 * engine-side TunnelSession (direct path) whose fake tenant answers every command at once. N synthetic lines
 * (bench/syslog-baseline.ts) arrive down one TCP connection from a child process, so this process's CPU time
 * (process.cpuUsage) is the engine's alone: reported as µs of CPU per event and events/s, from the first byte until
 * the spool counts all N acknowledged. Baseline, same run, rounds interleaved, medians: a plain `net` server in this
 * process taking the same bytes and only splitting them into lines. The engine needs ≤ ~2 µs per event to keep up
 * with rsyslogd (P10) on two cores. Profile with `node --cpu-prof dist/bench/syslog-engine-path.js`. The fake tenant
 * says protocol 1.11 (batches go binary, as the spool holds them); PALISADE_BENCH_SYSLOG_ENGINE_TENANT_MINOR=10 makes
 * it an older tenant, which gets each batch as JSON made at send time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeEnvelope, jsonBytes } from '#common/codec.js';
import { silentLogger } from '#common/logging.js';
import { PROTOCOL_MINOR } from '#common/protocol-version.js';
import { SyslogForwarder } from '../agent/engine/syslog/syslog-forwarder.js';
import { SyslogListeners } from '../agent/engine/syslog/syslog-listeners.js';
import { SyslogSpool } from '../agent/engine/syslog/syslog-spool.js';
import { SealingKey } from '../agent/tunnel/tunnel-crypto.js';
import { TunnelSession } from '../agent/tunnel/tunnel-session.js';
import { median, type BenchRow } from './bench-util.js';

const N = Number(process.env.PALISADE_BENCH_SYSLOG_ENGINE_N ?? 200_000);
const ROUNDS = Number(process.env.PALISADE_BENCH_SYSLOG_ENGINE_ROUNDS ?? 3);
const TENANT_MINOR = Number(process.env.PALISADE_BENCH_SYSLOG_ENGINE_TENANT_MINOR ?? PROTOCOL_MINOR);

interface Round {
  usPerEvent: number;
  /** Of which in the kernel (system time): socket reads, segment writes. */
  sysUsPerEvent: number;
  eventsPerSec: number;
}

/**
 * A child process that makes the lines, says `ready`, and on a line on its stdin sends them to `port` and exits.
 * Its CPU is not this process's.
 */
async function sender(port: number, n: number, tag: string): Promise<{ go(): Promise<void> }> {
  const lib = fileURLToPath(new URL('./syslog-baseline.js', import.meta.url));
  const code =
    `import { syntheticLines, sendTcp } from ${JSON.stringify(lib)};` +
    `const lines = syntheticLines(${n}, ${JSON.stringify(tag)}); process.stdout.write('ready\\n');` +
    `process.stdin.once('data', async () => { await sendTcp(${port}, lines); process.exit(0); });`;
  const child: ChildProcess = spawn(process.execPath, ['--input-type=module', '-e', code], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (c) => reject(new Error(`syslog sender exited (${c}) before it was ready`)));
    child.stdout!.once('data', () => resolve());
  });
  child.removeAllListeners('exit');
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    async go() {
      child.stdin!.write('go\n');
      await exited;
    },
  };
}

/** Runs `send`, then waits until `done()`; CPU and wall time from the go to the end. */
async function measure(go: () => Promise<void>, done: () => boolean, n: number): Promise<Round> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const sent = go();
  const deadline = Date.now() + 120_000;
  while (!done()) {
    if (Date.now() > deadline) throw new Error('syslog-engine-path: not all events arrived within 120 s');
    await new Promise((r) => setTimeout(r, 2));
  }
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await sent;
  return { usPerEvent: (cpu.user + cpu.system) / n, sysUsPerEvent: cpu.system / n, eventsPerSec: (n / ms) * 1000 };
}

interface Engine {
  round(tag: string): Promise<Round>;
  close(): Promise<void>;
}

/**
 * The engine's listener + spool + forwarder, the session's tenant answering at once: one for all rounds, as an
 * engine runs for long (its spool's buffers reused from one round to the next).
 */
async function startEngine(): Promise<Engine> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-syslog-engine-'));
  const log = silentLogger();
  const spool = await SyslogSpool.open(dir, { engine: 'bench-eng', maxBytes: 1 << 30, log });
  const forwarder = new SyslogForwarder(spool, log);
  const listeners = new SyslogListeners(spool, log, { cert: '', key: '' });
  const tenantKey = randomBytes(32);
  const tenantSend = new SealingKey(tenantKey);
  let answered = 0;
  // Commands are the only records sent here: the n-th record is command id n.
  const answer = () => {
    const id = ++answered;
    setImmediate(() => {
      const reply = encodeEnvelope({ replyTo: id, result: { ok: true, value: jsonBytes({ duplicate: false }) } });
      session.onSealed(tenantSend.seal(reply));
    });
  };
  const session: TunnelSession = new TunnelSession({
    keys: { send: new SealingKey(randomBytes(32)), receive: new SealingKey(tenantKey) },
    initiator: false,
    lengthPrefixed: true,
    sendRecordv: () => answer(),
    sendRecord: () => answer(),
    peerMinor: TENANT_MINOR,
  });
  forwarder.setSession(session);
  await listeners.start([{ transport: 'tcp', host: '127.0.0.1', port: 0 }]);
  return {
    async round(tag) {
      const s = await sender(listeners.listening[0].port, N, tag);
      const before = spool.stats.forwarded;
      return measure(
        () => s.go(),
        () => spool.stats.forwarded - before >= N,
        N,
      );
    },
    async close() {
      await listeners.close();
      forwarder.close();
      await spool.close();
      session.close('bench over');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The baseline: the same bytes into a plain net server that only cuts them into lines. */
async function baselineRound(tag: string): Promise<Round> {
  let lines = 0;
  const server: Server = createServer((sock) => {
    // A line ends at its LF, whichever chunk it began in: counting the LFs is splitting (the lines are not empty).
    sock.on('data', (chunk: Buffer) => {
      for (let lf = chunk.indexOf(10); lf !== -1; lf = chunk.indexOf(10, lf + 1)) lines++;
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const s = await sender((server.address() as { port: number }).port, N, tag);
    return await measure(
      () => s.go(),
      () => lines >= N,
      N,
    );
  } finally {
    await new Promise((r) => server.close(r));
  }
}

export async function runSyslogEnginePath(): Promise<BenchRow[]> {
  const engine: Round[] = [];
  const base: Round[] = [];
  const eng = await startEngine();
  try {
    await eng.round('warm'); // JIT, and the spool's buffers
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? ['engine', 'base'] : ['base', 'engine'];
      for (const who of order) {
        const got = who === 'engine' ? await eng.round(`e${r}`) : await baselineRound(`b${r}`);
        (who === 'engine' ? engine : base).push(got);
        process.stderr.write(
          `  ${who}: ${got.usPerEvent.toFixed(2)} µs/event (sys ${got.sysUsPerEvent.toFixed(2)}), ` +
            `${Math.round(got.eventsPerSec)} events/s\n`,
        );
      }
    }
  } finally {
    await eng.close();
  }
  const us = median(engine.map((e) => e.usPerEvent));
  const sys = median(engine.map((e) => e.sysUsPerEvent));
  const baseUs = median(base.map((e) => e.usPerEvent));
  const eps = median(engine.map((e) => e.eventsPerSec));
  const baseEps = median(base.map((e) => e.eventsPerSec));
  return [
    {
      figure: `engine syslog path CPU per event (TCP → spool → sealed events.batch, ${N} msgs)`,
      value: `${us.toFixed(2)} µs (sys ${sys.toFixed(2)})`,
      baseline: `net server splitting lines ${baseUs.toFixed(2)} µs`,
      ratio: us / baseUs,
      target: '≤ 2 µs',
    },
    {
      figure: 'engine syslog path events/s (tenant acks at once)',
      value: `${Math.round(eps)} events/s`,
      baseline: `net server splitting lines ${Math.round(baseEps)} events/s`,
      ratio: eps / baseEps,
      target: '(report)',
    },
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const row of await runSyslogEnginePath())
    process.stdout.write(`${row.figure}: ${row.value} (${row.baseline}; ${row.ratio.toFixed(2)}×)\n`);
}
