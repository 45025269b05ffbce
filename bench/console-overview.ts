/**
 * P11, the console's overview with 100 tenants on 10 hosts (docs/benchmarks.md): in Debian's Chromium, the time
 * from navigating to /overview (signed in, the context warm) until the page is usable — its tenants table holds
 * every tenant and its hosts table every host — against the REST calls that page needs (`GET /api/v1/session`,
 * `GET /api/v1/overview`) made directly from Node with the same session cookie over a kept-alive connection,
 * interleaved in rounds; medians. Hosts and tenants are written straight into main's registry while main is
 * stopped (as bench/agents-1000-fleet.ts does for agents): the overview reads the registry, not tenant processes,
 * so 100 real tenants would measure process start-up, not the console. Knobs: PALISADE_BENCH_CONSOLE_TENANTS
 * (default 100), PALISADE_BENCH_CONSOLE_HOSTS (10), PALISADE_BENCH_CONSOLE_N (samples per round, 10).
 */
import { Agent, request } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Registry } from '../main/registry.js';
import { Deployment } from '../test/harness/deployment.js';
import { haveChromium, launchChromium, newConsoleContext } from '../test/harness/browser.js';
import { median, percentile, type BenchRow } from './bench-util.js';

const TENANTS = Number(process.env.PALISADE_BENCH_CONSOLE_TENANTS) || 100;
const HOSTS = Number(process.env.PALISADE_BENCH_CONSOLE_HOSTS) || 10;
const N = Number(process.env.PALISADE_BENCH_CONSOLE_N) || 10;
const ROUNDS = 3;

async function seedRegistry(mainDir: string): Promise<void> {
  const registry = new Registry(join(mainDir, 'registry'));
  await registry.open();
  try {
    const now = new Date().toISOString();
    const hostIds: string[] = [];
    for (let h = 0; h < HOSTS; h++) {
      const id = `hst_${randomBytes(8).toString('hex')}`;
      const name = `bench-host-${h}`;
      hostIds.push(id);
      const record = {
        id,
        name,
        kind: 'host',
        certSerial: randomBytes(8).toString('hex'),
        fingerprint: randomBytes(32).toString('hex'),
        enrolledAt: now,
        lastSeen: now,
        sysinfo: { cpuLoadPct: (h * 37) % 100, cpuCores: 2, memTotal: 8 << 30, memAvailable: 4 << 30 },
      };
      await registry.db.batch([
        { type: 'put', sublevel: registry.agents, key: id, value: record },
        { type: 'put', sublevel: registry.agentNames, key: `host:${name}`, value: id },
      ] as never);
    }
    for (let t = 0; t < TENANTS; t++) {
      const h = t % HOSTS;
      const name = `bench-t${String(t).padStart(3, '0')}`;
      await registry.tenants.put(name, {
        name,
        hostId: hostIds[h],
        hostName: `bench-host-${h}`,
        port: 18501 + Math.floor(t / HOSTS),
        labels: t % 2 ? ['gold'] : ['silver'],
        publicKey: randomBytes(32).toString('base64'),
        status: 'running',
        createdAt: now,
        createdBy: 'bench',
      });
    }
  } finally {
    await registry.close();
  }
}

/** One GET with the session cookie over `agent`; resolves when the whole body is read. */
function get(d: Deployment, agent: Agent, cookie: string, path: string): Promise<number> {
  return new Promise((res, rej) => {
    const req = request(new URL(path, d.url), { agent, headers: { cookie } }, (r) => {
      r.on('data', () => undefined);
      r.on('end', () => (r.statusCode === 200 ? res(r.statusCode) : rej(new Error(`${path}: ${r.statusCode}`))));
    });
    req.on('error', rej);
    req.end();
  });
}

