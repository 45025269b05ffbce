/**
 * 1 000 agents on one main (DESIGN §8 P6; issue 2): admission time from cold, main's memory per connected
 * agent, and the re-admission rate after main restarts (agents resume their TLS sessions; main keeps its
 * ticket keys). Agents are simulated in this process, each with its own certificate, speaking the real
 * Hello/Welcome handshake; main runs as its own process so its memory is measured alone. Baselines in the
 * same run: a plain `ws` server and `ws` over TLS, each in its own process, taking the same 1 000 clients.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
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
import { REPO } from '../test/harness/processes.js';
import { median, type BenchRow } from './bench-util.js';

const AGENTS = Number(process.env.PALISADE_BENCH_AGENTS ?? 1000);
const CONCURRENCY = 50;
const ROUNDS = 3;
let reused = 0;

interface SimAgent { name: string; ctx: SecureContext; tls: HttpsAgent; ws?: WebSocket }

/** CPU time (user + system, ms) a process has used. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

function startProcess(args: string[], ready: RegExp): Promise<{ child: ChildProcess; match: RegExpMatchArray }> {
  return new Promise((resolve, reject) => {
    // BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles main and the baselines.
    const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const child = spawn(process.execPath, [...nodeArgs, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d; const m = out.match(ready); if (m) resolve({ child, match: m }); });
    child.stderr!.on('data', (d: Buffer) => { out += d; });
    child.once('exit', (c) => reject(new Error(`${args.join(' ')} exited ${c}: ${out}`)));
  });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  await new Promise<void>((r) => { child.once('exit', () => r()); child.kill('SIGTERM'); });
}

/** Runs `fn` over items with at most `n` in flight; returns elapsed ms. */
async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: n }, async () => { while (next < items.length) await fn(items[next++]); }));
  return performance.now() - t0;
}

function connectPalisade(url: string, a: SimAgent): Promise<void> {
  return new Promise((resolve, reject) => {
    // A prepared secure context per agent: parsing PEM keys per connection would make the clients the bottleneck.
    const ws = new WebSocket(`${url}/agent/v1`, { agent: a.tls, secureContext: a.ctx, perMessageDeflate: false } as WebSocket.ClientOptions);
    a.ws = ws;
    ws.once('open', () => ws.send(encodeEnvelope({ id: 1, hello: { protocolMajor: 1, protocolMinor: 0, agentVersion: 'bench', kind: AgentKind.AGENT_KIND_HOST, name: a.name } })));
    ws.once('upgrade', (res) => { if ((res.socket as TLSSocket).isSessionReused()) reused++; });
    ws.once('message', (d) => (decodeEnvelope(d as Buffer).welcome ? resolve() : reject(new Error('no welcome'))));
    ws.once('error', reject);
    ws.once('unexpected-response', (_q, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

function connectPlain(url: string, ca: string | undefined, holder: { ws?: WebSocket }): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ca, perMessageDeflate: false });
    holder.ws = ws;
    ws.once('open', () => ws.send(Buffer.alloc(32)));
    ws.once('message', () => resolve());
    ws.once('error', reject);
  });
}

async function closeAll(xs: { ws?: WebSocket }[]): Promise<void> {
  await Promise.all(xs.map((x) => new Promise<void>((r) => {
    if (!x.ws || x.ws.readyState === WebSocket.CLOSED) return r();
    x.ws.once('close', () => r());
    x.ws.terminate();
  })));
}

