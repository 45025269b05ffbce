/**
 * A tenant's stored events: blocks (event-block.ts) keyed `SECOND~ENGINE~SEQ`, one per engine batch and second of
 * receipt, so keys sort by time and a re-sent batch lands on the same keys; an index by domain
 * (`DOMAIN\0SECOND~ENGINE~SEQ`) for searches limited to a domain; and one marker per stored batch (`ENGINE~SEQ`)
 * that makes ingest idempotent. An event's id is `TIME~ENGINE~SEQ~INDEX` (its receive time in ms, its batch, its
 * index there). Search reads newest first (by receive time, then id) within [from, to],
 * filtered by text, at most MAX_SCAN events per call (then `next` says where to go on). Retention deletes by key
 * range. Not parsing nor tagging (event-pipeline.ts, event-block.ts).
 */
import type { Level } from 'level';
import { pointRead, type Sub } from '../store.js';
import { blockSpan, spanOf, type BlockBuilder } from './event-block.js';
import { describedPattern } from '#common/pattern-text.js';
import {
  MAX_SCAN,
  PageReader,
  SEQ_WIDTH,
  TIME_WIDTH,
  pad,
  refOfRaw,
  type BlockRef,
  type EventPage,
  type EventQuery,
  type ReadBlocks,
} from './event-search.js';

export type { StoredEvent } from './event-block.js';
export { eventKey, MAX_SCAN, type EventPage, type EventQuery } from './event-search.js';

export interface BatchMarker {
  at: number;
  accepted: number;
}

const SECOND_WIDTH = TIME_WIDTH - 3;
const second = (time: number) =>
  pad(Math.max(0, Math.min(Math.floor(time / 1000), 10 ** SECOND_WIDTH - 1)), SECOND_WIDTH);
/** The key of the block holding the events of batch `seq` received in the second of `time`. */
export const blockKey = (time: number, engine: string, seq: number) =>
  `${second(time)}~${engine}~${pad(seq, SEQ_WIDTH)}`;
export const markerKey = (engine: string, seq: number) => `${engine}~${pad(seq, SEQ_WIDTH)}`;
/** A domain index entry's key: the domain, then its block's key. */
export const indexKey = (domain: string, block: string) => `${domain}\0${block}`;
/** Event ids as the API takes them back (`before`): what eventKey makes. */
export const EVENT_ID_PATTERN = describedPattern(
  '^[0-9]{15}~[a-z0-9-]{1,63}~[0-9]{16}~[0-9]{4}$',
  'an event id, as event search returns it',
  { shape: false },
);

/**
 * A root-level write (key with its sublevel's prefix, value already encoded): one encode per op in a batch. A value
 * given as bytes says so (`valueEncoding: 'buffer'`); strings are written as UTF-8.
 */
export type RootOp =
  | { type: 'put'; key: string; value: string }
  | { type: 'put'; key: string; value: Buffer; valueEncoding: 'buffer' }
  | { type: 'del'; key: string };
/** A sublevel's key prefix in its root database (abstract-level's `!name!`, read from the sublevel itself). */
export const prefixOf = (sub: unknown): string => (sub as { prefix: string }).prefix;

/** Batch markers live this long: long enough for any re-send after a lost acknowledgement. */
export const MARKER_KEEP_MS = 7 * 86_400_000;
/** Blocks a domain search fetches at once (before the span index is whole), and spans. */
const BLOCK_PAGE = 16;
const SPAN_PAGE = 256;
/** Block keys the span index pass looks at once (and at most the blocks it reads: ~8 MB). */
const INDEX_STEP = 64;
/** The meta key saying every block has its span in the index (set by indexSpans). */
const SPAN_INDEX_WHOLE = 'span-index';

/** A span as the index holds it: `LO,HI`, ms. */
const spanText = (lo: number, hi: number) => `${lo},${hi}`;
/** A block's span as the index holds it; one that does not read as two times is unknown (the block is read at once). */
function refOfSpan(key: string, text: string): BlockRef {
  const m = SPAN_TEXT.exec(text);
  return m ? { key, lo: Number(m[1]), hi: Number(m[2]) } : { key, lo: -Infinity, hi: Infinity };
}
const SPAN_TEXT = /^(\d{1,15}),(\d{1,15})$/;
/** The span every block of a key's second lies within. */
function secondOf(key: string): { lo: number; hi: number } {
  const lo = Number(key.slice(0, SECOND_WIDTH)) * 1000;
  return { lo, hi: lo + 999 };
}
const bytes = { valueEncoding: 'buffer' } as const;

export class EventStore {
  readonly blocks: Sub<string>;
  readonly byDomain: Sub<string>;
  readonly batches: Sub<BatchMarker>;
  /** Each block's span (`LO,HI`) under the block's key: a search reads these, then only the blocks it needs. */
  readonly spans: Sub<string>;
  private readonly meta: Sub<string>;
  /**
   * Every block has its span in `spans` (indexSpans made sure): search reads spans first. Until then (a store from
   * before the index, being indexed), a search reads every block of each second it passes, as before.
   */
  spansIndexed = false;

