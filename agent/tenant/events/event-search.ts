/**
 * One search page over stored blocks (event-store.ts feeds them, newest second first): the events in search order —
 * newest receive time first, ties by id, descending — filtered by the query, until the page is full or MAX_SCAN events
 * were read. Within a second the blocks are merged by their spans (the store's span index, or event-block.ts
 * blockSpan), so a block is read and decoded only when it can hold the next event in that order: the newest page of a
 * second that holds 300 000 events reads the few blocks that hold them, not all ~360 (~40 MB; decoding them all took
 * ~0.5 s of the tenant's time, reading them 40-200 ms). A block without a span (written before spans, and not in the
 * index) is read at once. Not the keys nor the store.
 */
import type { EventView } from '#common/events.js';
import {
  blockSpan,
  decodeStoredBlock,
  entryDomain,
  entryMayMatch,
  readEntry,
  type EventBlock,
  type StoredEvent,
} from './event-block.js';

export interface EventQuery {
  domain?: string;
  q?: string;
  from?: number;
  to?: number;
  limit: number;
  /** Only events after this id in search order (the `next` of a previous answer). */
  before?: string;
  /** Only events of these domains (a security profile's; agent/tenant/profile-scope.ts). */
  domains?: ReadonlySet<string>;
}
export interface EventPage {
  items: EventView[];
  /** Set when there may be more (older) matches: pass it as `before`. */
  next: string | null;
}

/** Events one search reads at most before answering (with `next`): bounds a text search over a large store. */
export const MAX_SCAN = 200_000;
export const TIME_WIDTH = 15;
export const SEQ_WIDTH = 16;
export const pad = (n: number, w: number) => String(n).padStart(w, '0');
export const eventKey = (time: number, engine: string, seq: number, index: number) =>
  `${pad(time, TIME_WIDTH)}~${engine}~${pad(seq, SEQ_WIDTH)}~${pad(index, 4)}`;

/** A stored block of one second: its key and value as read (bytes: decoded only when needed). */
export type RawBlock = [key: string, value: Buffer];

/**
 * A block of the second being read: its key, its span (earliest and latest receive time; -Infinity and Infinity when
 * unknown: read it at once) and its bytes, once read.
 */
export interface BlockRef {
  key: string;
  lo: number;
  hi: number;
  value?: Buffer;
}
/** Reads blocks' bytes by key, in order (undefined: gone, purged since its span was read). */
export type ReadBlocks = (keys: string[]) => Promise<(Buffer | undefined)[]>;

/** A block read whole: its span from its opening bytes (none if written before spans). */
export function refOfRaw([key, value]: RawBlock): BlockRef {
  const span = blockSpan(value);
  return span ? { key, ...span, value } : { key, lo: -Infinity, hi: Infinity, value };
}

/** Blocks read at once the first time a second needs one it has not got, doubling up to this. */
const READ_AHEAD_MAX = 16;

/** The text search: in the message, the header's host, app, MSGID or STRUCTURED-DATA, case-insensitive. */
function textMatches(e: StoredEvent, needle: string): boolean {
  return (
    e.message.toLowerCase().includes(needle) ||
    (e.host?.toLowerCase().includes(needle) ?? false) ||
    (e.app?.toLowerCase().includes(needle) ?? false) ||
    (e.msgId?.toLowerCase().includes(needle) ?? false) ||
    (e.structuredData?.toLowerCase().includes(needle) ?? false)
  );
}

function view(id: string, e: StoredEvent, fields: Record<string, string> | undefined): EventView {
  const v: EventView = { id, ...e };
  if (fields) v.fields = fields;
  return v;
}

/** An entry of a decoded block: [block index in `decoded`, position]. */
type Entry = [number, number];

/** Collects a page, a second at a time: `second` returns false once the page is full or the scan is cut. */
export class PageReader {
  readonly items: EventView[] = [];
  private scanned = 0;
  private last: string | undefined;
  private readonly needle: string | undefined;
  private readonly from: number;
  private readonly to: number;
  private readonly beforeTime: number;

  constructor(
    private readonly query: EventQuery,
    private readonly maxScan = MAX_SCAN,
  ) {
    this.needle = query.q?.toLowerCase();
    this.from = query.from ?? -Infinity;
    this.to = query.to ?? Infinity;
    this.beforeTime = query.before !== undefined ? Number(query.before.slice(0, TIME_WIDTH)) : Infinity;
  }

  page(): EventPage {
    const full = this.items.length >= this.query.limit || this.scanned >= this.maxScan;
    return { items: this.items, next: full && this.last !== undefined ? this.last : null };
  }

