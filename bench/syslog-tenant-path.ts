/**
 * The tenant's side of syslog ingest alone, in this process: `events.batch` args as the tenant's session hands them
 * over (bytes) into EngineEvents.onBatch and the real event pipeline on a real LevelDB (synced batches, a custom
 * property and two domain mappings, as the e2e tagging has), with neither the session's decryption nor the host's
 * relay; the tenant's store and its correlator (no rule) as the tenant app sets them up. Value: batches in the binary
 * form (agent/tunnel/events-batch-binary.ts) as an engine ≥ 1.11 seals them (BatchWriter, 120 KiB); same-run
 * baseline: the same records as JSON args cut at 120 KiB of JSON, as engines before 1.11 sent them, read as the tenant
 * reads those (JSON.parse, readEventsBatch). CPU per event of the main thread (process.threadCpuUsage: what limits the
 * tenant, LevelDB's writes run in the thread pool) and of the whole process, from the first batch handed over to the
 * last one stored; rounds interleaved, each on a fresh store, medians. Also binary batches 16 in flight, as an engine's
 * window sends them (several waiting for their write while others are read), with the main thread's GC pauses: what a
 * batch keeps through its write is copied at every scavenge.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PerformanceObserver } from 'node:perf_hooks';
import { pino } from 'pino';
import type { SyslogRecord } from '#common/syslog-record.js';
import { BatchWriter, type SyslogOrigin } from '../agent/engine/syslog/syslog-batch.js';
import { BATCH_BYTES } from '../agent/engine/syslog/syslog-spool.js';
import { createEventPipeline } from '../agent/tenant/events/event-pipeline.js';
import { EngineEvents } from '../agent/tenant/tunnels/engine-events.js';
import { Correlator } from '../agent/tenant/events/correlation.js';
import { ContentStore } from '../agent/tenant/content-store.js';
import { TenantStore } from '../agent/tenant/store.js';
import { syntheticLines } from './syslog-baseline.js';
import { median, type BenchRow } from './bench-util.js';

const N = Number(process.env.PALISADE_BENCH_SYSLOG_TENANT_N ?? 200_000);
const ROUNDS = Number(process.env.PALISADE_BENCH_SYSLOG_TENANT_ROUNDS ?? 3);
const ENGINE = 'bench-eng';

interface Round {
  mainUs: number;
  processUs: number;
  eventsPerSec: number;
  /** Main-thread GC pauses per event (µs). */
  gcUs: number;
}

/** Batches handed over at once in the windowed rounds: an engine's window (syslog-forwarder.ts). */
const WINDOW = 16;

/** The lines as an engine ≥ 1.11 batches them, and as JSON args of at most 120 KiB, as older engines did. */
function makeBatches(lines: string[]): { binary: Buffer[]; json: Buffer[] } {
  const now = Date.now();
  const w = new BatchWriter(BATCH_BYTES);
  const binary: Buffer[] = [];
  const json: Buffer[] = [];
  const seal = () => binary.push(Buffer.from(w.finish(binary.length + 1, 0, 0).body));
  let records: string[] = [];
  let bytes = 0;
  const sealJson = () => {
    const head = `{"engine":"${ENGINE}","seq":${json.length + 1},"spool":{"received":0,"dropped":0},"records":[`;
    json.push(Buffer.from(`${head}${records.join(',')}]}`));
    records = [];
    bytes = 0;
  };
  let origin: SyslogOrigin = { receivedAt: now, sender: '127.0.0.1', transport: 'tcp' };
  for (let i = 0; i < lines.length; i++) {
    // Messages of one read share an origin: one per millisecond here (about 100 per read).
    if (i % 100 === 0) origin = { receivedAt: now + Math.floor(i / 100), sender: '127.0.0.1', transport: 'tcp' };
    const src = Buffer.from(lines[i]);
    if (!w.appendMessage(src, 0, src.length, origin)) {
      seal();
      w.appendMessage(src, 0, src.length, origin);
    }
    if (w.records >= 2000) seal();
    const rec: SyslogRecord = { ...origin, raw: lines[i] };
    const r = JSON.stringify({
      receivedAt: rec.receivedAt,
      sender: rec.sender,
      transport: rec.transport,
      raw: rec.raw,
    });
    if (records.length && (bytes + r.length + 200 > BATCH_BYTES || records.length >= 2000)) sealJson();
    records.push(r);
    bytes += r.length + 1;
  }
  if (w.records) seal();
  if (records.length) sealJson();
  return { binary, json };
}

/** GC pause time (ms) of this process so far. */
let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

/**
 * One round: the batches into a fresh tenant store, `window` at a time (the next handed over as one is answered), as
 * an engine sends them: 1, one after the other; WINDOW, batches waiting for their write while others are read.
 */
