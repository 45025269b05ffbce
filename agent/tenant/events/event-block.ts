/**
 * How a tenant stores events: in blocks, one per engine batch and second of receipt (event-store.ts keys them), each
 * holding the messages as received plus what only ingest can know (receive time, sender, transport, log source,
 * domain and the rule that chose it, custom properties, flags). Parsing the header and body again when a search
 * reads an event gives the same view ingest would have built (both are pure functions of the message and the receive
 * time), so ingest pays a host lookup and a tag per event and one write per block, not a parse, an object and a
 * key per event: that is what lets a tenant keep up with a syslog sender (docs/benchmarks.md, syslog-ingest).
 * An event a stage rewrote before storing (obfuscation) is kept whole instead, and its clear message is not kept.
 * Not the keys nor the search (event-store.ts), nor what ingest decides (event-pipeline.ts).
 */
import type { EventView } from '#common/events.js';
import { parseSyslogHeader } from './syslog-header.js';
import { parseEventBody, type EventBody } from './event-body.js';
import { blockBytes, compressBlock } from './block-compression.js';

/** What is stored per event when kept whole: the view without its id (the key is the id) and without `fields`. */
export type StoredEvent = Omit<EventView, 'id' | 'fields'>;

/** What ingest decides about one event; the rest of it is in its message. */
export interface EventMeta {
  /** Receive time (ms), as stored: the tenant's own when the engine's was out of bounds. */
  time: number;
  sender: string;
  transport: string;
  logSource: string;
  domain: string;
  rule: string;
  properties?: Record<string, string>;
  truncated?: boolean;
  timeAdjusted?: boolean;
}

/** A stored block (JSON). Per entry the arrays run in parallel; `x` holds five dictionary indexes per entry. */
export interface EventBlock {
  /** The engine, and the batch's sequence number. */
  e: string;
  s: number;
  /** Each entry's index in its batch (the last part of its id). */
  i: number[];
  t: number[];
  /** The message as received (cut to the bound); '' where `o` holds the entry whole. */
  r: string[];
  /** Strings that repeat across entries: senders, transports, log sources, domains, rules. */
  d: string[];
  /** Combinations [sender, transport, logSource, domain, rule] as indexes into `d`, five numbers each. */
  x: number[];
  /** Per entry, its combination (an index into `x` / 5): most entries of a batch share a handful. */
  c: number[];
  /** Custom properties, by entry position. */
  p?: Record<number, Record<string, string>>;
  /** Written instead of `p`: the distinct property sets, and per entry its set (-1: none). */
  ps?: Record<string, string>[];
  pc?: number[];
  /** Positions of entries flagged truncated, and time-adjusted. */
  tr?: number[];
  ta?: number[];
  /** Entries kept whole, by position. */
  o?: Record<number, StoredEvent>;
}

const X = 5;

/**
 * A block as written: JSON, then (when no message holds a newline, the usual case) a newline and the messages joined
 * by newlines, which costs a copy where JSON would escape each one. Numbers cost most of JSON's time, so the receive
 * times are offsets in ms from `t0` (the block's second), the batch indexes only `i0` when they run on by one (the
 * usual case), and the combinations runs of [combination, count]. The JSON opens with the block's span, its earliest
 * and latest receive times (`lo`, `hi`), which blockSpan reads without parsing the rest: a search decodes only the
 * blocks that can hold its next events (event-search.ts). Blocks written before spans have none.
 */
interface StoredBlock extends Omit<EventBlock, 'i' | 't' | 'c' | 'r'> {
  lo?: number;
  hi?: number;
  r?: string[];
  t0: number;
  t: number[];
  i?: number[];
  i0?: number;
  c: number[];
}

export function encodeBlock(b: EventBlock): string {
  // Lone surrogates would not survive UTF-8: such a message is kept in JSON's escapes.
  const joined = !b.r.some((m) => m.includes('\n') || !m.isWellFormed());
  const json = blockJson(b, joined);
  return joined ? `${json}\n${b.r.join('\n')}` : json;
}

