/**
 * The tenant's event pipeline: what E1's transport hands each SyslogBatch from an engine (common/syslog-record.ts),
 * through its stages parse (syslog-header.ts, event-body.ts) → custom properties → domain tag (domain-tagger.ts)
 * → [obfuscate, later] → store (event-store.ts) → [correlate, later]. `ingest` resolves once the whole batch is
 * in the store in one LevelDB batch, synced to disk: the engine then drops it from its spool, so an acknowledged
 * event must survive a crash (one synced batch per SyslogBatch keeps that cheap, DESIGN §8: level does ~200k
 * records/s in batches of 1 000). It is idempotent per (engine, seq): a batch re-sent after a lost acknowledgement
 * is answered `duplicate: true` with what was stored the first time, and stored once.
 * It also runs the retention chore (purging what is older than the tenant's retention, hourly).
 * Not the configuration API (event-routes.ts, domain-routes.ts) nor the transport (the engine session's).
 */
import type { Level } from 'level';
import { isIP } from 'node:net';
import { BadParameterError } from '#common/errors.js';
import { isName } from '#common/names.js';
import type { Logger } from '#common/logging.js';
import {
  MAX_SYSLOG_BATCH_BYTES,
  MAX_SYSLOG_BATCH_RECORDS,
  MAX_SYSLOG_MESSAGE_BYTES,
  type EventSink,
  type SyslogBatch,
  type SyslogRecord,
} from '#common/syslog-record.js';
import { parseSyslogHeader } from './syslog-header.js';
import { parseEventBody } from './event-body.js';
import { EventConfig, SLOW_PROPERTY_MS, propertyValue, type LogSource } from './event-config.js';
import { buildTagTables, tagDomain, type TagTables } from './domain-tagger.js';
import { EventStore, eventKey, indexKey, markerKey, type StoredEvent } from './event-store.js';
import type { PipelineStages, StoredEventRef } from './pipeline-stages.js';

/** Retention runs this often (and once at start); an hour late at most is within any retention's meaning. */
export const RETENTION_EVERY_MS = 3_600_000;
/** A log source's `lastSeen` is written at most this often: not one extra write per event. */
const LAST_SEEN_EVERY_MS = 60_000;
const TRANSPORTS = new Set(['udp', 'tcp', 'tls']);
/** Hostnames a header may name as its log source's identifier (else the sender's address is used). */
const IDENTIFIER_RE = /^[A-Za-z0-9][A-Za-z0-9:._%-]{0,253}$/;

export interface EventPipeline extends EventSink {
  readonly config: EventConfig;
  readonly store: EventStore;
  /** Obfuscation before the store and correlation after it (pipeline-stages.ts); set by the tenant app. */
  readonly stages: PipelineStages;
  /** Events stored since the pipeline was created (duplicates once): the tenant's event rate counts on it. */
  readonly stored: number;
  /** Loads the configuration and starts the retention chore. */
  start(): Promise<void>;
  /** Runs retention now (the chore does it hourly). */
  purge(now?: number): Promise<void>;
  close(): Promise<void>;
}

export interface PipelineOptions {
  db: Level<string, unknown>;
  log?: Logger;
  /** Whether `ingest` syncs its batch to disk before resolving (default true; off only in benchmarks of the rest). */
  sync?: boolean;
}

/** Log sources a batch writes (new ones, and lastSeen updates), and which of them are new. */
type Sources = { write: Map<string, LogSource>; fresh: Set<string> };
/** A put on the root database: key already prefixed with its sublevel's, value already JSON (one encode each). */
type PutOp = { type: 'put'; key: string; value: string };

/** A sublevel's key prefix in its root database (abstract-level's `!name!`, read from the sublevel itself). */
const prefixOf = (sub: unknown): string => (sub as { prefix: string }).prefix;

/** How far ahead of the tenant's clock an engine's receive time may be (clock skew). */
const MAX_FUTURE_MS = 5 * 60_000;

