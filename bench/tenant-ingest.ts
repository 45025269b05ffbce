/**
 * Tenant ingest (P5 of docs/benchmarks.md): incidents POSTed in batches of 1 000 to a real tenant process's
 * API on loopback — signed by a main key, verified, validated, stored — against a raw `level` batch() of the same
 * JSON records, in the same run, subjects rotated each round, medians of rounds: one batch at a time against
 * raw batches one at a time, and several in flight against raw with as many pending. The tenant is one
 * long-running, warmed process, like a host's; every store grows alike across rounds. Also range reads:
 * paging the tenant's list API and the store layer vs raw level nextv() over the same number of records.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { TenantStore } from '../agent/tenant/store.js';
import { median, rotated, type BenchRow } from './bench-util.js';
import { NDJSON } from '#common/media-types.js';
import { startBenchTenant } from './bench-tenant.js';

const BATCH = 1000;
const BATCHES = 20;
const ROUNDS = 5;
/**
 * Batches in flight for the concurrent figures: a forwarder with a few connections, and raw level with as many batches
 * pending.
 */
const INFLIGHT = 4;

function records(seed: number) {
  return Array.from({ length: BATCH * BATCHES }, (_, i) => ({
    name: `incident ${seed}-${i}`,
    type: ['phishing', 'malware', 'identity'][i % 3],
    severity: i % 5,
    details: `host-${i % 97} user-${i % 89} ${'detail '.repeat(8)}`,
  }));
}
type Rec = ReturnType<typeof records>[number];
const batchOf = <T>(xs: T[], b: number) => xs.slice(b * BATCH, (b + 1) * BATCH);

/** `work(b)` for b = 0…BATCHES-1 with `inflight` pending at a time; records per second. */
async function rate(inflight: number, work: (b: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inflight }, async () => {
      while (next < BATCHES) await work(next++);
    }),
  );
  return (BATCH * BATCHES) / ((performance.now() - t0) / 1000);
}

const jsonBody = (recs: Rec[]) => Buffer.from(JSON.stringify({ items: recs }));
const ndjsonBody = (recs: Rec[]) => Buffer.from(recs.map((r) => JSON.stringify(r)).join('\n'));