  /**
   * Reads one second's blocks (any order) in search order; false once the page is full or the scan is cut. A block
   * not read yet is read with `read` when the merge reaches it, with the next few after it.
   */
  async second(blocks: readonly BlockRef[], readBlocks?: ReadBlocks): Promise<boolean> {
    const pending = blocks
      // A block wholly after `before`, or outside [from, to], holds nothing for this page (nor counts as read).
      .filter((b) => b.lo <= this.beforeTime && b.hi >= this.from && b.lo <= this.to)
      .sort((a, b) => b.hi - a.hi);
    let ahead = 2;
    const decoded: [key: string, block: EventBlock][] = [];
    // Search order: newest first, then the higher block key (engine, seq), then the higher index in the batch.
    const first = ([na, a]: Entry, [nb, b]: Entry): boolean => {
      const [ka, ba] = decoded[na];
      const [kb, bb] = decoded[nb];
      const d = ba.t[a] - bb.t[b];
      if (d !== 0) return d > 0;
      return ka !== kb ? ka > kb : ba.i[a] > bb.i[b];
    };
    const heap = new EntryHeap(first);
    let read = 0;
    let lowest: Entry | undefined;
    let next = 0;
    const before = this.query.before;
    for (;;) {
      const top = heap.peek();
      const t = top ? decoded[top[0]][1].t[top[1]] : -Infinity;
      // A block whose latest event is as new as the next one may hold one before it (a tie): decode it first.
      if (next < pending.length && (!top || pending[next].hi >= t)) {
        if (!pending[next].value) {
          const want = pending.slice(next, next + ahead).filter((p) => !p.value);
          ahead = Math.min(ahead * 2, READ_AHEAD_MAX);
          if (!readBlocks) throw new Error('a block to search was not read');
          const got = await readBlocks(want.map((p) => p.key));
          want.forEach((p, k) => (p.value = got[k]));
        }
        const p = pending[next++];
        // Gone since its span was read (retention): nothing of it to show.
        if (!p.value) continue;
        const b = decodeStoredBlock(p.value);
        const n = decoded.push([p.key, b]) - 1;
        for (let at = 0; at < b.i.length; at++) {
          const bt = b.t[at];
          if (bt > this.beforeTime || (bt === this.beforeTime && eventKey(bt, b.e, b.s, b.i[at]) >= before!)) continue;
          // Every event read counts toward MAX_SCAN, matching or not: a search of a rare domain stays bounded too.
          read++;
          if (!lowest || first(lowest, [n, at])) lowest = [n, at];
          if (bt < this.from || bt > this.to) continue;
          const domain = entryDomain(b, at);
          if (this.query.domain !== undefined && domain !== this.query.domain) continue;
          if (this.query.domains !== undefined && !this.query.domains.has(domain)) continue;
          heap.push([n, at]);
        }
        continue;
      }
      if (!top) break;
      heap.pop();
      const b = decoded[top[0]][1];
      const at = top[1];
      this.last = eventKey(b.t[at], b.e, b.s, b.i[at]);
      if (this.needle === undefined || entryMayMatch(b, at, this.needle)) {
        const { event, fields } = readEntry(b, at);
        if (this.needle === undefined || textMatches(event, this.needle))
          this.items.push(view(this.last, event, fields));
      }
      if (this.items.length >= this.query.limit) return false;
    }
    // The scan is cut only between seconds: cut inside one whose blocks all had to be read (no spans, or spans that
    // all reach its newest event), each page would take one event and read the whole second again.
    this.scanned += read;
    if (this.scanned < this.maxScan || !lowest) return true;
    // Every block of the second was read: the next page goes on below the oldest event read.
    const b = decoded[lowest[0]][1];
    this.last = eventKey(b.t[lowest[1]], b.e, b.s, b.i[lowest[1]]);
    return false;
  }
}

/** A binary heap of entries, the one `first` puts first on top. */
class EntryHeap {
  private readonly a: Entry[] = [];

  constructor(private readonly first: (x: Entry, y: Entry) => boolean) {}

  peek(): Entry | undefined {
    return this.a[0];
  }

  push(e: Entry): void {
    const a = this.a;
    let i = a.push(e) - 1;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (!this.first(a[i], a[up])) break;
      [a[i], a[up]] = [a[up], a[i]];
      i = up;
    }
  }

  pop(): void {
    const a = this.a;
    const end = a.pop()!;
    if (a.length === 0) return;
    a[0] = end;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && this.first(a[l], a[m])) m = l;
      if (r < a.length && this.first(a[r], a[m])) m = r;
      if (m === i) return;
      [a[i], a[m]] = [a[m], a[i]];
      i = m;
    }
  }
}