function checkBatch(b: SyslogBatch): void {
  const bad = (field: string, why: string) => new BadParameterError('ERR_EVENT_BATCH', `${field}: ${why}`, { field });
  if (!b || typeof b !== 'object') throw bad('batch', 'not a batch');
  if (typeof b.engine !== 'string' || !isName(b.engine)) throw bad('engine', 'not an engine name');
  if (!Number.isSafeInteger(b.seq) || b.seq < 0) throw bad('seq', 'a whole number ≥ 0');
  if (!Array.isArray(b.records) || b.records.length > MAX_SYSLOG_BATCH_RECORDS)
    throw bad('records', `an array of at most ${MAX_SYSLOG_BATCH_RECORDS}`);
  let bytes = 0;
  for (const r of b.records as unknown[]) {
    const x = r as SyslogRecord;
    if (!x || typeof x.raw !== 'string' || typeof x.sender !== 'string' || !Number.isFinite(x.receivedAt))
      throw bad('records', 'each record has receivedAt, sender, transport and raw');
    if (!TRANSPORTS.has(x.transport)) throw bad('records', 'transport is udp, tcp or tls');
    bytes += x.raw.length;
  }
  if (bytes > MAX_SYSLOG_BATCH_BYTES * 2) throw bad('records', 'the batch is larger than an engine sends');
}

/** Cuts `raw` to MAX_SYSLOG_MESSAGE_BYTES of UTF-8 (the engine should have; a record over it is flagged). */
function bounded(raw: string): { text: string; truncated: boolean } {
  if (raw.length * 3 <= MAX_SYSLOG_MESSAGE_BYTES || Buffer.byteLength(raw) <= MAX_SYSLOG_MESSAGE_BYTES)
    return { text: raw, truncated: false };
  return { text: Buffer.from(raw).subarray(0, MAX_SYSLOG_MESSAGE_BYTES).toString('utf8'), truncated: true };
}