/**
 * The block as stored, as bytes, when its messages are known to be ASCII without a newline (a plain batch's:
 * BinaryRecords): the same bytes encodeBlock's string makes, but the messages are copied (latin1) rather than
 * measured and encoded as UTF-8, twice, by LevelDB's binding, which costs more than the rest of writing a block.
 */
export function encodeBlockBytes(b: EventBlock): Buffer {
  const json = blockJson(b, true);
  const messages = b.r.join('\n');
  const head = Buffer.byteLength(json);
  const out = Buffer.allocUnsafe(head + 1 + messages.length);
  out.write(json, 0, head, 'utf8');
  out[head] = 0x0a;
  out.write(messages, head + 1, messages.length, 'latin1');
  return out;
}

/** The block's JSON part; `joined`: its messages follow it, joined by newlines, rather than in it. */
function blockJson(b: EventBlock, joined: boolean): string {
  const t0 = Math.floor(b.t[0] / 1000) * 1000;
  const n = b.i.length;
  const contiguous = b.i[n - 1] - b.i[0] === n - 1;
  const runs: number[] = [];
  for (let at = 0; at < n; at++) {
    if (runs.length > 0 && runs[runs.length - 2] === b.c[at]) runs[runs.length - 1]++;
    else runs.push(b.c[at], 1);
  }
  // Property values repeat (a handful of users, customers): each distinct set is written once. Ingest hands the
  // builder one object per distinct set, so most are told apart by identity, without a JSON key each.
  let props: Pick<StoredBlock, 'ps' | 'pc'> = {};
  if (b.p) {
    const same = new Map<Record<string, string>, number>();
    const sets = new Map<string, number>();
    const ps: Record<string, string>[] = [];
    const pc = new Array<number>(n).fill(-1);
    for (let at = 0; at < n; at++) {
      const set = b.p[at];
      if (!set) continue;
      let k = same.get(set);
      if (k === undefined) {
        const key = JSON.stringify(set);
        k = sets.get(key);
        if (k === undefined) sets.set(key, (k = ps.push(set) - 1));
        same.set(set, k);
      }
      pc[at] = k;
    }
    props = { ps, pc };
  }
  const { lo, hi } = spanOf(b);
  // The span first, so that the value's opening bytes are the span (SPAN_RE).
  const out: StoredBlock = {
    lo,
    hi,
    ...b,
    r: joined ? undefined : b.r,
    p: undefined,
    ...props,
    t0,
    t: b.t.map((t) => t - t0),
    ...(contiguous ? { i: undefined, i0: b.i[0] } : { i: b.i }),
    c: runs,
  };
  // JSON never holds a raw newline: the first one ends it.
  return JSON.stringify(out);
}

/** A block's earliest and latest receive times (ms). */
export function spanOf(b: Pick<EventBlock, 't'>): { lo: number; hi: number } {
  let lo = b.t[0];
  let hi = lo;
  for (const t of b.t)
    if (t < lo) lo = t;
    else if (t > hi) hi = t;
  return { lo, hi };
}

