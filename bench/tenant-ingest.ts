/**
 * Tenant ingest (issue 3; DESIGN §8 P5): incidents POSTed in batches of 1 000 to a real tenant process's
 * API on loopback — signed by a main key, verified, validated, stored — against a raw `level` batch() of the same
 * JSON records into a fresh store, in the same run, interleaved, median of rounds. Also range reads:
 * paging the tenant's list API vs raw level values() over the same keys.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import nacl from 'tweetnacl';
import { bodyHash, signRequest, AUTH_HEADER, SIGNATURE_HEADER } from '#common/signed-request.js';
import { TenantStore } from '../agent/tenant/store.js';
import { median, type BenchRow } from './bench-util.js';
import { freePort } from '../test/harness/processes.js';

const TENANT_MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'agent', 'tenant', 'tenant-main.js');

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const up = await new Promise<boolean>((r) => { const s = connect(port, '127.0.0.1', () => { s.end(); r(true); }); s.on('error', () => r(false)); });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`tenant did not listen on ${port}`);
}

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
    // The baseline gets its records ready-made: only level's own encoding and write are timed.
    const stored = recs.map((r, i) => ({ id: String(i + 1), name: r.name, type: r.type, severity: r.severity, details: r.details, status: 'open', created: now, updated: now }));
    let t0 = performance.now();
    for (let b = 0; b < BATCHES; b++) {
      await raw.batch(stored.slice(b * BATCH, (b + 1) * BATCH).map((r) => ({ type: 'put' as const, key: TenantStore.key(r.id), value: r })));
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

    // Subject: a real tenant process (as a host runs it), its API over loopback HTTP: signed, validated, stored.
    const tdir = join(dir, 'tenant');
    await mkdir(tdir, { recursive: true });
    const port = await freePort();
    // As the host's supervisor writes them: the tenant's tunnel key pair (needed at start) and its config.
    const kp = nacl.box.keyPair();
    const publicKey = Buffer.from(kp.publicKey).toString('base64');
    await writeFile(join(tdir, 'tenant-key.json'), JSON.stringify({ alg: 'nacl-box', publicKey, secretKey: Buffer.from(kp.secretKey).toString('base64') }), { mode: 0o600 });
    await writeFile(join(tdir, 'tenant.json'), JSON.stringify({ name: 'bench', port, mainPublicKey, publicKey, createdAt: now }));
    const child = spawn(process.execPath, [...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean), TENANT_MAIN, '--dir', tdir], { stdio: 'ignore' });
    await waitForPort(port);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const bodies = Array.from({ length: BATCHES }, (_, b) => JSON.stringify({ items: recs.slice(b * BATCH, (b + 1) * BATCH) }));
    // Warm-up: a long-running tenant has its JIT warm; a fresh process would be measured compiling.
    for (const body of bodies.slice(0, 5)) await post(port, agent, privateKey, '/api/v1/incidents', body);
    for (let i = 0; i < 5; i++) await post(port, agent, privateKey, '/api/v1/incidents?limit=1000', undefined, 'GET');
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
    await new Promise<void>((r) => { child.once('exit', () => r()); child.kill('SIGTERM'); });
    agent.destroy();
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
