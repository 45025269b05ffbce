/**
 * A tenant's stored events: one sublevel keyed by receipt time (`TIME~ENGINE~SEQ~INDEX`, so keys sort by time
 * and a re-sent batch would land on the same keys), an index by domain (`DOMAIN\0SECOND~ENGINE~SEQ` → that batch's
 * event keys of that domain and second) for searches limited to a domain (and, later, security profiles), and
 * one marker per stored batch (`ENGINE~SEQ`) that makes ingest idempotent. Search reads newest first within
 * [from, to], filtered by text, at most MAX_SCAN events per call (then `next` says where to go on). Retention
 * deletes by key range. Not parsing nor tagging (event-pipeline.ts).
 */
import type { Level } from 'level';
import type { EventView } from '#common/events.js';
import type { Sub } from '../store.js';
import { parseEventBody } from './event-body.js';

/**
 * What is stored per event: the view without its id (the key is the id) and without the vendor `fields`, which are
 * parsed again from the message for the events a search answers: storing them doubled what each event costs to
 * encode and write (measured: the store's batch was most of ingest time).
 */
export type StoredEvent = Omit<EventView, 'id' | 'fields'>;

function view(id: string, e: StoredEvent): EventView {
  const v: EventView = { id, ...e };
  const fields = parseEventBody(e.message).fields;
  for (const _ in fields) {
    v.fields = fields;
    break;
  }
  return v;
}
export interface BatchMarker {
  at: number;
  accepted: number;
}

export interface EventQuery {
  domain?: string;
  q?: string;
  from?: number;
  to?: number;
  limit: number;
  /** Only events older than this id (the `next` of a previous answer). */
  before?: string;
  /** Only events of these domains (a security profile's; agent/tenant/profile-scope.ts). */
  domains?: ReadonlySet<string>;
}
export interface EventPage {
  items: EventView[];
  /** Set when there may be more (older) matches: pass it as `before`. */
  next: string | null;
}

const TIME_WIDTH = 15;
const SEQ_WIDTH = 16;
const pad = (n: number, w: number) => String(n).padStart(w, '0');
export const eventKey = (time: number, engine: string, seq: number, index: number) =>
  `${pad(time, TIME_WIDTH)}~${engine}~${pad(seq, SEQ_WIDTH)}~${pad(index, 4)}`;
export const markerKey = (engine: string, seq: number) => `${engine}~${pad(seq, SEQ_WIDTH)}`;
/** A domain index entry's key: the domain, the second of receipt, the batch (event-store.ts domainKeys). */
const indexBucket = (time: number) => pad(Math.max(0, Math.floor(time / 1000)), TIME_WIDTH - 3);
export const indexKey = (domain: string, time: number, engine: string, seq: number) =>
  `${domain}\0${indexBucket(time)}~${engine}~${pad(seq, SEQ_WIDTH)}`;
/** Event ids as the API takes them back (`before`): what eventKey makes. */
export const EVENT_ID_PATTERN = '^[0-9]{15}~[a-z0-9-]{1,63}~[0-9]{16}~[0-9]{4}$';
const timePrefix = (t: number) => pad(Math.max(0, Math.min(t, 10 ** TIME_WIDTH - 1)), TIME_WIDTH);

/** Events one search reads at most before answering (with `next`): bounds a text search over a large store. */
export const MAX_SCAN = 200_000;
/** Batch markers live this long: long enough for any re-send after a lost acknowledgement. */
export const MARKER_KEEP_MS = 7 * 86_400_000;
const INDEX_PAGE = 256;

export class EventStore {
  readonly events: Sub<StoredEvent>;
  readonly byDomain: Sub<string[]>;
  readonly batches: Sub<BatchMarker>;