export async function runTenantIngest(): Promise<BenchRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-bench-ingest-'));
  const now = new Date().toISOString();

  // Baselines: raw `level` with the same JSON value encoding, keys and records (ready-made: only level's
  // encoding and write are timed). Long-lived stores, like the tenant's, so all grow alike across rounds.
  const raw = new Level<string, unknown>(join(dir, 'raw'), { valueEncoding: 'json' });
  await raw.open();
  let rawSeq = 0;
  const rawBatch = (recs: Rec[]) =>
    raw.batch(
      recs.map((r) => {
        const id = String(++rawSeq);
        return {
          type: 'put' as const,
          key: TenantStore.key(id),
          value: {
            id,
            name: r.name,
            type: r.type,
            severity: r.severity,
            details: r.details,
            status: 'open',
            created: now,
            updated: now,
          },
        };
      }),
    );
  // The store layer alone (P5): createIncidents and listIncidents, encoding included.
  const direct = new TenantStore(join(dir, 'direct'));
  await direct.open();

  // Subject: a real tenant process (as a host runs it), its API over loopback HTTP: signed, validated, stored.
  const tenant = await startBenchTenant({ dir: join(dir, 'tenant'), name: 'bench', sockets: INFLIGHT });
  try {
    const ingest = (body: Buffer, contentType: string) =>
      tenant.send('POST', '/api/v1/incidents', body, contentType).then((r) => {
        if (r.status !== 201) throw new Error(`ingest failed: ${r.status} ${r.body.slice(0, 200)}`);
      });
    // Warm-up of every path: a long-running tenant has its JIT warm; a fresh process would be measured compiling.
    const warm = records(-1);
    for (let b = 0; b < BATCHES; b++) {
      await ingest(jsonBody(batchOf(warm, b)), 'application/json');
      await ingest(ndjsonBody(batchOf(warm, b)), NDJSON);
      await rawBatch(batchOf(warm, b));
      await direct.createIncidents(batchOf(warm, b));
    }

    const figures: Record<string, number[]> = {};
    const subjects: [string, (recs: Rec[]) => Promise<number>][] = [
      ['raw', (recs) => rate(1, (b) => rawBatch(batchOf(recs, b)))],
      ['raw-inflight', (recs) => rate(INFLIGHT, (b) => rawBatch(batchOf(recs, b)))],
      [
        'store',
        (recs) =>
          rate(1, async (b) => {
            await direct.createIncidents(batchOf(recs, b));
          }),
      ],
      [
        'api-json',
        (recs) => {
          const bodies = Array.from({ length: BATCHES }, (_, b) => jsonBody(batchOf(recs, b)));
          return rate(1, (b) => ingest(bodies[b], 'application/json'));
        },
      ],
      [
        'api-ndjson',
        (recs) => {
          const bodies = Array.from({ length: BATCHES }, (_, b) => ndjsonBody(batchOf(recs, b)));
          return rate(1, (b) => ingest(bodies[b], NDJSON));
        },
      ],
      [
        'api-ndjson-inflight',
        (recs) => {
          const bodies = Array.from({ length: BATCHES }, (_, b) => ndjsonBody(batchOf(recs, b)));
          return rate(INFLIGHT, (b) => ingest(bodies[b], NDJSON));
        },
      ],
    ];
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, run] of rotated(subjects, round))
        (figures[name] ??= []).push(await run(records(round * 100 + name.length)));
    }

    // Range reads: newest first, pages of 1 000, over what each store now holds.
    const reads: Record<string, number[]> = { raw: [], store: [], api: [] };
    for (let round = 0; round < ROUNDS; round++) {
      let t0 = performance.now();
      let n = 0;
      const it = raw.iterator({ reverse: true, limit: 20_000 });
      for (let page = await it.nextv(1000); page.length; page = await it.nextv(1000)) n += page.length;
      await it.close();
      reads.raw.push(n / ((performance.now() - t0) / 1000));
      t0 = performance.now();
      n = 0;
      for (let cur: string | null | undefined; n < 20_000 && cur !== null;) {
        const page = await direct.listIncidents({}, 1000, cur);
        n += page.items.length;
        cur = page.next;
      }
      reads.store.push(n / ((performance.now() - t0) / 1000));
      t0 = performance.now();
      n = 0;
      for (let cur: string | null = ''; n < 20_000 && cur !== null;) {
        const r = await tenant.send('GET', `/api/v1/incidents?limit=1000${cur ? `&cursor=${cur}` : ''}`);
        const page = JSON.parse(r.body) as { items: unknown[]; next: string | null };
        n += page.items.length;
        cur = page.next;
      }
      reads.api.push(n / ((performance.now() - t0) / 1000));
    }

    const m = (k: string) => Math.round(median(figures[k]));
    const seq = m('raw'),
      infl = m('raw-inflight');
    const rawR = Math.round(median(reads.raw));
    return [
      {
        figure: 'tenant ingest via its API, JSON batches of 1000, one at a time (records/s)',
        value: String(m('api-json')),
        baseline: `raw level batch ${seq}`,
        ratio: m('api-json') / seq,
        target: '≥ 0.7×',
      },
      {
        figure: 'tenant ingest via its API, NDJSON batches of 1000, one at a time (records/s)',
        value: String(m('api-ndjson')),
        baseline: `raw level batch ${seq}`,
        ratio: m('api-ndjson') / seq,
        target: '≥ 0.7×',
      },
      {
        figure: `tenant ingest via its API, NDJSON batches of 1000, ${INFLIGHT} in flight (records/s)`,
        value: String(m('api-ndjson-inflight')),
        baseline: `raw level, ${INFLIGHT} batches in flight ${infl}`,
        ratio: m('api-ndjson-inflight') / infl,
        target: '≥ 0.7×',
      },
      {
        figure: 'P5 ingest through the store layer (records/s)',
        value: String(m('store')),
        baseline: `raw level batch ${seq}`,
        ratio: m('store') / seq,
        target: '≥ 0.8×',
      },
      {
        figure: 'P5 range read through the store layer (records/s)',
        value: String(Math.round(median(reads.store))),
        baseline: `raw level nextv ${rawR}`,
        ratio: median(reads.store) / rawR,
        target: '≥ 0.9×',
      },
      {
        figure: 'range read via the API, pages of 1000 (records/s)',
        value: String(Math.round(median(reads.api))),
        baseline: `raw level nextv ${rawR}`,
        ratio: median(reads.api) / rawR,
        target: '(no target; HTTP + JSON both ends)',
      },
    ];
  } finally {
    await tenant.stop();
    await raw.close();
    await direct.close();
    await rm(dir, { recursive: true, force: true });
  }
}
