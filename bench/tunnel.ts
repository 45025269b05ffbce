/**
 * Tunnel bulk throughput (P1 of docs/benchmarks.md, both directions) and small-message round trip (P2, p50/p99) on
 * loopback, with two baselines in the same run: `ssh -L -c aes128-gcm@openssh.com` through a throwaway
 * sshd, and raw TCP. All three paths end at the same sink / source / echo servers in this process, and
 * the Palisade path is a real deployment (main, host agent, tenant, engine as processes): client →
 * tenant listener → tenant → engine → target over the direct engine ⇄ host connection (the host hands
 * it to the tenant), or with PALISADE_BENCH_TUNNEL_PATH=relay through host and main as when an engine
 * cannot reach the host. Rounds interleave the paths (order rotated); the
 * figures are medians of the rounds. MB/s counts 10^6 bytes. Not a test: nothing here asserts on time.
 * Knobs: PALISADE_BENCH_TUNNEL_MB (MiB per bulk sample, default 256), PALISADE_BENCH_TUNNEL_ROUNDS
 * (default 5), PALISADE_BENCH_RTT_N (round trips per round, default 2000).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { copyFile, rm, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { Deployment } from '../test/harness/deployment.js';
import { freePort, tempDir } from '../test/harness/processes.js';
import { cpuMs } from './child-proc.js';
import { aeadBackend } from '../agent/tunnel/native-aead.js';
import { deadline, median, ms, percentile, rotated, type BenchRow } from './bench-util.js';

const BYTES = Number(process.env.PALISADE_BENCH_TUNNEL_MB ?? 256) * 1024 * 1024;
const PINGS = Number(process.env.PALISADE_BENCH_RTT_N ?? 2000);
/**
 * Five rounds, as loopback throughput on a 2-vCPU VM swings ±30% from one sample to the next (where the
 * scheduler puts client, tenant and engine): the median of five is what a figure can rest on.
 */
const ROUNDS = Number(process.env.PALISADE_BENCH_TUNNEL_ROUNDS ?? 5);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1)
  throw new Error(
    `PALISADE_BENCH_TUNNEL_ROUNDS must be a whole number ≥ 1, not "${process.env.PALISADE_BENCH_TUNNEL_ROUNDS}"`,
  );
const TUNNEL_PATH = process.env.PALISADE_BENCH_TUNNEL_PATH === 'relay' ? 'relay' : 'direct';
const PING_SIZE = 64;
/** A round trip this slow on loopback is a Nagle / delayed-ACK stall (40 ms on Linux), not noise. */
const SPIKE_MS = 30;
/** Random, so no layer could profit from compression; one buffer reused for every write. */
const CHUNK = randomBytes(1024 * 1024);
/** Generous (≥ 2 MB/s): a path that stalls fails the run instead of hanging it. */
const SAMPLE_DEADLINE_MS = 60_000 + BYTES / 2_000;

interface Ports {
  sink: number;
  source: number;
  echo: number;
}
interface Path {
  name: string;
  ports: Ports;
  pids(): Record<string, number[]>;
}
interface Stats {
  up: number[];
  down: number[];
  p50: number[];
  p99: number[];
  spikes: number;
  cpu: Record<string, number>;
  bulkMs: number;
}

// ── target servers (the "customer network" side) ─────────────────────────────────────────────────────

/** Resolves on 'drain', or on 'close' so a writer never waits for a peer that is gone; leaves no listener behind. */
const drained = (s: Socket) =>
  new Promise<void>((r) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      r();
    };
    s.once('drain', done).once('close', done);
  });

/** Every client starts with an 8-byte length: how much the sink expects, or the source must send. */
const header = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};

function onHeader(sock: Socket, then: (n: number, rest: Buffer) => void): void {
  let head = Buffer.alloc(0);
  const onData = (c: Buffer) => {
    head = Buffer.concat([head, c]);
    if (head.length < 8) return;
    sock.off('data', onData);
    then(Number(head.readBigUInt64BE(0)), head.subarray(8));
  };
  sock.on('data', onData);
}

