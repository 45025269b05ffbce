/**
 * A tenant's gate and the doors around it, attacked with real processes: a signed request captured
 * before the tenant restarts is still refused as a replay after; a flood of unsigned requests on its
 * loopback port costs a bounded number of audit rows (plus a summary) and bytes; a forged tenant key
 * costs the same time at main whether its tenant exists or not; and its engine judges an IPv4-mapped
 * destination as the IPv4 address inside it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { Deployment, type TenantRow } from '../harness/deployment.js';
import { until } from '../harness/processes.js';
import { directRequest, mainSigningKey, signedHeaders } from '../harness/tenant-client.js';

const T = 'tg';
let d: Deployment;
let service: Server;
let servicePort = 0;

interface AuditRow {
  at: string;
  actor: string;
  action: string;
  outcome: string;
  code?: string;
  detail?: { suppressed?: Record<string, number> };
}

beforeAll(async () => {
  // Failed authentications in the timing test stay under main's per-address throttle.
  d = await Deployment.create({ mainConfig: { authFailuresPerMinute: 1000 } });
  await d.install('host', 'hg');
  await d.startAgent('hg');
  await d.createTenant(T, 'hg');
  service = createServer((s) => s.on('error', () => undefined).end());
  await new Promise<void>((r) => service.listen(0, '127.0.0.1', r));
  servicePort = (service.address() as { port: number }).port;
  await d.startEngine('eg', T, { allow: [`127.0.0.1:${servicePort}`] });
});
afterAll(async () => {
  await d?.stop();
  service?.close();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

const tenantDir = () => join(d.agents.get('hg')!.dir, 'tenants', T);

async function tenant(): Promise<TenantRow> {
  return (await d.tenant(T))!;
}

async function bytesUnder(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true }))
    if (e.isFile()) n += (await stat(join(e.parentPath, e.name))).size;
  return n;
}

describe("a tenant's replay cache", () => {
  it('refuses a signed request captured before the tenant restarted, as a replay, until it expires', async () => {
    const key = await mainSigningKey(d.mainDir);
    const name = `once-${randomBytes(4).toString('hex')}`;
    const body = JSON.stringify({ name, type: 't', severity: 1 });
    const headers = signedHeaders(key, T, 'POST', '/api/v1/incidents', body);
    // A read's id is written behind (not waited for): it must be on disk by the crash all the same.
    const readHeaders = signedHeaders(key, T, 'GET', '/api/v1/incidents');
    const before = await tenant();
    expect((await directRequest(before.port, 'GET', '/api/v1/incidents', readHeaders)).status).toBe(200);
    expect((await directRequest(before.port, 'POST', '/api/v1/incidents', headers, body)).status).toBe(201);
    expect(
      (await directRequest<{ error: { code: string } }>(before.port, 'POST', '/api/v1/incidents', headers, body)).body
        .error.code,
    ).toBe('ERR_SIGNATURE_REPLAYED');

    process.kill(before.pid!, 'SIGKILL'); // a crash: the host restarts it
    const after = await d.tenantRunning(T, { notPid: before.pid!, timeoutMs: 30_000 });
    const replay = await until(
      'the restarted tenant answers',
      () =>
        directRequest<{ error?: { code: string } }>(after.port, 'POST', '/api/v1/incidents', headers, body).catch(
          () => undefined,
        ),
      15_000,
    );
    expect(replay.status).toBe(403);
    expect(replay.body.error?.code).toBe('ERR_SIGNATURE_REPLAYED');
    const readReplay = await directRequest<{ error?: { code: string } }>(
      after.port,
      'GET',
      '/api/v1/incidents',
      readHeaders,
    );
    expect(readReplay.body.error?.code).toBe('ERR_SIGNATURE_REPLAYED');
    const list = await d.cli(['incidents', 'list', '--tenant', T, '--q', name, '--json']);
    expect((list.json as { items: unknown[] }).items).toHaveLength(1);
  }, 90_000);
});

describe("unsigned requests on a tenant's loopback port", () => {
  it('a flood of 5 000 writes a bounded number of audit rows plus a summary, and the store stays small', async () => {
    const N = 5000;
    const since = new Date().toISOString();
    const { port } = await tenant();
    const storeBefore = await bytesUnder(join(tenantDir(), 'store'));
    const logBefore = (await stat(join(tenantDir(), 'logs', 'tenant.log'))).size;
    let next = 0;
    const statuses = new Map<number, number>();
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < N) {
          next++;
          const r = await directRequest(port, 'GET', '/api/v1/incidents');
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        }
      }),
    );
    expect(Object.fromEntries(statuses)).toEqual({ 403: N });

    // Every refusal is accounted for: a row of its own, or counted in a summary row. (A page of 200 is
    // plenty: more than 50 fresh rows is already a failure.)
    const rows = await until(
      'the summary accounts for every refusal',
      async () => {
        const r = await d.cli(['audit', '--tenant', T, '--limit', '200', '--json']);
        const fresh = (r.json as AuditRow[]).filter((a) => a.at >= since && a.actor === 'unsigned');
        const summed = fresh.reduce(
          (n, a) =>
            n +
            (a.action === 'auth.unsigned' ? Object.values(a.detail?.suppressed ?? {}).reduce((x, y) => x + y, 0) : 1),
          0,
        );
        return summed === N || fresh.length > 50 ? fresh : undefined;
      },
      30_000,
      1000,
    );
    expect(rows.filter((a) => a.action !== 'auth.unsigned').length).toBeLessThanOrEqual(25);
    expect(rows.filter((a) => a.action === 'auth.unsigned').length).toBeLessThanOrEqual(5);
    expect(rows.find((a) => a.action === 'auth.unsigned')?.detail?.suppressed).toHaveProperty('ERR_SIGNATURE_MISSING');
    // 5 000 rows would be ~1.5 MB; the bounded ones are a few KB (with the audit reads' own replay entries).
    expect((await bytesUnder(join(tenantDir(), 'store'))) - storeBefore).toBeLessThan(256 * 1024);
    expect((await stat(join(tenantDir(), 'logs', 'tenant.log'))).size - logBefore).toBeLessThan(64 * 1024);
  }, 120_000);
});

describe('a forged tenant key at main', () => {
  /** One GET on a kept-alive connection (no handshake in the timing), with the key given. */
  function timedGet(agent: Agent, path: string, key: string): Promise<{ ms: number; status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      request(
        new URL(`/api/v1${path}`, d.url),
        { agent, ca: readFileSync(d.caCertPath), headers: { authorization: `Bearer ${key}` } },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => {
            body += c;
          });
          res.on('end', () => resolve({ ms: performance.now() - t0, status: res.statusCode ?? 0, body }));
        },
      )
        .on('error', reject)
        .end();
    });
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

  it('is refused in the same time and with the same answer whether its tenant exists or not', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const forged = (t: string) =>
      `ptk_${t}~${randomBytes(9).toString('base64url')}.${randomBytes(32).toString('base64url')}`;
    const times: Record<string, number[]> = { [T]: [], 'no-such-tenant': [] };
    const bodies = new Set<string>();
    try {
      await timedGet(agent, `/tenants/${T}/api/incidents`, forged(T)); // warm the connection
      // Interleaved, so a load spike on this machine slows both alike.
      for (let i = 0; i < 20; i++) {
        for (const t of Object.keys(times)) {
          const r = await timedGet(agent, `/tenants/${t}/api/incidents`, forged(t));
          expect(r.status, r.body).toBe(401);
          bodies.add(r.body);
          times[t].push(r.ms);
        }
      }
    } finally {
      agent.destroy();
    }
    expect([...bodies]).toHaveLength(1); // one answer, byte for byte
    const [a, b] = Object.values(times).map(median);
    // Before: ~1 ms for a missing tenant against a relay round trip for a real one (several times that).
    expect(Math.abs(a - b) / Math.max(a, b), `medians ${a.toFixed(1)} ms vs ${b.toFixed(1)} ms`).toBeLessThan(0.2);
  }, 60_000);
});

describe("the tenant's engine", () => {
  it('judges an IPv4-mapped destination as the IPv4 address inside it', async () => {
    await until('engine session at the tenant', async () => (await d.engineSessions(T)).length === 1, 30_000);
    const run = (host: string) =>
      d.cli([
        'engine',
        'run',
        'tcp.check',
        '--tenant',
        T,
        '--args',
        JSON.stringify({ host, port: servicePort }),
        '--json',
      ]);
    const mapped = await run('::ffff:127.0.0.1');
    expect(mapped.code, mapped.stdout + mapped.stderr).toBe(0);
    expect(mapped.json).toMatchObject({ result: { reachable: true, port: servicePort } });
    const neighbour = await run('::ffff:127.0.0.2');
    expect(neighbour.code).toBe(2);
    expect(neighbour.json).toMatchObject({ error: { code: 'ERR_TUNNEL_NOT_ALLOWED' } });
  });
});
