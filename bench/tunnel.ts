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
 *
 * This module sets up the Palisade path and runs the whole; the rest is split by concern:
 * bench/tunnel-traffic.ts (target servers and timed clients), bench/tunnel-baselines.ts (raw TCP, ssh -L),
 * bench/tunnel-rounds.ts (the measurement loops and the knobs), bench/tunnel-cpu.ts (CPU sampling) and
 * bench/tunnel-report.ts (the figures).
 */
import { Deployment } from '../test/harness/deployment.js';
import { aeadBackend } from '../agent/tunnel/native-aead.js';
import type { BenchRow } from './bench-util.js';
import { rawTcpPath, startSshForward, type SshForward } from './tunnel-baselines.js';
import { withDescendants } from './tunnel-cpu.js';
import { rows } from './tunnel-report.js';
import { measure, type Path } from './tunnel-rounds.js';
import { startTargets, type Ports } from './tunnel-traffic.js';

const TUNNEL_PATH = process.env.PALISADE_BENCH_TUNNEL_PATH === 'relay' ? 'relay' : 'direct';

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

export async function runTunnel(): Promise<BenchRow[]> {
  const targets = await startTargets();
  let ssh: SshForward | undefined, sshSkipped: string | undefined, d: Deployment | undefined;
  try {
    const s = await startSshForward(targets.ports);
    if (typeof s === 'string') process.stderr.write(`  ssh -L baseline skipped: ${(sshSkipped = s)}\n`);
    else ssh = s;
    d = await Deployment.create();
    const tunnel = await startTunnel(d, targets.ports);
    const paths: Path[] = [rawTcpPath(targets.ports), ...(ssh ? [ssh.path] : []), tunnel];
    return rows(await measure(paths), sshSkipped);
  } finally {
    await ssh?.close();
    await d?.stop();
    targets.close();
  }
}