function signIn(d: Deployment, password: string): Promise<string> {
  return new Promise((res, rej) => {
    const body = JSON.stringify({ name: 'admin', password });
    const req = request(
      new URL('/api/v1/session', d.url),
      { method: 'POST', ca: readFileSync(d.caCertPath), headers: { 'content-type': 'application/json' } },
      (r) => {
        r.resume();
        const cookie = r.headers['set-cookie']?.find((c) => c.startsWith('__Host-palisade_session='))?.split(';')[0];
        r.on('end', () => (cookie ? res(cookie) : rej(new Error(`sign-in: ${r.statusCode}`))));
      },
    );
    req.on('error', rej);
    req.end(body);
  });
}

export async function runConsoleOverview(): Promise<BenchRow[]> {
  if (!haveChromium) {
    process.stderr.write('console-overview: /usr/bin/chromium is absent (apt-get install chromium): skipped\n');
    return [];
  }
  const d = await Deployment.create();
  const browser = await launchChromium();
  try {
    await d.main!.stop();
    await seedRegistry(d.mainDir);
    await d.startMain();
    const password = `bench-${randomBytes(9).toString('hex')}`;
    const pw = await d.api('PUT', '/users/admin/password', { password });
    if (pw.status !== 200) throw new Error(`set password: ${pw.status} ${pw.raw}`);
    const cookie = await signIn(d, password);
    const [host, port] = [new URL(d.url).hostname, new URL(d.url).port];
    const ctx = await newConsoleContext(browser);
    const [name, value] = cookie.split('=');
    await ctx.addCookies([{ name, value, domain: host, path: '/', secure: true, httpOnly: true, sameSite: 'Strict' }]);
    const page = await ctx.newPage();
    const agent = new Agent({ keepAlive: true, ca: readFileSync(d.caCertPath) });

    const browserMs: number[] = [];
    const restMs: number[] = [];
    const one = {
      browser: async () => {
        await page.goto('about:blank');
        const t0 = Date.now();
        await page.goto(`https://${host}:${port}/overview`);
        await page.waitForFunction(
          ([t, h]) => {
            const doc = (globalThis as unknown as { document: { querySelectorAll(s: string): ArrayLike<unknown> } })
              .document;
            const q = (sel: string) => doc.querySelectorAll(sel).length;
            return q('#ov-tenants + .table-wrap tbody tr') === t && q('#ov-hosts + .table-wrap tbody tr') === h;
          },
          [TENANTS, HOSTS],
          { polling: 'raf', timeout: 60_000 },
        );
        browserMs.push(Date.now() - t0);
      },
      rest: async () => {
        const t0 = process.hrtime.bigint();
        await get(d, agent, cookie, '/api/v1/session');
        await get(d, agent, cookie, '/api/v1/overview');
        restMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
      },
    };
    await one.browser(); // warm-up: the first load fetches and compiles the bundle
    await one.rest();
    browserMs.length = 0;
    restMs.length = 0;
    for (let r = 0; r < ROUNDS; r++) {
      for (let i = 0; i < N; i++) {
        if ((r + i) % 2) {
          await one.rest();
          await one.browser();
        } else {
          await one.browser();
          await one.rest();
        }
      }
    }
    agent.destroy();
    const f = (x: number) => `${x.toFixed(1)} ms`;
    const shape = `${TENANTS} tenants / ${HOSTS} hosts`;
    return [
      {
        figure: `P11 console overview usable in Chromium, ${shape}, p50`,
        value: f(median(browserMs)),
        baseline: `REST session + overview ${f(median(restMs))}`,
        ratio: median(browserMs) / median(restMs),
        target: '(report)',
      },
      {
        figure: `P11 console overview usable in Chromium, ${shape}, p90`,
        value: f(percentile(browserMs, 90)),
        baseline: `REST p90 ${f(percentile(restMs, 90))}`,
        ratio: percentile(browserMs, 90) / percentile(restMs, 90),
        target: '(report)',
      },
    ];
  } finally {
    await browser.close();
    await d.stop();
  }
}