  constructor(readonly db: Level<string, unknown>) {
    this.blocks = db.sublevel<string, string>('ev-block', { valueEncoding: 'utf8' }) as unknown as Sub<string>;
    this.spans = db.sublevel<string, string>('ev-block-span', { valueEncoding: 'utf8' }) as unknown as Sub<string>;
    this.meta = db.sublevel<string, string>('ev-meta', { valueEncoding: 'utf8' }) as unknown as Sub<string>;
    this.byDomain = db.sublevel<string, string>('ev-block-domain', { valueEncoding: 'utf8' }) as unknown as Sub<string>;
    this.batches = db.sublevel<string, BatchMarker>('ev-batch', {
      valueEncoding: 'json',
    }) as unknown as Sub<BatchMarker>;
  }

  /** The root-level puts that store a block under `key`, its span and its domain index entries. */
  blockPuts(key: string, b: BlockBuilder): RootOp[] {
    const value = b.encoded();
    const block = prefixOf(this.blocks) + key;
    const { lo, hi } = spanOf(b.block);
    const ops: RootOp[] = [
      { type: 'put', key: block, value, valueEncoding: 'buffer' },
      { type: 'put', key: prefixOf(this.spans) + key, value: spanText(lo, hi) },
    ];
    for (const d of b.domains) ops.push({ type: 'put', key: prefixOf(this.byDomain) + indexKey(d, key), value: '' });
    return ops;
  }

  /** Per engine, the highest seq whose batch is stored (read once per engine, then kept as batches are stored). */
  private readonly highest = new Map<string, number>();

  /** The marker of a stored batch; a seq above the engine's highest is new without a read (seqs rise). */
  async marker(engine: string, seq: number): Promise<BatchMarker | undefined> {
    let max = this.highest.get(engine);
    if (max === undefined) {
      max = -1;
      for await (const k of this.batches.keys({ gte: `${engine}~`, lt: `${engine}~\xff`, reverse: true, limit: 1 }))
        max = Number(k.slice(engine.length + 1));
      if (!this.highest.has(engine)) this.highest.set(engine, max);
    }
    if (seq > max) return undefined;
    return this.batches.get(markerKey(engine, seq));
  }

  /** Notes a batch stored (its marker written with it). */
  stored(engine: string, seq: number): void {
    if (seq > (this.highest.get(engine) ?? -1)) this.highest.set(engine, seq);
  }

  /**
   * Newest first by receive time (ties by id), read a second at a time: a second's spans (of every engine and batch)
   * are gathered, then its blocks merged in order by them (event-search.ts), each block read only when the merge
   * reaches it, until the page is full. Before the span index is whole, a second's blocks are read whole instead.
   */
  async search(query: EventQuery, maxScan = MAX_SCAN): Promise<EventPage> {
    const lowest = query.from !== undefined ? second(query.from) : '';
    let highest = query.to !== undefined ? `${second(query.to)}~\xff` : '\xff';
    if (query.before !== undefined) {
      const beforeSecond = `${second(Number(query.before.slice(0, TIME_WIDTH)))}~\xff`;
      if (beforeSecond < highest) highest = beforeSecond;
    }
    const reader = new PageReader(query, maxScan);
    const read: ReadBlocks = (keys) => this.blocks.getMany(keys, bytes) as unknown as Promise<(Buffer | undefined)[]>;
    const indexed = this.spansIndexed;
    let group: BlockRef[] = [];
    let groupSecond = '';
    /** Adds a block (they come newest second first); false once the page is full. */
    const add = async (ref: BlockRef): Promise<boolean> => {
      const s = ref.key.slice(0, SECOND_WIDTH);
      if (s !== groupSecond && group.length > 0) {
        const more = await reader.second(group, read);
        group = [];
        if (!more) return false;
      }
      groupSecond = s;
      group.push(ref);
      return true;
    };
    let more = true;
    const range = { gte: lowest, lt: highest, reverse: true } as const;
    if (query.domain === undefined && indexed) {
      for await (const [k, v] of this.spans.iterator(range)) if (!(more = await add(refOfSpan(k, v)))) break;
    } else if (query.domain === undefined) {
      for await (const [k, b] of this.blocks.iterator({ ...range, ...bytes }))
        if (!(more = await add(refOfRaw([k, b as unknown as Buffer])))) break;
    } else {
      const p = indexKey(query.domain, '');
      let page: string[] = [];
      const flush = async () => {
        for (const ref of indexed ? await this.spanRefs(page) : await this.blockRefs(page))
          if (!(await add(ref))) return false;
        page = [];
        return true;
      };
      const pageSize = indexed ? SPAN_PAGE : BLOCK_PAGE;
      for await (const k of this.byDomain.keys({ gte: p + lowest, lt: p + highest, reverse: true })) {
        page.push(k.slice(p.length));
        if (page.length === pageSize && !(more = await flush())) break;
      }
      if (more && page.length) more = await flush();
    }
    if (more && group.length > 0) await reader.second(group, read);
    return reader.page();
  }