async function pour(sock: Socket, n: number): Promise<void> {
  for (let sent = 0; sent < n && !sock.destroyed; sent += CHUNK.length) {
    if (!sock.write(n - sent >= CHUNK.length ? CHUNK : CHUNK.subarray(0, n - sent))) await drained(sock);
  }
  sock.end();
}

function listen(onConn: (s: Socket) => void): Promise<Server> {
  const server = createServer((s) => {
    s.setNoDelay(true);
    s.on('error', () => undefined);
    onConn(s);
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server)));
}

async function startTargets(): Promise<{ ports: Ports; close(): void }> {
  const servers = await Promise.all([
    // The sink answers one byte once it holds everything: the upload's clock stops at the far end.
    listen((s) =>
      onHeader(s, (n, rest) => {
        let got = rest.length;
        const check = () => {
          if (got >= n) s.write('k');
        };
        s.on('data', (c: Buffer) => {
          got += c.length;
          check();
        });
        check();
      }),
    ),
    listen((s) => onHeader(s, (n) => void pour(s, n))),
    listen((s) => s.pipe(s)),
  ]);
  const [sink, source, echo] = servers.map((s) => (s.address() as { port: number }).port);
  return { ports: { sink, source, echo }, close: () => servers.forEach((s) => s.close()) };
}

// ── clients ─────────────────────────────────────────────────────────────────────────────────────────

/** Connects with Nagle off; `closed` rejects when the connection ends, so no wait outlives it. */
async function dial(port: number, what: string): Promise<{ sock: Socket; closed: Promise<never> }> {
  const sock = connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  let err: Error | undefined;
  sock.on('error', (e) => {
    err = e;
  });
  const closed = new Promise<never>((_, reject) =>
    sock.once('close', () => reject(new Error(`${what}: connection closed${err ? `: ${err.message}` : ''}`))),
  );
  closed.catch(() => undefined);
  await Promise.race([new Promise((r) => sock.once('connect', r)), closed]);
  return { sock, closed };
}

/** MB/s from connect to the sink's acknowledgement of the last byte. */
async function upload(port: number, n: number): Promise<number> {
  const t0 = performance.now();
  const { sock, closed } = await dial(port, 'upload');
  try {
    const acked = new Promise((r) => sock.once('data', r));
    sock.write(header(n));
    for (let sent = 0; sent < n; sent += CHUNK.length) {
      if (!sock.write(n - sent >= CHUNK.length ? CHUNK : CHUNK.subarray(0, n - sent)))
        await Promise.race([drained(sock), closed]);
    }
    await Promise.race([acked, closed]);
    return n / 1e3 / (performance.now() - t0);
  } finally {
    sock.destroy();
  }
}

/** MB/s from connect to the last byte in. */
async function download(port: number, n: number): Promise<number> {
  const t0 = performance.now();
  const { sock, closed } = await dial(port, 'download');
  try {
    const all = new Promise<void>((resolve) => {
      let got = 0;
      sock.on('data', (c: Buffer) => {
        got += c.length;
        if (got >= n) resolve();
      });
    });
    sock.write(header(n));
    await Promise.race([all, closed]);
    return n / 1e3 / (performance.now() - t0);
  } finally {
    sock.destroy();
  }
}

/** n sequential 64-byte round trips on one connection (ms each); the next ping leaves on the last reply byte. */
async function pingPong(port: number, n: number): Promise<number[]> {
  const { sock, closed } = await dial(port, 'ping-pong');
  const msg = Buffer.alloc(PING_SIZE, 0x70);
  const times: number[] = [];
  try {
    await Promise.race([
      closed,
      new Promise<void>((resolve) => {
        let got = 0,
          t0 = 0;
        const send = () => {
          got = 0;
          t0 = performance.now();
          sock.write(msg);
        };
        sock.on('data', (c: Buffer) => {
          got += c.length;
          if (got < PING_SIZE) return;
          times.push(performance.now() - t0);
          if (times.length === n) resolve();
          else send();
        });
        send();
      }),
    ]);
    return times;
  } finally {
    sock.destroy();
  }
}

