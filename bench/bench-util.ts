/** Shared pieces of the benchmarks: percentiles, medians, a result row, and an in-process deployment. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '#common/logging.js';
import { writeBundle, BUNDLE_FORMAT } from '#common/bundle.js';
import { initMain } from '../main/init.js';
import { startMain, type RunningMain } from '../main/server.js';
import { installAgent } from '../installer/install.js';
import { startAgent, type RunningAgent } from '../agent/agent.js';
import { removeTenantUsers } from '../test/harness/tenant-users.js';

export interface BenchRow {
  figure: string;
  value: string;
  baseline: string;
  ratio: number;
  target: string;
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}
export const median = (xs: readonly number[]) => percentile(xs, 50);
export const ms = (x: number) => `${x.toFixed(3)} ms`;

/** `p`, or a rejection after `ms`: a benchmark that loses a reply stops with an error instead of hanging. */
export function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer!: NodeJS.Timeout;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Round r's order of the subjects: rotated, so no subject always runs first (JIT, GC, CPU boost). */
export function rotated<T>(xs: readonly T[], r: number): T[] {
  const k = r % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

export interface InProcessDeployment {
  main: RunningMain;
  agent: RunningAgent;
  dir: string;
  agentDir: string;
  adminApiKey: string;
  close(): Promise<void>;
}

/**
 * main and one host agent (`bench-host`, enrolled through a real bundle) in this process, silent, on a free loopback
 * port.
 */
export async function inProcessDeployment(): Promise<InProcessDeployment> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-'));
  const { adminApiKey } = await initMain({ data: join(dir, 'main'), hostname: '127.0.0.1', port: 0 });
  const main = await startMain({ data: join(dir, 'main'), port: 0, bind: '127.0.0.1', log: silentLogger() });
  const key = await main.services.enrolment.createKey({
    kind: 'host',
    name: 'bench-host',
    ttlMs: 600_000,
    createdBy: 'bench',
  });
  const bundle = join(dir, 'bundle.tar.gz');
  await writeFile(
    bundle,
    await writeBundle({
      manifest: {
        format: BUNDLE_FORMAT,
        kind: 'host',
        name: 'bench-host',
        mainUrl: main.url,
        enrolKey: key.token,
        expiresAt: key.record.expiresAt,
      },
      caPem: main.services.caPem,
    }),
  );
  const agentDir = join(dir, 'agent');
  await installAgent({ bundle, dir: agentDir, cli: 'bench' });
  let ready!: () => void;
  const connected = new Promise<void>((r) => {
    ready = r;
  });
  const agent = await startAgent(agentDir, { onReady: () => ready() }, silentLogger());
  await connected;
  return {
    main,
    agent,
    dir,
    agentDir,
    adminApiKey,
    close: async () => {
      await agent.close();
      await main.close();
      await removeTenantUsers(dir);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