export function createEventPipeline(o: PipelineOptions): EventPipeline {
  const config = new EventConfig(o.db);
  const store = new EventStore(o.db);
  const sync = o.sync ?? true;
  const stages: PipelineStages = {};
  const inflight = new Map<string, Promise<{ accepted: number; duplicate: boolean }>>();
  let tables: TagTables | undefined;
  let tablesVersion = -1;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let storedCount = 0;
  // Batches may arrive (the host relays engines' sessions) before the app has started the pipeline: none is tagged
  // or given a log source id before the stored configuration is in memory.
  let loaded: Promise<void> | undefined;
  const load = () => (loaded ??= config.load());

  const currentTables = (): TagTables => {
    if (!tables || tablesVersion !== config.version) {
      tables = buildTagTables(config.mappings.values(), config.settings.cepFallthrough);
      tablesVersion = config.version;
    }
    return tables;
  };

  /** One record through parse → properties → tag; `sources` collects the log sources to write. */
  const toEvent = (r: SyslogRecord, engine: string, t: TagTables, sources: Sources): StoredEvent => {
    const { text, truncated } = bounded(r.raw);
    const h = parseSyslogHeader(text, r.receivedAt);
    const body = parseEventBody(h.message);
    const props: Record<string, string> = {};
    let anyProp = false;
    for (const p of config.properties.values()) {
      if (p.disabled) continue;
      const started = performance.now();
      const v = propertyValue(p.re, text);
      const took = performance.now() - started;
      if (took >= SLOW_PROPERTY_MS) {
        p.disabled = `took ${Math.round(took)} ms on one event at ${new Date().toISOString()}; off until the tenant restarts`;
        o.log?.warn({ property: p.name, ms: Math.round(took) }, 'custom property switched off: its regex is too slow');
      }
      if (v !== undefined) {
        props[p.name] = v;
        anyProp = true;
      }
    }
    const identifier = h.host && IDENTIFIER_RE.test(h.host) ? h.host : isIP(r.sender) ? r.sender : 'unknown';
    const found = config.sourceFor(identifier, engine);
    const logSource = found?.source.name ?? `${identifier}@${engine}`;
    if (found) {
      const s = found.source;
      const last = s.lastSeen ? Date.parse(s.lastSeen) : 0;
      if (found.fresh) sources.fresh.add(s.name);
      if (found.fresh || r.receivedAt - last >= LAST_SEEN_EVERY_MS) {
        const at = new Date(r.receivedAt).toISOString();
        s.firstSeen ??= at;
        s.lastSeen = at;
        sources.write.set(s.name, s);
      }
    }
    const tag = tagDomain(
      {
        properties: props,
        vlan: body.vlan,
        flowSource: body.flowSource,
        logSource,
        groups: found?.source.groups ?? [],
        engine,
      },
      t,
    );
    const e: StoredEvent = {
      time: new Date(r.receivedAt).toISOString(),
      domain: tag.domain,
      domainRule: tag.rule,
      logSource,
      engine,
      sender: r.sender,
      transport: r.transport,
      format: body.format,
      message: h.message,
    };
    if (h.time !== undefined) e.logSourceTime = new Date(h.time).toISOString();
    if (h.facility !== undefined) e.facility = h.facility;
    if (h.severity !== undefined) e.severity = h.severity;
    if (h.host !== undefined) e.host = h.host;
    if (h.app !== undefined) e.app = h.app;
    if (body.sourceAddress !== undefined) e.sourceAddress = body.sourceAddress;
    if (body.destinationAddress !== undefined) e.destinationAddress = body.destinationAddress;
    if (body.sourcePort !== undefined) e.sourcePort = body.sourcePort;
    if (body.destinationPort !== undefined) e.destinationPort = body.destinationPort;
    if (body.vlan !== undefined) e.vlan = body.vlan;
    if (body.flowSource !== undefined) e.flowSource = body.flowSource;
    if (anyProp) e.properties = props;
    if (truncated) e.truncated = true;
    return e;
  };

  const store1 = async (batch: SyslogBatch): Promise<{ accepted: number; duplicate: boolean }> => {
    const prev = await store.marker(batch.engine, batch.seq);
    if (prev) return { accepted: prev.accepted, duplicate: true };
    const t = currentTables();
    const sources: Sources = { write: new Map(), fresh: new Set() };
    const ops: PutOp[] = [];
    const stored: StoredEventRef[] = [];
    const index = new Map<string, string[]>();
    // An engine's clock (or a forged batch) must not place events beyond retention or ahead of every other event.
    const now = Date.now();
    const earliest = now - config.settings.retentionMs;
    // Root-level puts with the sublevels' prefixes added once here: sublevel ops in a root batch cost a prefixing and
    // an encoding step per op inside abstract-level, which measured as most of ingest time.
    const evPrefix = prefixOf(store.events);
    batch.records.forEach((given, i) => {
      const adjusted = !(given.receivedAt >= earliest && given.receivedAt <= now + MAX_FUTURE_MS);
      const r = adjusted ? { ...given, receivedAt: now } : given;
      const e = toEvent(r, batch.engine, t, sources);
      if (adjusted) e.timeAdjusted = true;
      stages.beforeStore?.(e);
      const key = eventKey(r.receivedAt, batch.engine, batch.seq, i);
      stored.push({ id: key, event: e });
      ops.push({ type: 'put', key: evPrefix + key, value: JSON.stringify(e) });
      const ik = indexKey(e.domain, r.receivedAt, batch.engine, batch.seq);
      const keys = index.get(ik);
      if (keys) keys.push(key);
      else index.set(ik, [key]);
    });
    const put = (sub: unknown, key: string, value: unknown) =>
      ops.push({ type: 'put', key: prefixOf(sub) + key, value: JSON.stringify(value) });
    for (const [key, value] of index) put(store.byDomain, key, value);
    for (const s of sources.write.values()) put(config.sourceSublevel, s.id, s);
    put(store.batches, markerKey(batch.engine, batch.seq), { at: Date.now(), accepted: batch.records.length });
    try {
      await o.db.batch(ops as never, { sync, keyEncoding: 'utf8', valueEncoding: 'utf8' } as never);
    } catch (e) {
      // New log sources of a batch that was not stored must be offered again with the next one.
      for (const name of sources.fresh) config.sources.delete(name);
      throw e;
    }
    storedCount += batch.records.length;
    stages.afterStore?.(stored);
    return { accepted: batch.records.length, duplicate: false };
  };

  const purge = async (now = Date.now()) => {
    await store.purge(now - config.settings.retentionMs, now);
  };

  return {
    config,
    store,
    stages,
    get stored() {
      return storedCount;
    },
    async start() {
      await load();
      const chore = () =>
        purge().catch((e: unknown) => o.log?.warn({ err: String(e) }, 'event retention failed; retrying next hour'));
      void chore();
      timer = setInterval(() => void chore(), RETENTION_EVERY_MS).unref();
    },
    purge,
    ingest(batch: SyslogBatch) {
      try {
        checkBatch(batch);
      } catch (e) {
        return Promise.reject(e as Error);
      }
      if (closed) return Promise.reject(new Error('the event pipeline is closed'));
      const k = markerKey(batch.engine, batch.seq);
      const running = inflight.get(k);
      if (running) return running.then((r) => ({ ...r, duplicate: true }));
      const p = load()
        .then(() => store1(batch))
        .finally(() => inflight.delete(k));
      inflight.set(k, p);
      return p;
    },
    async close() {
      closed = true;
      clearInterval(timer);
      await Promise.allSettled(inflight.values());
    },
  };
}