// ── CPU accounting (Linux /proc), to see which process a path spends its cycles in ───────────────────

/** A process and all its descendants (sshd forks per connection; the host runs its tenant as a child). */
function withDescendants(pid: number): number[] {
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
function cpuNow(pids: Record<string, number[]>): Record<string, number> {
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

async function bulk(p: Path, st: Stats, run: () => Promise<number>): Promise<number> {
  const pids = p.pids(),
    before = cpuNow(pids),
    t0 = performance.now();
  const mbps = await deadline(run(), SAMPLE_DEADLINE_MS, `${p.name} bulk sample`);
  st.bulkMs += performance.now() - t0;
  for (const [role, v] of Object.entries(cpuNow(pids))) st.cpu[role] = (st.cpu[role] ?? 0) + v - before[role];
  return mbps;
}

// ── the Palisade tunnel: a real deployment whose engine may dial the three targets ──────────────────

async function startTunnel(d: Deployment, targets: Ports): Promise<Path> {
  await d.install('host', 'tun-host');
  if (TUNNEL_PATH === 'relay') d.configure('tun-host', { engineListen: 'off' });
  await d.startAgent('tun-host');
  await d.createTenant('tun', 'tun-host');
  const session = await d.startEngine('tun-eng', 'tun', {
    allow: Object.values(targets).map((port) => `127.0.0.1:${port}`),
  });
  if (session.transport !== TUNNEL_PATH)
    throw new Error(`tunnel session runs ${session.transport}, not ${TUNNEL_PATH}`);
  process.stderr.write(
    `  tunnel path: ${TUNNEL_PATH}; record AEAD: ${aeadBackend() === 'native' ? 'native in-place AES-256-GCM (agent/tunnel/native)' : "Node's crypto (agent/tunnel/native not built)"}\n`,
  );
  const open = async (port: number) => {
    const r = await d.api<{ listen: string }>('POST', '/tenants/tun/api/tunnels', {
      to: `127.0.0.1:${port}`,
      listen: '127.0.0.1:0',
    });
    if (r.status !== 201) throw new Error(`tunnel open failed: ${r.raw}`);
    return Number(r.body.listen.split(':').pop());
  };
  const ports = { sink: await open(targets.sink), source: await open(targets.source), echo: await open(targets.echo) };
  const pid = (name: string) => d.agents.get(name)!.proc!.child.pid!;
  return {
    name: 'tunnel',
    ports,
    pids: () => ({
      main: [d.main!.child.pid!],
      host: [pid('tun-host')],
      tenant: withDescendants(pid('tun-host')).slice(1),
      engine: [pid('tun-eng')],
    }),
  };
}

// ── the ssh -L baseline: a throwaway sshd with its own keys, one ssh client forwarding the three ports ─

interface SshForward {
  path: Path;
  close(): Promise<void>;
}
interface Logged {
  child: ChildProcess;
  output(): string;
}

/** sshd lives in /usr/sbin, which is not always on PATH. */
function which(name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/bin']) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      /* next */
    }
  }
  return undefined;
}

function spawnLogged(cmd: string, args: string[]): Logged {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (b: Buffer) => {
    if (out.length < 20_000) out += b;
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, output: () => out };
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(t);
}

const accepts = (port: number) =>
  new Promise<boolean>((r) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      r(true);
    }).once('error', () => r(false));
  });