async function round(batches: Buffer[], window = 1): Promise<Round> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-syslog-tenant-'));
  // The tenant's store (its LevelDB options) and its correlator after the store, with no rule, as the tenant app has.
  const store = new TenantStore(dir);
  await store.open();
  const db = store.db;
  // Fsynced: the tenant's `fsync` setting is on by default (and these figures always were).
  const pipeline = createEventPipeline({ db });
  const correlator = new Correlator({ content: new ContentStore(db), store, log: pino({ level: 'silent' }) });
  pipeline.stages.afterStore = (stored) => correlator.observe(stored);
  pipeline.stages.observes = () => correlator.observes();
  await pipeline.start();
  await pipeline.config.createProperty('user', 'user=(\\w+)');
  await pipeline.config.createDomain('hq');
  await pipeline.config.map('hq', { kind: 'property', key: 'user', value: 'u1' });
  await pipeline.config.createDomain('dc');
  await pipeline.config.map('dc', { kind: 'event-collector', key: ENGINE });
  const events = new EngineEvents();
  events.sink = pipeline;
  try {
    const cpu0 = process.cpuUsage();
    const main0 = process.threadCpuUsage();
    const gc0 = gcMs;
    const t0 = performance.now();
    let next = 0;
    const lane = async () => {
      // Each batch as its own copy, as each arrives in a buffer of its own.
      while (next < batches.length) await events.onBatch(ENGINE, Buffer.from(batches[next++]));
    };
    await Promise.all(Array.from({ length: window }, lane));
    const ms = performance.now() - t0;
    const main = process.threadCpuUsage(main0);
    const cpu = process.cpuUsage(cpu0);
    if (pipeline.stored !== N) throw new Error(`syslog-tenant-path: stored ${pipeline.stored} of ${N}`);
    return {
      mainUs: (main.user + main.system) / N,
      processUs: (cpu.user + cpu.system) / N,
      eventsPerSec: (N / ms) * 1000,
      gcUs: ((gcMs - gc0) * 1000) / N,
    };
  } finally {
    await pipeline.close();
    await correlator.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function runSyslogTenantPath(): Promise<BenchRow[]> {
  const { binary, json } = makeBatches(syntheticLines(N, 'tenant'));
  type Form = 'binary' | 'json' | 'windowed';
  const got: Record<Form, Round[]> = { binary: [], json: [], windowed: [] };
  await round(binary); // JIT
  await round(json);
  await round(binary, WINDOW);
  const forms: Form[][] = [
    ['binary', 'json', 'windowed'],
    ['windowed', 'json', 'binary'],
  ];
  for (let r = 0; r < ROUNDS; r++) {
    for (const form of forms[r % 2]) {
      const x = await round(form === 'json' ? json : binary, form === 'windowed' ? WINDOW : 1);
      got[form].push(x);
      process.stderr.write(
        `  ${form}: main thread ${x.mainUs.toFixed(2)} µs/event (GC ${x.gcUs.toFixed(2)}), process ` +
          `${x.processUs.toFixed(2)} µs/event, ${Math.round(x.eventsPerSec)} events/s\n`,
      );
    }
  }
  const med = (form: Form, k: keyof Round) => median(got[form].map((x) => x[k]));
  const batches = `${binary.length} binary batches, ${json.length} JSON`;
  return [
    {
      figure: `tenant syslog path main-thread CPU per event (events.batch → pipeline → LevelDB, ${N} msgs, ${batches})`,
      value: `${med('binary', 'mainUs').toFixed(2)} µs (process ${med('binary', 'processUs').toFixed(2)} µs)`,
      baseline: `JSON batches ${med('json', 'mainUs').toFixed(2)} µs (process ${med('json', 'processUs').toFixed(2)} µs)`,
      ratio: med('binary', 'mainUs') / med('json', 'mainUs'),
      target: '(report)',
    },
    {
      figure: `tenant syslog path main-thread CPU per event, ${WINDOW} binary batches in flight (as an engine sends them)`,
      value: `${med('windowed', 'mainUs').toFixed(2)} µs (GC ${med('windowed', 'gcUs').toFixed(2)} µs; ${Math.round(
        med('windowed', 'eventsPerSec'),
      )} events/s)`,
      baseline: `one at a time ${med('binary', 'mainUs').toFixed(2)} µs (GC ${med('binary', 'gcUs').toFixed(2)} µs)`,
      ratio: med('windowed', 'mainUs') / med('binary', 'mainUs'),
      target: '(report)',
    },
    {
      figure: 'tenant syslog path events/s (one batch at a time)',
      value: `${Math.round(med('binary', 'eventsPerSec'))} events/s`,
      baseline: `JSON batches ${Math.round(med('json', 'eventsPerSec'))} events/s`,
      ratio: med('binary', 'eventsPerSec') / med('json', 'eventsPerSec'),
      target: '(report)',
    },
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const row of await runSyslogTenantPath())
    process.stdout.write(`${row.figure}: ${row.value} (${row.baseline}; ${row.ratio.toFixed(2)}×)\n`);
}
