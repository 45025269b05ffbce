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
import type { Sub } from '../store.js';
import type { BlockBuilder } from './event-block.js';
import { describedPattern } from '#common/pattern-text.js';
import {
  MAX_SCAN,
  PageReader,
  SEQ_WIDTH,
  TIME_WIDTH,
  pad,
  type EventPage,
  type EventQuery,
  type RawBlock,
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
/** Blocks a domain search fetches at once. */
const BLOCK_PAGE = 16;

export class EventStore {
  readonly blocks: Sub<string>;
  readonly byDomain: Sub<string>;
  readonly batches: Sub<BatchMarker>;

  constructor(readonly db: Level<string, unknown>) {
    this.blocks = db.sublevel<string, string>('ev-block', { valueEncoding: 'utf8' }) as unknown as Sub<string>;
    this.byDomain = db.sublevel<string, string>('ev-block-domain', { valueEncoding: 'utf8' }) as unknown as Sub<string>;
    this.batches = db.sublevel<string, BatchMarker>('ev-batch', {
      valueEncoding: 'json',
    }) as unknown as Sub<BatchMarker>;
  }

  /** The root-level puts that store a block under `key`, and its domain index entries. */
  blockPuts(key: string, b: BlockBuilder): RootOp[] {
    const value = b.encoded();
    const block = prefixOf(this.blocks) + key;
    const ops: RootOp[] = [
      typeof value === 'string'
        ? { type: 'put', key: block, value }
        : { type: 'put', key: block, value, valueEncoding: 'buffer' },
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
   * Newest first by receive time (ties by id), read a second at a time: a second's blocks (of every engine and batch)
   * are gathered as bytes, then merged in order by their spans (event-search.ts) until the page is full.
   */
  async search(query: EventQuery, maxScan = MAX_SCAN): Promise<EventPage> {
    const lowest = query.from !== undefined ? second(query.from) : '';
    let highest = query.to !== undefined ? `${second(query.to)}~\xff` : '\xff';
    if (query.before !== undefined) {
      const beforeSecond = `${second(Number(query.before.slice(0, TIME_WIDTH)))}~\xff`;
      if (beforeSecond < highest) highest = beforeSecond;
    }
    const reader = new PageReader(query, maxScan);
    let group: RawBlock[] = [];
    let groupSecond = '';
    /** Adds a block (they come newest second first); false once the page is full. */
    const add = (key: string, value: Buffer): boolean => {
      const s = key.slice(0, SECOND_WIDTH);
      if (s !== groupSecond && group.length > 0) {
        const more = reader.second(group);
        group = [];
        if (!more) return false;
      }
      groupSecond = s;
      group.push([key, value]);
      return true;
    };
    // Bytes: a block is decoded only if the merge needs it.
    const bytes = { valueEncoding: 'buffer' } as const;
    let more = true;
    if (query.domain === undefined) {
      for await (const [k, b] of this.blocks.iterator({ gte: lowest, lt: highest, reverse: true, ...bytes }))
        if (!(more = add(k, b as unknown as Buffer))) break;
    } else {
      const p = indexKey(query.domain, '');
      let page: string[] = [];
      const flush = async () => {
        const got = (await this.blocks.getMany(page, bytes)) as unknown as (Buffer | undefined)[];
        for (let i = 0; i < page.length; i++) {
          const b = got[i];
          if (b && !add(page[i], b)) return false;
        }
        page = [];
        return true;
      };
      for await (const k of this.byDomain.keys({ gte: p + lowest, lt: p + highest, reverse: true })) {
        page.push(k.slice(p.length));
        if (page.length === BLOCK_PAGE && !(more = await flush())) break;
      }
      if (more && page.length) more = await flush();
    }
    if (more && group.length > 0) reader.second(group);
    return reader.page();
  }

  /** Deletes events received before `cutoff`, their index entries, and batch markers older than MARKER_KEEP_MS. */
  async purge(cutoff: number, now = Date.now()): Promise<void> {
    // Whole seconds: the events of the cutoff's own second go with the next purge.
    const below = second(cutoff);
    await this.blocks.clear({ lt: below });
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