/** Polls `ok` until true; fails early, with the process's output, if `p` exits. */
async function waitUntil(p: Logged, what: string, ok: () => boolean | Promise<boolean>): Promise<void> {
  for (const end = Date.now() + 15_000; !(await ok());) {
    if (p.child.exitCode !== null || Date.now() > end)
      throw new Error(`${what} not ready: ${p.output().trim() || `exit ${p.child.exitCode}`}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sshdConfig = (dir: string) =>
  [
    'ListenAddress 127.0.0.1',
    `HostKey ${join(dir, 'host')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'StrictModes no',
    'UsePAM no',
    'PidFile none',
    'PermitRootLogin prohibit-password',
    '',
  ].join('\n');

/** The ssh -L path, or why it cannot run here: its rows then say skipped instead of failing the benchmark. */
async function startSshForward(targets: Ports): Promise<SshForward | string> {
  const bins = { sshd: which('sshd'), ssh: which('ssh'), 'ssh-keygen': which('ssh-keygen') };
  const missing = Object.keys(bins).filter((k) => !bins[k as keyof typeof bins]);
  if (missing.length) return `${missing.join(', ')} not found (apt-get install openssh-server openssh-client)`;
  // As root, sshd refuses to start without its privilege-separation directory, which systemd normally creates.
  try {
    if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  } catch (e) {
    return `cannot create /run/sshd: ${(e as Error).message}`;
  }
  const dir = await tempDir('palisade-bench-ssh-');
  const procs: Logged[] = [];
  const close = async () => {
    for (const p of procs.reverse()) await stopChild(p.child); // the client first: sshd's session ends with it
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const k of ['host', 'client'])
      execFileSync(bins['ssh-keygen']!, ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, k)]);
    await copyFile(join(dir, 'client.pub'), join(dir, 'authorized_keys'));
    await writeFile(join(dir, 'sshd_config'), sshdConfig(dir));
    const port = await freePort();
    const daemon = spawnLogged(bins.sshd!, ['-D', '-e', '-f', join(dir, 'sshd_config'), '-p', String(port)]);
    procs.push(daemon);
    await waitUntil(daemon, 'sshd', () => /Server listening on/.test(daemon.output()));
    const local: Ports = { sink: await freePort(), source: await freePort(), echo: await freePort() };
    const forwards = (Object.keys(local) as (keyof Ports)[]).flatMap((k) => [
      '-L',
      `${local[k]}:127.0.0.1:${targets[k]}`,
    ]);
    const client = spawnLogged(bins.ssh!, [
      '-N',
      '-T',
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'ExitOnForwardFailure=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'LogLevel=ERROR',
      '-c',
      'aes128-gcm@openssh.com',
      '-i',
      join(dir, 'client'),
      '-p',
      String(port),
      ...forwards,
      `${userInfo().username}@127.0.0.1`,
    ]);
    procs.push(client);
    await waitUntil(client, 'ssh -L', async () =>
      (await Promise.all(Object.values(local).map(accepts))).every(Boolean),
    );
    return {
      path: {
        name: 'ssh -L',
        ports: local,
        pids: () => ({ ssh: [client.child.pid!], sshd: withDescendants(daemon.child.pid!) }),
      },
      close,
    };
  } catch (e) {
    await close();
    return `set-up failed: ${(e as Error).message}`;
  }
}

// ── rounds ──────────────────────────────────────────────────────────────────────────────────────────

async function measure(paths: Path[]): Promise<Map<string, Stats>> {
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

const mb = (x: number) => `${x.toFixed(0)} MB/s`;

function rows(s: Map<string, Stats>, sshSkipped?: string): BenchRow[] {
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
  // The issue's form of the latency target: what the tunnel adds over raw TCP, against what ssh -L adds.
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

export async function runTunnel(): Promise<BenchRow[]> {
  const targets = await startTargets();
  let ssh: SshForward | undefined, sshSkipped: string | undefined, d: Deployment | undefined;
  try {
    const s = await startSshForward(targets.ports);
    if (typeof s === 'string') process.stderr.write(`  ssh -L baseline skipped: ${(sshSkipped = s)}\n`);
    else ssh = s;
    d = await Deployment.create();
    const tunnel = await startTunnel(d, targets.ports);
    const paths: Path[] = [
      { name: 'raw TCP', ports: targets.ports, pids: () => ({}) },
      ...(ssh ? [ssh.path] : []),
      tunnel,
    ];
    return rows(await measure(paths), sshSkipped);
  } finally {
    await ssh?.close();
    await d?.stop();
    targets.close();
  }
}
