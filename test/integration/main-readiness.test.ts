/**
 * Two mains in one process (as benchmarks and in-process tests run them): each serves its own /metrics (one
 * prom-client Registry per main, so the second does not collide with the first), and /readyz turns 503, naming
 * the agent gateway, once the gateway stops admitting agents, as it does first when main shuts down.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '#common/logging.js';
import { initMain } from '../../main/init.js';
import { startMain, type RunningMain } from '../../main/server.js';
import { parseExposition, sampleSum } from '../harness/prometheus-text.js';

interface Started {
  main: RunningMain;
  key: string;
}
let dir = '';
const mains: Started[] = [];

async function start(name: string): Promise<Started> {
  const data = join(dir, name);
  const { adminApiKey } = await initMain({ data, hostname: '127.0.0.1', port: 0 });
  const main = await startMain({ data, port: 0, bind: '127.0.0.1', log: silentLogger() });
  return { main, key: adminApiKey };
}

function get(s: Started, path: string, key?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, s.main.url),
      { ca: s.main.services.caPem, headers: key ? { authorization: `Bearer ${key}` } : {} },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-readiness-'));
  mains.push(await start('a'), await start('b'));
});
afterAll(async () => {
  await Promise.all(mains.map((s) => s.main.close()));
  await rm(dir, { recursive: true, force: true });
});

describe('two mains in one process', () => {
  it('each serves its own metrics and is ready', async () => {
    for (const s of mains) {
      const m = await get(s, '/metrics', s.key);
      expect(m.status, m.body.slice(0, 300)).toBe(200);
      const e = parseExposition(m.body);
      expect(sampleSum(e, 'palisade_agents_connected')).toBe(0);
      expect(e.types.get('process_cpu_seconds_total')).toBe('counter');
      const r = await get(s, '/readyz');
      expect(r.status, r.body).toBe(200);
      expect(JSON.parse(r.body)).toMatchObject({ ready: true });
    }
    // A failed authentication on one main is counted by that main alone.
    expect((await get(mains[0], '/metrics', 'pal_AAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBB')).status).toBe(401);
    const failures = async (s: Started) =>
      sampleSum(parseExposition((await get(s, '/metrics', s.key)).body), 'palisade_auth_failures_total');
    expect(await failures(mains[0])).toBe(1);
    expect(await failures(mains[1])).toBe(0);
  });

  it('answers /readyz 503 naming the agent gateway once it stops admitting agents', async () => {
    const s = mains[1];
    await s.main.services.gateway.close();
    const r = await get(s, '/readyz');
    expect(r.status, r.body).toBe(503);
    const body = JSON.parse(r.body) as { ready: boolean; checks: Record<string, boolean>; error: { code: string } };
    expect(body).toMatchObject({ ready: false, checks: { store: true, https: true, agents: false } });
    expect(body.error.code).toBe('ERR_NOT_READY');
    expect(r.body).toContain('agent gateway');
    expect((await get(mains[0], '/readyz')).status).toBe(200);
  });
});
