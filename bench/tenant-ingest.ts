/**
 * Tenant ingest (issue 3; DESIGN §8 P5): incidents POSTed in batches of 1 000 to a real tenant API on
 * loopback — signed by a main key, verified, validated, stored — against a raw `level` batch() of the same
 * JSON records into a fresh store, in the same run, interleaved, median of rounds. Also range reads:
 * paging the tenant's list API vs raw level values() over the same keys.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { silentLogger } from '#common/logging.js';
import { bodyHash, signRequest, AUTH_HEADER, SIGNATURE_HEADER } from '#common/signed-request.js';
import { TenantStore } from '../agent/tenant/store.js';
import { buildTenantApp } from '../agent/tenant/tenant-app.js';
import { median, type BenchRow } from './bench-util.js';

const BATCH = 1000;
const BATCHES = 20;
const ROUNDS = 5;

function records(round: number) {
  return Array.from({ length: BATCH * BATCHES }, (_, i) => ({
    name: `incident ${round}-${i}`, type: ['phishing', 'malware', 'identity'][i % 3], severity: i % 5,
    details: `host-${i % 97} user-${i % 89} ${'detail '.repeat(8)}`,
  }));
}

function post(port: number, agent: Agent, key: ReturnType<typeof generateKeyPairSync>['privateKey'], path: string, body: string | undefined, method = 'POST'): Promise<{ status: number; body: string }> {
  const s = signRequest(key, { tenant: 'bench', method, path, bodySha256: bodyHash(body), user: { id: 'u', name: 'bench', roles: ['admin'] } });
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent, headers: { [AUTH_HEADER]: s.auth, [SIGNATURE_HEADER]: s.signature, ...(body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}



export async function runTenantIngest(): Promise<BenchRow[]> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const mainPublicKey = Buffer.from((publicKey.export({ format: 'jwk' }) as { x: string }).x, 'base64url').toString('base64');
  const apiRates: number[] = [], rawRates: number[] = [], apiRead: number[] = [], rawRead: number[] = [], storeRates: number[] = [], storeRead: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-ingest-'));
    const recs = records(round);
    // Baseline: raw level batch of the same records, keyed the same way, JSON-encoded.
    const raw = new Level<string, unknown>(join(dir, 'raw'), { valueEncoding: 'json' });
    await raw.open();
    const now = new Date().toISOString();
    let t0 = performance.now();
    for (let b = 0; b < BATCHES; b++) {
      await raw.batch(recs.slice(b * BATCH, (b + 1) * BATCH).map((r, i) => ({ type: 'put' as const, key: TenantStore.key(String(b * BATCH + i + 1)), value: { ...r, id: String(b * BATCH + i + 1), status: 'open', created: now, updated: now } })));
    }
    rawRates.push(recs.length / ((performance.now() - t0) / 1000));
    t0 = performance.now();
    let n = 0;
    const rit = raw.iterator({ reverse: true });
    for (let page = await rit.nextv(1000); page.length; page = await rit.nextv(1000)) n += page.length;
    await rit.close();
    rawRead.push(n / ((performance.now() - t0) / 1000));
    await raw.close();

    // The store layer alone (DESIGN P5): createIncidents and listIncidents, encoding included.
    const direct = new TenantStore(join(dir, 'direct'));
    await direct.open();
    t0 = performance.now();
    for (let b = 0; b < BATCHES; b++) await direct.createIncidents(recs.slice(b * BATCH, (b + 1) * BATCH).map((r) => ({ ...r })));
    storeRates.push(recs.length / ((performance.now() - t0) / 1000));
    t0 = performance.now();
    let got = 0;
    for (let cur: string | null | undefined = undefined, first = true; first || cur; first = false) {
      const page = await direct.listIncidents({}, 1000, cur ?? undefined);
      got += page.items.length;
      cur = page.next;
    }
    storeRead.push(got / ((performance.now() - t0) / 1000));
    await direct.close();

    // Subject: the tenant's API over loopback HTTP, signed, validated, stored.
    const store = new TenantStore(join(dir, 'tenant'));
    await store.open();
    const app = await buildTenantApp({ name: 'bench', port: 0, mainPublicKey, publicKey: '', createdAt: now }, store, silentLogger());
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as { port: number }).port;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const bodies = Array.from({ length: BATCHES }, (_, b) => JSON.stringify({ items: recs.slice(b * BATCH, (b + 1) * BATCH) }));
    t0 = performance.now();
    for (const body of bodies) {
      const r = await post(port, agent, privateKey, '/api/v1/incidents', body);
      if (r.status !== 201) throw new Error(`ingest failed: ${r.status} ${r.body.slice(0, 200)}`);
    }
    apiRates.push(recs.length / ((performance.now() - t0) / 1000));
    t0 = performance.now();
    let cursor: string | null = null;
    let read = 0;
    do {
      const r = await post(port, agent, privateKey, `/api/v1/incidents?limit=1000${cursor ? `&cursor=${cursor}` : ''}`, undefined, 'GET');
      const page = JSON.parse(r.body) as { items: unknown[]; next: string | null };
      read += page.items.length;
      cursor = page.next;
    } while (cursor);
    apiRead.push(read / ((performance.now() - t0) / 1000));
    agent.destroy();
    await app.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
  const raw = Math.round(median(rawRates)), rawR = Math.round(median(rawRead));
  return [
    { figure: 'tenant ingest via its API, batches of 1000 (records/s)', value: Math.round(median(apiRates)).toString(), baseline: `raw level batch ${raw}`, ratio: median(apiRates) / raw, target: '≥ 0.7× (issue 3)' },
    { figure: 'P5 ingest through the store layer (records/s)', value: Math.round(median(storeRates)).toString(), baseline: `raw level batch ${raw}`, ratio: median(storeRates) / raw, target: '≥ 0.8×' },
    { figure: 'P5 range read through the store layer (records/s)', value: Math.round(median(storeRead)).toString(), baseline: `raw level nextv ${rawR}`, ratio: median(storeRead) / rawR, target: '≥ 0.9×' },
    { figure: 'range read via the API, pages of 1000 (records/s)', value: Math.round(median(apiRead)).toString(), baseline: `raw level nextv ${rawR}`, ratio: median(apiRead) / rawR, target: '(no target; HTTP + JSON both ends)' },
  ];
}