  /** The blocks of `keys` by their indexed spans; one without a span (not expected) is read at once. */
  private async spanRefs(keys: string[]): Promise<BlockRef[]> {
    const spans = await this.spans.getMany(keys);
    return keys.map((key, i) =>
      spans[i] !== undefined ? refOfSpan(key, spans[i]) : { key, lo: -Infinity, hi: Infinity },
    );
  }

  /** The blocks of `keys` read whole (before the span index is whole); one gone since is left out. */
  private async blockRefs(keys: string[]): Promise<BlockRef[]> {
    const values = (await this.blocks.getMany(keys, bytes)) as unknown as (Buffer | undefined)[];
    return keys.flatMap((key, i) => (values[i] ? [refOfRaw([key, values[i]])] : []));
  }

  /**
   * Makes sure every block has its span in the index, then searches use it (spansIndexed). A store whose index was
   * made whole before, and whose newest block has its span, is done at once. Else (a store from before the index, or
   * blocks written by an older version since) every block is looked at, a step at a time: one without a span in the
   * index gets the one its opening bytes hold, or its second's. Blocks written meanwhile have theirs (blockPuts).
   * Returns how many spans it added; `stopped` ends it between steps (the tenant closing: the next start goes on).
   */
  async indexSpans(stopped: () => boolean = () => false): Promise<number> {
    if (
      (await pointRead(this.meta, SPAN_INDEX_WHOLE)) === 'whole' &&
      (await this.lastKey(this.blocks)) === (await this.lastKey(this.spans))
    ) {
      this.spansIndexed = true;
      return 0;
    }
    let added = 0;
    let after: string | undefined;
    for (;;) {
      if (stopped()) return added;
      const keys: string[] = [];
      for await (const k of this.blocks.keys({ ...(after !== undefined ? { gt: after } : {}), limit: INDEX_STEP }))
        keys.push(k);
      if (keys.length === 0) break;
      after = keys[keys.length - 1];
      const have = await this.spans.getMany(keys);
      const missing = keys.filter((_, i) => have[i] === undefined);
      if (missing.length === 0) continue;
      const values = (await this.blocks.getMany(missing, bytes)) as unknown as (Buffer | undefined)[];
      const puts = missing.flatMap((key, i) => {
        const v = values[i];
        if (!v) return []; // purged meanwhile
        const { lo, hi } = blockSpan(v) ?? secondOf(key);
        return [{ type: 'put' as const, key, value: spanText(lo, hi) }];
      });
      if (puts.length) await this.spans.batch(puts);
      added += puts.length;
    }
    await this.meta.put(SPAN_INDEX_WHOLE, 'whole');
    this.spansIndexed = true;
    return added;
  }

  private async lastKey<V>(sub: Sub<V>): Promise<string | undefined> {
    for await (const k of sub.keys({ reverse: true, limit: 1 })) return k;
    return undefined;
  }

  /** Deletes events received before `cutoff`, their index entries, and batch markers older than MARKER_KEEP_MS. */
  async purge(cutoff: number, now = Date.now()): Promise<void> {
    // Whole seconds: the events of the cutoff's own second go with the next purge.
    const below = second(cutoff);
    // Blocks before their spans: a span whose block is gone is passed over, a block without a span never found.
    await this.blocks.clear({ lt: below });
    await this.spans.clear({ lt: below });
    for (const prefix of await this.prefixes(this.byDomain, '\0'))
      await this.byDomain.clear({ gte: prefix, lt: prefix + below });
    const keepFrom = now - MARKER_KEEP_MS;
    for (const prefix of await this.prefixes(this.batches, '~')) {
      const old: string[] = [];
      for await (const [k, m] of this.batches.iterator({ gte: prefix, lt: `${prefix}\xff` })) {
        if (m.at >= keepFrom || old.length >= 100_000) break; // seqs rise with time: the rest is newer
        old.push(k);
      }
      if (old.length) await this.batches.batch(old.map((key) => ({ type: 'del' as const, key })));
    }
  }

  /** The distinct `X<sep>` prefixes of a sublevel's keys, found by seeking past each one. */
  private async prefixes<V>(sub: Sub<V>, sep: string): Promise<string[]> {
    const out: string[] = [];
    let from = '';
    for (let i = 0; i < 100_000; i++) {
      let next: string | undefined;
      for await (const k of sub.keys({ gt: from, limit: 1 })) next = k;
      if (next === undefined) break;
      const cut = next.indexOf(sep);
      if (cut < 0) break;
      const prefix = next.slice(0, cut + 1);
      out.push(prefix);
      from = `${next.slice(0, cut)}${String.fromCharCode(sep.charCodeAt(0) + 1)}`;
    }
    return out;
  }
}