export async function runAgents1000(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-1000-'));
  const data = join(dir, 'main');
  const port = 20000 + Math.floor(Math.random() * 20000);
  await initMain({ data, hostname: '127.0.0.1', port });
  const pki = join(data, 'pki');
  const [caPem, caKey] = await Promise.all([readFile(join(pki, 'ca.pem'), 'utf8'), readFile(join(pki, 'ca-key.pem'), 'utf8')]);
  // Register the agents directly (as enrolment would): one RSA key shared, a certificate each.
  const key = await generateRsaKeyPem();
  const csr = createCsr(key, 'bench');
  const registry = new Registry(join(data, 'registry'));
  await registry.open();
  const agents: SimAgent[] = [];
  for (let i = 0; i < AGENTS; i++) {
    const id = `hst_${randomBytes(8).toString('hex')}`;
    const name = `sim-${i}`;
    const issued = signAgentCsr({ certPem: caPem, keyPem: caKey }, csr, id);
    await registry.db.batch([
      { type: 'put', sublevel: registry.agents, key: id, value: { id, name, kind: 'host', certSerial: issued.serial, fingerprint: issued.fingerprint, enrolledAt: new Date().toISOString() } },
      { type: 'put', sublevel: registry.agentNames, key: `host:${name}`, value: id },
      { type: 'put', sublevel: registry.certSerials, key: issued.serial, value: id },
    ] as never);
    agents.push({ name, ctx: createSecureContext({ cert: issued.certPem, key, ca: caPem, ...tlsProfile() }), tls: new HttpsAgent({ maxCachedSessions: 2, keepAlive: false }) });
  }
  await registry.close();
  const url = `wss://127.0.0.1:${port}`;
  const cli = join(REPO, 'bin', 'palisade.js');
  const startMainProc = () => startProcess([cli, 'main', 'start', '--data', data, '--bind', '127.0.0.1'], /listening on/);

  const resumed: number[] = [];
  const mainCpuPerAgent: number[] = [], clientCpuPerAgent: number[] = [];
  const coldMs: number[] = [], resumeRate: number[] = [], perAgentKb: number[] = [];
  const plainRate: number[] = [], plainKb: number[] = [], tlsRate: number[] = [], tlsKb: number[] = [];
  let main = (await startMainProc()).child;
  for (let round = 0; round < ROUNDS; round++) {
    // Palisade: cold admission (round 0 has no cached sessions), memory, then restart and re-admission.
    const before = rssKb(main.pid!);
    const cold = await pool(agents, CONCURRENCY, (a) => connectPalisade(url, a));
    if (round === 0) coldMs.push(cold);
    await new Promise((r) => setTimeout(r, 500));
    perAgentKb.push((rssKb(main.pid!) - before) / AGENTS);
    await stopProcess(main);
    await closeAll(agents);
    main = (await startMainProc()).child;
    const cpu0 = cpuMs(main.pid!), self0 = process.cpuUsage();
    reused = 0;
    const again = await pool(agents, CONCURRENCY, (a) => connectPalisade(url, a));
    const selfUsed = process.cpuUsage(self0);
    mainCpuPerAgent.push((cpuMs(main.pid!) - cpu0) / AGENTS);
    clientCpuPerAgent.push((selfUsed.user + selfUsed.system) / 1000 / AGENTS);
    resumeRate.push(AGENTS / (again / 1000));
    resumed.push(reused);
    await closeAll(agents);
    await stopProcess(main);
    main = (await startMainProc()).child;

    // Baselines: plain ws, then ws over TLS with main's server certificate, each in its own process.
    for (const tls of [false, true]) {
      const args = [join(REPO, 'dist', 'bench', 'ws-baseline-server.js'), ...(tls ? ['--tls', join(pki, 'server-key.pem'), join(pki, 'server.pem')] : [])];
      const { child, match } = await startProcess(args, /port (\d+)/);
      const holders = agents.map(() => ({} as { ws?: WebSocket }));
      const b0 = rssKb(child.pid!);
      const t = await pool(holders, CONCURRENCY, (h) => connectPlain(`${tls ? 'wss' : 'ws'}://127.0.0.1:${match[1]}`, tls ? caPem : undefined, h));
      await new Promise((r) => setTimeout(r, 500));
      const kb = (rssKb(child.pid!) - b0) / AGENTS;
      (tls ? tlsRate : plainRate).push(AGENTS / (t / 1000));
      (tls ? tlsKb : plainKb).push(kb);
      await closeAll(holders);
      await stopProcess(child);
    }
  }
  await stopProcess(main);
  return [
    { figure: 'main CPU per re-admitted agent', value: `${median(mainCpuPerAgent).toFixed(2)} ms`, baseline: `simulated agents' CPU ${median(clientCpuPerAgent).toFixed(2)} ms`, ratio: median(mainCpuPerAgent) / median(clientCpuPerAgent), target: '(where the time goes)' },
    { figure: `admit ${AGENTS} agents from cold (mTLS + Hello/Welcome)`, value: `${(median(coldMs) / 1000).toFixed(2)} s`, baseline: `plain ws ${(AGENTS / median(plainRate)).toFixed(2)} s`, ratio: median(coldMs) / 1000 / (AGENTS / median(plainRate)), target: '(issue 2: report)' },
    { figure: 'P6 re-admitted agents/s after main restart (TLS resumption)', value: median(resumeRate).toFixed(0), baseline: `plain ws accepts/s ${median(plainRate).toFixed(0)}`, ratio: median(resumeRate) / median(plainRate), target: '≥ 0.5×' },
    { figure: 'TLS sessions resumed on re-admission', value: `${Math.min(...resumed)} of ${AGENTS}`, baseline: '-', ratio: Math.min(...resumed) / AGENTS, target: '1.0' },
    { figure: 'P6 main memory per connected agent', value: `${median(perAgentKb).toFixed(1)} KiB`, baseline: `plain ws ${median(plainKb).toFixed(1)} KiB`, ratio: median(perAgentKb) / median(plainKb), target: '≤ 2.5×' },
    { figure: 'ws over TLS (no client cert) accepts/s', value: median(tlsRate).toFixed(0), baseline: `plain ws ${median(plainRate).toFixed(0)}`, ratio: median(tlsRate) / median(plainRate), target: '(context)' },
    { figure: 'ws over TLS memory per connection', value: `${median(tlsKb).toFixed(1)} KiB`, baseline: `plain ws ${median(plainKb).toFixed(1)} KiB`, ratio: median(tlsKb) / median(plainKb), target: '(context)' },
  ];
}
