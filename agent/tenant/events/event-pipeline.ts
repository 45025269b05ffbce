/**
 * The tenant's event pipeline: what the engine session hands each SyslogBatch from an engine (common/syslog-record.ts),
 * through its stages: log source (the header's host) → custom properties → domain tag (domain-tagger.ts) → obfuscate
 * (beforeStore, when rules are in force) → store (event-block.ts, event-store.ts) → correlate (afterStore). Records are
 * read by index (SyslogRecords): objects, or a binary batch read in place. Ingest reads of each message only what those
 * need; the header and body are parsed again when a search reads the event (the same pure functions, so the same view).
 * `ingest` resolves once the whole batch is in the store in one LevelDB batch, fsynced (unless the tenant's `fsync`
 * setting is off: then written, in the OS's page cache): the engine then drops it from its spool, so an acknowledged
 * event survives the tenant's crash, and with `fsync` a power loss too. It is idempotent per (engine, seq): a batch
 * re-sent after a lost acknowledgement is answered `duplicate: true` with what was stored the first time, and stored
 * once.
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
  recordsOf,
  type EventSink,
  type SyslogBatch,
  type SyslogRecord,
} from '#common/syslog-record.js';
import { BinaryRecords } from '../../tunnel/events-batch-binary.js';
import { headerHost, parseSyslogHeader } from './syslog-header.js';
import { parseEventBody } from './event-body.js';
import { EventConfig, SLOW_PROPERTY_MS, propertyValue, type LogSource } from './event-config.js';
import { SLOW_ON_V8_MS } from './property-matcher.js';
import { EventRuns, type Property } from './event-runs.js';
import { migrateLegacyEvents } from './event-migration.js';
import { buildTagTables, tagDomain, type Tag, type TagTables } from './domain-tagger.js';
import { BlockBuilder, comboOf, eventOf, readEntry, type Combo, type EventMeta } from './event-block.js';
import { EventStore, blockKey, eventKey, markerKey, prefixOf, type BatchMarker, type RootOp } from './event-store.js';
import type { PipelineStages, StoredEventRef } from './pipeline-stages.js';
import { GroupWriter } from '../group-writer.js';

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
  /** Settles once the store's span index is whole (started by `start`; searches work before, reading more). */
  readonly indexed: Promise<void>;
  /** Runs retention now (the chore does it hourly). */
  purge(now?: number): Promise<void>;
  close(): Promise<void>;
}

export interface PipelineOptions {
  db: Level<string, unknown>;
  log?: Logger;
}

/** Log sources a batch writes (new ones, and lastSeen updates), and which of them are new. */
type Sources = { write: Map<string, LogSource>; fresh: Set<string> };
/** A batch's log sources by header host and sender, with the first and last time each was seen in it. */
type Seen = Map<string, SeenSource>;
/** A tag, the shared strings of its entries, and their property set (one object: blocks tell sets apart by it). */
interface Tagged {
  tag: Tag;
  combo: Combo;
  properties?: Record<string, string>;
}
interface SeenSource {
  name: string;
  groups: readonly string[];
  source?: LogSource;
  fresh: boolean;
  first: number;
  last: number;
  /** By transport, then property values: the tag and the entries' shared strings (not kept when flows decide tags). */
  tags: Map<string, Map<string, Tagged>>;
  /** An obfuscation rule sealed its name in an event: the table of log sources must not keep it in clear. */
  sealed?: boolean;
}

/** A batch made ready to write (build), and what is needed once it is written, or was not. */
interface Built {
  ops: RootOp[];
  accepted: number;
  sources: Sources;
  evicted: string[];
  /** Its blocks, kept only when a stage after the store may read the events (correlation with rules in force). */
  blocks?: Map<string, BlockBuilder>;
}

/** How far ahead of the tenant's clock an engine's receive time may be (clock skew). */
const MAX_FUTURE_MS = 5 * 60_000;