/** A block's opening: its span, times in ms (at most 15 digits each: TIME_WIDTH of event-store.ts). */
const SPAN_RE = /^\{"lo":(\d{1,15}),"hi":(\d{1,15}),/;
/** Enough of a stored block's opening to hold its span. */
export const SPAN_BYTES = 48;

/** A stored block's earliest and latest receive times from its opening bytes, or undefined (written without). */
export function blockSpan(value: Buffer): { lo: number; hi: number } | undefined {
  const m = SPAN_RE.exec(blockBytes(value).toString('latin1', 0, SPAN_BYTES));
  return m ? { lo: Number(m[1]), hi: Number(m[2]) } : undefined;
}

/** A stored block, read. */
export const decodeStoredBlock = (value: Buffer): EventBlock => decodeBlock(blockBytes(value).toString('utf8'));

export function decodeBlock(value: string): EventBlock {
  const cut = value.indexOf('\n');
  const { lo: _lo, hi: _hi, ...s } = JSON.parse(cut < 0 ? value : value.slice(0, cut)) as StoredBlock;
  const r = cut < 0 ? s.r! : value.slice(cut + 1).split('\n');
  const n = s.t.length;
  const c: number[] = [];
  for (let k = 0; k < s.c.length; k += 2) for (let m = 0; m < s.c[k + 1]; m++) c.push(s.c[k]);
  const i = s.i ?? Array.from({ length: n }, (_, at) => s.i0! + at);
  let p: EventBlock['p'];
  if (s.pc && s.ps) {
    p = {};
    for (let at = 0; at < n; at++) if (s.pc[at] >= 0) p[at] = { ...s.ps[s.pc[at]] };
  }
  return { ...s, i, t: s.t.map((t) => t + s.t0), c, r, p, ps: undefined, pc: undefined };
}

/** Builds one block; `add` returns the entry's position. */
export class BlockBuilder {
  readonly block: EventBlock;
  /** The domains of its entries (each one gets an index entry). */
  readonly domains = new Set<string>();
  private readonly dict = new Map<string, number>();
  private readonly combos = new Map<string, number>();
  /** The combo of the entry before, and its index: most entries share their neighbour's. */
  private last: { combo: Combo; n: number } | undefined;

  /** `plain`: every message it will hold is ASCII without a newline (encodeBlockBytes). */
  constructor(
    engine: string,
    seq: number,
    readonly plain = false,
  ) {
    this.block = { e: engine, s: seq, i: [], t: [], r: [], d: [], x: [], c: [] };
  }

  /** The block as stored: encoded, then compressed. */
  encoded(): Buffer {
    return compressBlock(this.plain ? encodeBlockBytes(this.block) : Buffer.from(encodeBlock(this.block)));
  }

  get size(): number {
    return this.block.i.length;
  }

  private ref(s: string): number {
    let n = this.dict.get(s);
    if (n === undefined) {
      n = this.block.d.length;
      this.block.d.push(s);
      this.dict.set(s, n);
    }
    return n;
  }

  /** Adds an entry kept as its message; `whole` instead keeps the event as given (and not the message). */
  add(index: number, raw: string, m: EventMeta, whole?: StoredEvent): number {
    // A whole entry's fields as the stage left them (sealed values stay sealed in the dictionary too).
    const f = whole
      ? [whole.sender, whole.transport, whole.logSource, whole.domain, whole.domainRule]
      : [m.sender, m.transport, m.logSource, m.domain, m.rule];
    const at = this.addMessage(index, whole ? '' : raw, m.time, comboOf(f));
    const b = this.block;
    if (whole) (b.o ??= {})[at] = whole;
    else this.flag(at, m.properties, m.truncated, m.timeAdjusted);
    return at;
  }

  /**
   * Adds an entry kept as its message, with its shared strings as one Combo (ingest keeps one per log source and tag,
   * so an event costs a lookup here, not a key built from five strings).
   */
  addMessage(index: number, raw: string, time: number, combo: Combo): number {
    const b = this.block;
    const at = b.i.length;
    b.i.push(index);
    b.t.push(time);
    b.r.push(raw);
    if (this.last?.combo === combo) {
      b.c.push(this.last.n);
      return at;
    }
    let n = this.combos.get(combo.key);
    if (n === undefined) {
      n = b.x.length / X;
      for (const s of combo.fields) b.x.push(this.ref(s));
      this.combos.set(combo.key, n);
      this.domains.add(combo.fields[3]);
    }
    this.last = { combo, n };
    b.c.push(n);
    return at;
  }

  /** Records what ingest found about entry `at` beyond its message and combo. */
  flag(at: number, properties?: Record<string, string>, truncated?: boolean, timeAdjusted?: boolean): void {
    const b = this.block;
    if (properties) (b.p ??= [])[at] = properties;
    if (truncated) (b.tr ??= []).push(at);
    if (timeAdjusted) (b.ta ??= []).push(at);
  }
}

/** An entry's shared strings [sender, transport, logSource, domain, rule], and them joined as a map key. */
export interface Combo {
  readonly fields: readonly string[];
  readonly key: string;
}

export const comboOf = (fields: readonly string[]): Combo => ({ fields, key: fields.join('\0') });

/** The domain of entry `at` without reading the rest of it. */
export const entryDomain = (b: EventBlock, at: number): string => b.d[b.x[b.c[at] * X + 3]];

/** Whether entry `at` may match a lower-cased text needle (a cheap test that never says no to a match). */
export function entryMayMatch(b: EventBlock, at: number, needle: string): boolean {
  const whole = b.o?.[at];
  if (whole) return true;
  return b.r[at].toLowerCase().includes(needle);
}

/** Builds the stored event from a message and what ingest decided: the one place the two ways agree. */
export function eventOf(raw: string, m: EventMeta, engine: string): { event: StoredEvent; body: EventBody } {
  const h = parseSyslogHeader(raw, m.time);
  const body = parseEventBody(h.message);
  const e: StoredEvent = {
    time: new Date(m.time).toISOString(),
    domain: m.domain,
    domainRule: m.rule,
    logSource: m.logSource,
    engine,
    sender: m.sender,
    transport: m.transport,
    format: body.format,
    message: h.message,
  };
  if (h.time !== undefined) e.logSourceTime = new Date(h.time).toISOString();
  if (h.facility !== undefined) e.facility = h.facility;
  if (h.severity !== undefined) e.severity = h.severity;
  if (h.host !== undefined) e.host = h.host;
  if (h.app !== undefined) e.app = h.app;
  if (h.procId !== undefined) e.procId = h.procId;
  if (h.msgId !== undefined) e.msgId = h.msgId;
  if (h.structuredData !== undefined) e.structuredData = h.structuredData;
  if (body.sourceAddress !== undefined) e.sourceAddress = body.sourceAddress;
  if (body.destinationAddress !== undefined) e.destinationAddress = body.destinationAddress;
  if (body.sourcePort !== undefined) e.sourcePort = body.sourcePort;
  if (body.destinationPort !== undefined) e.destinationPort = body.destinationPort;
  if (body.vlan !== undefined) e.vlan = body.vlan;
  if (body.flowSource !== undefined) e.flowSource = body.flowSource;
  if (m.properties) e.properties = m.properties;
  if (m.truncated) e.truncated = true;
  if (m.timeAdjusted) e.timeAdjusted = true;
  return { event: e, body };
}

/** Entry `at` as stored, with its vendor fields when it has any (parsed from its message). */
export function readEntry(b: EventBlock, at: number): { event: StoredEvent; fields?: Record<string, string> } {
  const whole = b.o?.[at];
  if (whole) {
    const fields = parseEventBody(whole.message).fields;
    return { event: whole, fields: hasAny(fields) ? fields : undefined };
  }
  const x = b.c[at] * X;
  const m: EventMeta = {
    time: b.t[at],
    sender: b.d[b.x[x]],
    transport: b.d[b.x[x + 1]],
    logSource: b.d[b.x[x + 2]],
    domain: b.d[b.x[x + 3]],
    rule: b.d[b.x[x + 4]],
  };
  const props = b.p?.[at];
  if (props) m.properties = props;
  if (b.tr?.includes(at)) m.truncated = true;
  if (b.ta?.includes(at)) m.timeAdjusted = true;
  const { event, body } = eventOf(b.r[at], m, b.e);
  return { event, fields: hasAny(body.fields) ? body.fields : undefined };
}

function hasAny(r: Record<string, string>): boolean {
  for (const _ in r) return true;
  return false;
}