  constructor(readonly db: Level<string, unknown>) {
    this.events = db.sublevel<string, StoredEvent>('ev', { valueEncoding: 'json' }) as unknown as Sub<StoredEvent>;
    this.byDomain = db.sublevel<string, string[]>('ev-domain', { valueEncoding: 'json' }) as unknown as Sub<string[]>;
    this.batches = db.sublevel<string, BatchMarker>('ev-batch', {
      valueEncoding: 'json',
    }) as unknown as Sub<BatchMarker>;
  }

  marker(engine: string, seq: number): Promise<BatchMarker | undefined> {
    return this.batches.get(markerKey(engine, seq));
  }

  async search(query: EventQuery): Promise<EventPage> {
    const lowest = query.from !== undefined ? timePrefix(query.from) : '';
    let highest = query.to !== undefined ? `${timePrefix(query.to)}~\xff` : '\xff';
    if (query.before !== undefined && query.before < highest) highest = query.before;
    const needle = query.q?.toLowerCase();
    const wanted = (e: StoredEvent) =>
      (query.domains === undefined || query.domains.has(e.domain)) &&
      (needle === undefined ||
        e.message.toLowerCase().includes(needle) ||
        (e.host?.toLowerCase().includes(needle) ?? false) ||
        (e.app?.toLowerCase().includes(needle) ?? false));
    const items: EventView[] = [];
    let scanned = 0;
    let last: string | undefined;
    const take = (key: string, e: StoredEvent | undefined): boolean => {
      scanned++;
      last = key;
      if (e && wanted(e)) items.push(view(key, e));
      return items.length < query.limit && scanned < MAX_SCAN;
    };
    if (query.domain === undefined) {
      for await (const [k, e] of this.events.iterator({ gte: lowest, lt: highest, reverse: true })) {
        if (!take(k, e)) break;
      }
    } else {
      let page: string[] = [];
      const flush = async () => {
        const got = await this.events.getMany(page);
        for (let i = 0; i < page.length; i++) if (!take(page[i], got[i])) return false;
        page = [];
        return true;
      };
      let more = true;
      for await (const k of this.domainKeys(query.domain, lowest, highest)) {
        page.push(k);
        if (page.length === INDEX_PAGE && !(more = await flush())) break;
      }
      if (more && page.length) await flush();
    }
    const full = items.length >= query.limit || scanned >= MAX_SCAN;
    return { items, next: full && last !== undefined ? last : null };
  }

  /**
   * The keys of a domain's events in [lowest, highest), newest first, from its index: per domain, second and batch
   * one entry listing that batch's event keys (so a batch costs a put or two, not one per event). All events of a
   * second are newer than all of the second before, so each second's entries are merged and sorted on their own.
   */
  private async *domainKeys(domain: string, lowest: string, highest: string): AsyncGenerator<string> {
    const p = `${domain}\0`;
    const lo = p + (lowest ? indexBucket(Number(lowest.slice(0, TIME_WIDTH))) : '');
    const hi = highest === '\xff' ? `${p}\xff` : `${p}${indexBucket(Number(highest.slice(0, TIME_WIDTH)))}~\xff`;
    let bucket = '';
    let keys: string[] = [];
    const sorted = () => keys.filter((k) => k >= lowest && k < highest).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
    for await (const [k, list] of this.byDomain.iterator({ gte: lo, lt: hi, reverse: true })) {
      const b = k.slice(p.length, k.indexOf('~', p.length));
      if (b !== bucket) {
        yield* sorted();
        bucket = b;
        keys = [];
      }
      for (const x of list) keys.push(x);
    }
    yield* sorted();
  }

  /** Deletes events received before `cutoff`, their index entries, and batch markers older than MARKER_KEEP_MS. */
  async purge(cutoff: number, now = Date.now()): Promise<void> {
    const below = timePrefix(cutoff);
    await this.events.clear({ lt: below });
    // An entry of the cutoff's second may still list purged events: a search skips keys no longer stored.
    for (const prefix of await this.prefixes(this.byDomain, '\0'))
      await this.byDomain.clear({ gte: prefix, lt: prefix + indexBucket(cutoff) });
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