function checkBatch(b: SyslogBatch): void {
  const bad = (field: string, why: string) => new BadParameterError('ERR_EVENT_BATCH', `${field}: ${why}`, { field });
  if (!b || typeof b !== 'object') throw bad('batch', 'not a batch');
  if (typeof b.engine !== 'string' || !isName(b.engine)) throw bad('engine', 'not an engine name');
  if (!Number.isSafeInteger(b.seq) || b.seq < 0) throw bad('seq', 'a whole number ≥ 0');
  // Checked whole as it was read (readEventsBatchBinary): its count, lengths and times are within the limits.
  if (b.records instanceof BinaryRecords) {
    if (b.records.length > MAX_SYSLOG_BATCH_RECORDS) throw bad('records', `at most ${MAX_SYSLOG_BATCH_RECORDS}`);
    return;
  }
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

/**
 * Several properties' values as one map key (their order is the configuration's, the same for every event). Each
 * value goes with its length: a value may hold any character, and two different sets must never make one key.
 */
function keyOfValues(on: readonly Property[], values: readonly (string | undefined)[], at: number): string {
  let k = '';
  for (let j = 0; j < on.length; j++) {
    const v = values[at + j];
    if (v !== undefined) k += `;${j}=${v.length}:${v}`;
  }
  return k;
}

/** The properties an event has (by name), or undefined when it has none. */
function propertiesOf(
  on: readonly Property[],
  values: readonly (string | undefined)[],
  at: number,
): Record<string, string> | undefined {
  let props: Record<string, string> | undefined;
  for (let j = 0; j < on.length; j++) if (values[at + j] !== undefined) (props ??= {})[on[j].name] = values[at + j]!;
  return props;
}

/**
 * A copy of `s` that does not keep alive the string it may be a slice of (a plain batch's messages: BinaryRecords):
 * flattening the concatenation copies it.
 */
const own = (s: string): string => (' ' + s).slice(1);

/**
 * The events of a stored batch in batch order, read back from its blocks (afterStore's `stored()`). A plain block's
 * messages are copied first: the events' strings are slices of them, and correlation keeps some for a long time.
 */
function storedRefs(blocks: Map<string, BlockBuilder>): StoredEventRef[] {
  const out: { i: number; ref: StoredEventRef }[] = [];
  for (const b of blocks.values()) {
    const x = b.plain ? { ...b.block, r: b.block.r.map(own) } : b.block;
    for (let at = 0; at < x.i.length; at++) {
      const ref = { id: eventKey(x.t[at], x.e, x.s, x.i[at]), event: readEntry(x, at).event };
      out.push({ i: x.i[at], ref });
    }
  }
  return out.sort((a, b) => a.i - b.i).map((x) => x.ref);
}

export function createEventPipeline(o: PipelineOptions): EventPipeline {
  const config = new EventConfig(o.db);
  const store = new EventStore(o.db);
  // Batches stored while one is being written go down together after it (an engine keeps up to 16 in flight): one
  // call into LevelDB and one fsync for all of them, each acknowledged once on disk (once written, `fsync` off).
  const writer = new GroupWriter<RootOp>(o.db, () => ({
    sync: config.settings.fsync,
    keyEncoding: 'utf8',
    valueEncoding: 'utf8',
  }));
  const stages: PipelineStages = {};
  const inflight = new Map<string, Promise<{ accepted: number; duplicate: boolean }>>();
  let tables: TagTables | undefined;
  let tablesVersion = -1;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let storedCount = 0;
  let indexing: Promise<void> = Promise.resolve();
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

  /**
   * The values in `text` of the properties `on` (those switched on when the batch began, in the configuration's
   * order), written to `out` from `at`, each timed: switches off one whose regex is too slow, and returns the longest
   * one took (ms). `ascii`: the batch's messages all are. EventRuns calls it for a run that took long.
   */
  const valuesOf = (
    on: readonly Property[],
    text: string,
    ascii: boolean,
    out: (string | undefined)[],
    at: number,
  ): number => {
    let slowest = 0;
    for (let k = 0; k < on.length; k++) {
      const p = on[k];
      if (p.disabled) {
        out[at + k] = undefined;
        continue;
      }
      const started = performance.now();
      const v = propertyValue(p.re, text, ascii);
      const took = performance.now() - started;
      // Slow on V8 first: it moves to re2js, and is switched off only if it is slow there too.
      const moved = took >= SLOW_ON_V8_MS && p.re.tookLong?.(text) === true;
      if (took >= SLOW_PROPERTY_MS && !moved) {
        p.disabled = `took ${Math.round(took)} ms on one event at ${new Date().toISOString()}; off until the tenant restarts`;
        o.log?.warn({ property: p.name, ms: Math.round(took) }, 'custom property switched off: its regex is too slow');
      }
      out[at + k] = v;
      if (took > slowest) slowest = took;
    }
    return slowest;
  };

  /** A record's log source, looked up once per batch for each header host and sender. */
  const logSourceOf = (host: string | undefined, sender: string, time: number, engine: string, seen: Seen) => {
    const key = host === undefined ? sender : `${host}\0${sender}`;
    let x = seen.get(key);
    if (x) {
      if (time > x.last) x.last = time;
      return x;
    }
    // A copy: the host may be a slice of the whole batch's messages (BinaryRecords), and a new log source keeps it.
    const identifier = host && IDENTIFIER_RE.test(host) ? own(host) : isIP(sender) ? sender : 'unknown';
    const found = config.sourceFor(identifier, engine);
    const s = found?.source;
    const tags = new Map<string, Map<string, Tagged>>();
    x = s
      ? { name: s.name, groups: s.groups, source: s, fresh: found!.fresh, first: time, last: time, tags }
      : { name: `${identifier}@${engine}`, groups: [], fresh: false, first: time, last: time, tags };
    seen.set(key, x);
    return x;
  };

  /**
   * The log sources a batch writes: new ones, and those whose lastSeen moved by LAST_SEEN_EVERY_MS. None whose name
   * a rule sealed in one of the batch's events (under any of its senders): its record would hold the clear name.
   */
  const sourcesToWrite = (seen: Seen): Sources => {
    const sources: Sources = { write: new Map(), fresh: new Set() };
    const sealed = new Set<string>();
    for (const x of seen.values()) if (x.sealed && x.source) sealed.add(x.source.name);
    for (const x of seen.values()) {
      const s = x.source;
      if (!s) continue;
      if (sealed.has(s.name)) {
        if (x.fresh) config.forgetSource(s.name);
        continue;
      }
      if (x.fresh) sources.fresh.add(s.name);
      const last = s.lastSeen ? Date.parse(s.lastSeen) : 0;
      if (x.fresh || x.last - last >= LAST_SEEN_EVERY_MS) {
        s.firstSeen ??= new Date(x.first).toISOString();
        if (x.last > last) s.lastSeen = new Date(x.last).toISOString();
        sources.write.set(s.name, s);
      }
    }
    return sources;
  };

  /**
   * What storing a batch writes, made in one synchronous pass. Nothing of the batch outlives it but the ops (blocks as
   * bytes), and the blocks themselves only for a stage after the store that may read them now (stages.observes):
   * batches wait for their write (several at once, group-writer.ts) holding no message strings, which the young
   * generation would otherwise copy at each scavenge and promote (with a correlator that kept every batch's blocks
   * whether or not a rule was in force, the tenant's GC took up to ~4× the time under a flood).
   */
  const build = (batch: SyslogBatch): Built => {
    const t = currentTables();
    // The body is read at ingest only when a mapping needs its flow fields; else when a search reads the event.
    const flows = t.vlan.size > 0 || t.flowSource.size > 0;
    const rewrites = !!stages.beforeStore && (stages.rewrites?.() ?? true);
    // The properties switched on as the batch begins (one switched off during it is skipped from then on).
    const on = [...config.properties.values()].filter((p) => !p.disabled);
    const seen: Seen = new Map();
    const blocks = new Map<string, BlockBuilder>();
    // An engine's clock (or a forged batch) must not place events beyond retention or ahead of every other event.
    const now = Date.now();
    const earliest = now - config.settings.retentionMs;
    const engine = batch.engine;
    const records = recordsOf(batch);
    const plain = records.plain === true;
    const runs = new EventRuns(records, on, (text, out, at) => valuesOf(on, text, plain, out, at));
    const values = runs.values;
    let entry: BlockBuilder | undefined;
    let lastSecond = -1;
    // Most records of a batch come from the sender and host of the record before: one comparison, not a lookup.
    let prev: { host: string | undefined; sender: string; source: SeenSource } | undefined;
    for (let i = 0; i < records.length; i++) {
      const receivedAt = records.time(i);
      const sender = records.sender(i);
      const transport = records.transport(i);
      const timeAdjusted = !(receivedAt >= earliest && receivedAt <= now + MAX_FUTURE_MS);
      const time = timeAdjusted ? now : receivedAt;
      const r = runs.at(i);
      const text = runs.texts[r];
      const truncated = runs.truncated[r];
      const h = flows || rewrites ? parseSyslogHeader(text, time) : undefined;
      const host = h ? h.host : headerHost(text, time);
      let source: SeenSource;
      if (prev && prev.host === host && prev.sender === sender) {
        source = prev.source;
        if (time > source.last) source.last = time;
      } else {
        source = logSourceOf(host, sender, time, engine, seen);
        prev = { host, sender, source };
      }
      // A tag depends on the log source, the properties' values and the flow fields (then not cached).
      let byValues = source.tags.get(transport);
      if (!byValues) source.tags.set(transport, (byValues = new Map()));
      const v = r * on.length;
      const valuesKey = on.length === 0 ? '' : on.length === 1 ? (values[v] ?? '') : keyOfValues(on, values, v);
      let tc = flows ? undefined : byValues.get(valuesKey);
      if (!tc) {
        const properties = propertiesOf(on, values, v);
        const body = flows && h ? parseEventBody(h.message) : undefined;
        const input = { properties, vlan: body?.vlan, flowSource: body?.flowSource };
        const tag = tagDomain({ ...input, logSource: source.name, groups: source.groups, engine }, t);
        // Frozen: the entries of a block share it, and what afterStore is handed must not change one through another.
        const shared = properties && Object.freeze(properties);
        tc = { tag, combo: comboOf([sender, transport, source.name, tag.domain, tag.rule]), properties: shared };
        if (!flows) byValues.set(valuesKey, tc);
      }
      const sec = Math.floor(time / 1000);
      if (sec !== lastSecond || !entry) {
        const key = blockKey(time, engine, batch.seq);
        entry = blocks.get(key);
        if (!entry) blocks.set(key, (entry = new BlockBuilder(engine, batch.seq, plain)));
        lastSecond = sec;
      }
      if (rewrites) {
        const meta: EventMeta = { time, sender, transport, logSource: source.name, ...tc.tag };
        // Its own copy: a stage may rewrite an event's values (obfuscation), and the tag's set is shared.
        if (tc.properties) meta.properties = { ...tc.properties };
        if (truncated) meta.truncated = true;
        if (timeAdjusted) meta.timeAdjusted = true;
        const whole = eventOf(text, meta, engine).event;
        stages.beforeStore?.(whole);
        if (whole.logSource !== source.name) source.sealed = true;
        entry.add(i, text, meta, whole);
        continue;
      }
      const at = entry.addMessage(i, text, time, tc.combo);
      if (tc.properties || truncated || timeAdjusted) entry.flag(at, tc.properties, truncated, timeAdjusted);
    }
    // Root-level puts with the sublevels' prefixes added once here: sublevel ops in a root batch cost a prefixing and
    // an encoding step per op inside abstract-level.
    const ops: RootOp[] = [];
    const put = (sub: unknown, key: string, value: string) =>
      ops.push({ type: 'put', key: prefixOf(sub) + key, value });
    for (const [key, b] of blocks) ops.push(...store.blockPuts(key, b));
    const sources = sourcesToWrite(seen);
    for (const s of sources.write.values()) put(config.sourceSublevel, s.id, JSON.stringify(s));
    const evicted = config.evicted.splice(0);
    for (const id of evicted) ops.push({ type: 'del', key: prefixOf(config.sourceSublevel) + id });
    const marker: BatchMarker = { at: Date.now(), accepted: records.length };
    put(store.batches, markerKey(engine, batch.seq), JSON.stringify(marker));
    // The batch's messages as one string (a plain batch's) is let go now, whoever still holds the batch.
    records.release?.();
    const observed = !!stages.afterStore && stages.observes?.() !== false;
    return { ops, accepted: records.length, sources, evicted, blocks: observed ? blocks : undefined };
  };

  const store1 = async (batch: SyslogBatch): Promise<{ accepted: number; duplicate: boolean }> => {
    const { engine, seq } = batch;
    const marked = await store.marker(engine, seq);
    if (marked) return { accepted: marked.accepted, duplicate: true };
    const { ops, accepted, sources, evicted, blocks } = build(batch);
    try {
      await writer.write(ops);
    } catch (e) {
      // New log sources of a batch that was not stored must be offered again with the next one.
      for (const name of sources.fresh)
        if (config.sources.get(name) === sources.write.get(name)) config.sources.delete(name);
      config.evicted.push(...evicted);
      throw e;
    }
    store.stored(engine, seq);
    storedCount += accepted;
    if (blocks) stages.afterStore?.(() => storedRefs(blocks));
    return { accepted, duplicate: false };
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
      const moved = await migrateLegacyEvents(o.db, store);
      if (moved > 0) o.log?.info({ events: moved }, 'events moved from the per-event store into blocks');
      // A store from before the span index is indexed in the background: searches read whole seconds meanwhile.
      indexing = store
        .indexSpans(() => closed)
        .then(
          (added) => {
            if (added > 0) o.log?.info({ blocks: added }, 'event search index of block spans made');
          },
          (e: unknown) => o.log?.warn({ err: String(e) }, 'event span index not made; searches read whole seconds'),
        );
      const chore = () =>
        purge().catch((e: unknown) => o.log?.warn({ err: String(e) }, 'event retention failed; retrying next hour'));
      void chore();
      timer = setInterval(() => void chore(), RETENTION_EVERY_MS).unref();
    },
    purge,
    get indexed() {
      return indexing;
    },
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
      await Promise.allSettled([...inflight.values(), indexing]);
    },
  };
}
