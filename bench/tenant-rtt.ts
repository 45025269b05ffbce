/**
 * Round trip of a small GET to a tenant through main (client → main → host → tenant → back), p50/p99,
 * against the foundation's command round trip (client → main → host agent → back, a `ping`) measured in
 * the same run on the same deployment of real processes, interleaved in rounds; medians of rounds.
 */
import { Agent, request } from 'node:https';
import { readFileSync } from 'node:fs';
import { Deployment } from '../test/harness/deployment.js';
import { median, percentile, type BenchRow } from './bench-util.js';

const N = 400;
const ROUNDS = 3;

export async function runTenantRtt(): Promise<BenchRow[]> {
  const d = await Deployment.create();
  try {
    await d.install('host', 'rtt-host');
    await d.startAgent('rtt-host');
    await d.createTenant('rtt', 'rtt-host');
    const created = await d.api<{ id: string }>('POST', '/tenants/rtt/api/incidents', {
      name: 'bench',
      type: 'bench',
      severity: 1,
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: readFileSync(d.caCertPath) });
    const call = (method: string, path: string, body?: string) =>
      new Promise<number>((resolve, reject) => {
        const t0 = performance.now();
        const req = request(
          new URL(path, d.url),
          {
            method,
            agent,
            headers: { authorization: `Bearer ${d.apiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
          },
          (res) => {
            res.resume();
            res.on('end', () =>
              res.statusCode! < 300
                ? resolve(performance.now() - t0)
                : reject(new Error(`${path} → ${res.statusCode}`)),
            );
          },
        );
        req.on('error', reject);
        req.end(body);
      });
    const ping = () => call('POST', '/api/v1/hosts/rtt-host/commands', '{"command":"ping"}');
    const get = () => call('GET', `/api/v1/tenants/rtt/api/incidents/${created.body.id}`);
    for (let i = 0; i < 100; i++) {
      await ping();
      await get();
    } // warm-up: JIT, keep-alive, LevelDB caches
    const p50 = { ping: [] as number[], get: [] as number[] },
      p99 = { ping: [] as number[], get: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) {
      const a: number[] = [],
        b: number[] = [];
      for (let i = 0; i < N; i++) {
        a.push(await ping());
        b.push(await get());
      }
      p50.ping.push(percentile(a, 50));
      p99.ping.push(percentile(a, 99));
      p50.get.push(percentile(b, 50));
      p99.get.push(percentile(b, 99));
    }
    agent.destroy();
    const f = (x: number) => `${x.toFixed(2)} ms`;
    return [
      {
        figure: 'tenant GET via main→host→tenant p50',
        value: f(median(p50.get)),
        baseline: `host ping command ${f(median(p50.ping))}`,
        ratio: median(p50.get) / median(p50.ping),
        target: '(report)',
      },
      {
        figure: 'tenant GET via main→host→tenant p99',
        value: f(median(p99.get)),
        baseline: `host ping command ${f(median(p99.ping))}`,
        ratio: median(p99.get) / median(p99.ping),
        target: '(report)',
      },
    ];
  } finally {
    await d.stop();
  }
}
