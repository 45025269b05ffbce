/**
 * Round trip of an integration command run on an engine, as a user calls it: `POST …/tenants/T/api/integrations/
 * I/run` (the http integration's `request`, a GET) over keep-alive HTTPS to main → host → tenant → engine (sealed
 * session) → a fake HTTP service → back, p50/p99, against `curl` to the same fake from the same machine: one `curl`
 * process per request, as the issue words it and as a person or script checks a service by hand, so the baseline
 * includes curl's start-up (a few ms) and a fresh TCP connection, as each engine call has (the engine's agents live
 * for one call). A keep-alive Node GET to the fake from this process is reported too, for context: the floor of one
 * HTTP exchange, against which the whole Palisade path is overhead. Real processes (main, host, tenant, engine),
 * interleaved in rounds; medians of rounds. Not a test: nothing asserts on time.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent, createServer, request as httpRequest, type Server } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Deployment } from '../test/harness/deployment.js';
import { runCli } from '../test/harness/processes.js';
import { median, percentile, type BenchRow } from './bench-util.js';

const N = 200;
const ROUNDS = 3;
const WARM_UP = 50;
const BODY = JSON.stringify({ tickets: [{ id: 7, title: 'phish' }] });

type Timed = () => Promise<number>;

export async function runIntegrationRtt(): Promise<BenchRow[]> {
  const fake: Server = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(BODY);
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  const port = (fake.address() as AddressInfo).port;
  const d = await Deployment.create();
  const toMain = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca: readFileSync(d.caCertPath) });
  const toFake = new HttpAgent({ keepAlive: true, maxSockets: 1 });
  try {
    await d.install('host', 'bench-host');
    await d.startAgent('bench-host');
    await d.createTenant('bench', 'bench-host');
    const session = await d.startEngine('bench-eng', 'bench', { allow: [`127.0.0.1:${port}`] });
    await setUp(d, port);
    const subjects: Record<'engine' | 'curl' | 'node', Timed> = {
      engine: () => viaEngine(d, toMain),
      curl: () => curl(`http://127.0.0.1:${port}/api/tickets`),
      node: () => nodeGet(toFake, port),
    };
    for (let i = 0; i < WARM_UP; i++) for (const s of Object.values(subjects)) await s(); // JIT, keep-alive, caches
    const p50 = { engine: [] as number[], curl: [] as number[], node: [] as number[] };
    const p99 = { engine: [] as number[], curl: [] as number[], node: [] as number[] };
    for (let r = 0; r < ROUNDS; r++) {
      const times = { engine: [] as number[], curl: [] as number[], node: [] as number[] };
      const order = (['engine', 'curl', 'node'] as const).map((_, i, a) => a[(i + r) % a.length]);
      for (let i = 0; i < N; i++) for (const k of order) times[k].push(await subjects[k]());
      for (const k of order) {
        p50[k].push(percentile(times[k], 50));
        p99[k].push(percentile(times[k], 99));
      }
    }
    const f = (x: number) => `${x.toFixed(2)} ms`;
    const row = (p: 'p50' | 'p99', base: 'curl' | 'node', what: string): BenchRow => {
      const by = p === 'p50' ? p50 : p99;
      return {
        figure: `integration run via engine (${session.transport}) ${p}`,
        value: f(median(by.engine)),
        baseline: `${what} ${f(median(by[base]))}`,
        ratio: median(by.engine) / median(by[base]),
        target: '(report)',
      };
    };
    return [
      row('p50', 'curl', 'curl per request'),
      row('p99', 'curl', 'curl per request'),
      row('p50', 'node', 'keep-alive Node GET'),
      row('p99', 'node', 'keep-alive Node GET'),
    ];
  } finally {
    toMain.destroy();
    toFake.destroy();
    await d.stop();
    fake.close();
  }
}

async function setUp(d: Deployment, port: number): Promise<void> {
  for (const args of [
    ['connections', 'create', 'svc', '--tenant', 'bench', '--type', 'http'].concat([
      ...['--set', `baseUrl=http://127.0.0.1:${port}/api`, '--set', 'authType=none'],
    ]),
    ['integrations', 'create', 'svc', '--tenant', 'bench', '--integration', 'http', '--connection', 'svc'].concat([
      ...['--run-on', 'engine:bench-eng'],
    ]),
  ]) {
    const r = await runCli(args, d.env);
    if (r.code !== 0) throw new Error(`${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
}

function viaEngine(d: Deployment, agent: HttpsAgent): Promise<number> {
  const body = JSON.stringify({ command: 'request', args: { method: 'GET', path: '/tickets' } });
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = httpsRequest(
      new URL('/api/v1/tenants/bench/api/integrations/svc/run', d.url),
      {
        method: 'POST',
        agent,
        headers: { authorization: `Bearer ${d.apiKey}`, 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () =>
          res.statusCode === 200 && text.includes('phish')
            ? resolve(performance.now() - t0)
            : reject(new Error(`integration run → ${res.statusCode}: ${text.slice(0, 300)}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** One `curl` process per request: its wall time from spawn to exit, as a script running curl sees it. */
function curl(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = spawn('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', url], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.on('error', reject);
    c.on('close', (code) =>
      code === 0 && out === '200' ? resolve(performance.now() - t0) : reject(new Error(`curl → ${code} ${out}`)),
    );
  });
}

function nodeGet(agent: HttpAgent, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = httpRequest({ host: '127.0.0.1', port, path: '/api/tickets', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(performance.now() - t0));
    });
    req.on('error', reject);
    req.end();
  });
}
