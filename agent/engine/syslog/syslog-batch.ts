/**
 * The spool's open batch as the bytes it will be stored and sent as: the `events.batch` args JSON
 * (`{"engine":…,"seq":…,"spool":{…},"records":[…]}`) written straight into one buffer, record by record, from the
 * framed bytes of each message, so that a batch is encoded once and its segment file and its command share those
 * bytes. A record's JSON is what JSON.stringify writes for `{receivedAt, sender, transport, raw}` with `raw` the
 * message as messageText() decodes it: the part up to `raw` is made once per sender and millisecond (SyslogOrigin),
 * the message's bytes are copied with JSON's escapes; a message that is not valid UTF-8 or is cut at the size
 * limit takes the general way (messageText, JSON.stringify). The batch head is written last, in room left before
 * the records, once its seq is known. Pure: no I/O. Not when batches are sealed, nor the disk (syslog-spool.ts).
 */
import { isUtf8 } from 'node:buffer';
import { MAX_SYSLOG_MESSAGE_BYTES, type SyslogRecord, type SyslogTransport } from '#common/syslog-record.js';
import { messageText } from './syslog-framing.js';

/** Where and when messages came from: one per connection (or datagram sender) and millisecond. */
export interface SyslogOrigin {
  readonly receivedAt: number;
  readonly sender: string;
  readonly transport: SyslogTransport;
  /** `{"receivedAt":…,"sender":…,"transport":…,"raw":"`: made by the batch on first use. */
  json?: Buffer;
}

/** Room before the records for the head (the engine's name is a short validated name; seq and counts numbers). */
const HEAD_ROOM = 512;
/**
 * Batch buffers kept for reuse during a flood (each the spool's batch limit, 120 KiB): as many as the batches a burst
 * piles up before the tenant answers, within the spool's in-memory bound (32 MiB). Fresh ones cost page faults and, as
 * external memory, full garbage collections: in bench/syslog-engine-path.ts, ~0.5 µs per event. Shrunk to
 * POOL_IDLE_BUFFERS when the flood is over (shrink()).
 */
const POOL_BUFFERS = 256;
const POOL_IDLE_BUFFERS = 2;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
/** JSON.stringify's escape of each byte that needs one (control characters, quote, backslash); else undefined. */
const ESCAPES: (Buffer | undefined)[] = Array.from({ length: 256 }, (_, c) =>
  c < 0x20 || c === QUOTE || c === BACKSLASH
    ? Buffer.from(JSON.stringify(String.fromCharCode(c)).slice(1, -1))
    : undefined,
);
/** At most this many bytes out per byte in (`\u00XX`). */
const MAX_ESCAPE = 6;

function originJson(o: SyslogOrigin): Buffer {
  const rec: SyslogRecord = { receivedAt: o.receivedAt, sender: o.sender, transport: o.transport, raw: '' };
  return (o.json = Buffer.from(JSON.stringify(rec).slice(0, -2)));
}

/** Whether a byte ≥ 0x80 was seen by the last plainUntil(). */
let sawHigh = false;
/** The last buffer scanned, as 32-bit words: four bytes tested at once. */
let wordsOf: ArrayBufferLike | undefined;
let words: Uint32Array<ArrayBufferLike> = new Uint32Array(0);

/**
 * The index of the first byte of src[start, end) that JSON must escape (a control character, quote or backslash),
 * or `end`; sets sawHigh when a byte ≥ 0x80 came before it. Reads four bytes at a time (aligned words).
 */
function plainUntil(src: Buffer, start: number, end: number): number {
  const off = src.byteOffset;
  let high = 0;
  let i = start;
  for (; i < end && ((off + i) & 3) !== 0; i++) {
    const c = src[i];
    if (c < 0x20 || c === QUOTE || c === BACKSLASH) return ((sawHigh = high !== 0), i);
    high |= c & 0x80;
  }
  if (src.buffer !== wordsOf) {
    wordsOf = src.buffer;
    words = new Uint32Array(src.buffer, 0, src.buffer.byteLength >>> 2);
  }
  const last = (off + end) >>> 2;
  for (let w = (off + i) >>> 2; w < last; w++, i += 4) {
    const x = words[w];
    const q = x ^ 0x22222222;
    const b = x ^ 0x5c5c5c5c;
    // A byte < 0x20, or 0 after the xor (a quote, a backslash): the classic "has a byte less than" test, exact.
    if ((((x - 0x20202020) & ~x) | ((q - 0x01010101) & ~q) | ((b - 0x01010101) & ~b)) & 0x80808080) break;
    high |= x & 0x80808080;
  }
  for (; i < end; i++) {
    const c = src[i];
    if (c < 0x20 || c === QUOTE || c === BACKSLASH) break;
    high |= c & 0x80;
  }
  sawHigh = high !== 0;
  return i;
}

/**
 * Writes the JSON string content of src[start, end) at `at` in `dst` (room checked by the caller: MAX_ESCAPE per
 * byte); returns where it ended, or -1 when the bytes are not valid UTF-8 (the caller takes the general way).
 */
function writeEscaped(dst: Buffer, at: number, src: Buffer, start: number, end: number): number {
  // Most messages need no escape: found by reading alone, and copied in one piece.
  let i = plainUntil(src, start, end);
  let ascii = !sawHigh;
  dst.set(new Uint8Array(src.buffer, src.byteOffset + start, i - start), at);
  at += i - start;
  for (; i < end; i++) {
    const c = src[i];
    if (c >= 0x20 && c !== QUOTE && c !== BACKSLASH) {
      if (c >= 0x80) ascii = false;
      dst[at++] = c;
    } else {
      const e = ESCAPES[c]!;
      for (let k = 0; k < e.length; k++) dst[at++] = e[k];
    }
  }
  if (!ascii && !isUtf8(src.subarray(start, end))) return -1;
  return at;
}

/** A sealed batch's JSON and, when it lies in a pooled buffer, that buffer (for release() once done with). */
export interface FinishedBatch {
  body: Buffer;
  pooled?: Buffer;
}

export class BatchWriter {
  private buf?: Buffer;
  private pos = HEAD_ROOM;
  /** Records in the open batch. */
  records = 0;
  /** Buffers of `cap` bytes to fill again: memory already mapped in, unlike a fresh buffer per batch. */
  private readonly free: Buffer[] = [];
  private readonly cap: number;

  /** `limit`: the bytes of the records (with their commas) a batch may hold; one record always fits. */
  constructor(private readonly limit: number) {
    this.cap = HEAD_ROOM + limit + 2;
  }

  /** Bytes of the records so far, commas included. */
  get bytes(): number {
    return this.pos - HEAD_ROOM;
  }

  /**
   * Appends the message src[start, end) from `origin` as a record; false when it would take the batch past its
   * limit (the caller seals the batch and appends again), nothing written.
   */
  appendMessage(src: Buffer, start: number, end: number, origin: SyslogOrigin): boolean {
    const len = end - start;
    const head = origin.json ?? originJson(origin);
    if (len < MAX_SYSLOG_MESSAGE_BYTES && this.bytes + 1 + head.length + MAX_ESCAPE * len + 2 <= this.limit) {
      const buf = (this.buf ??= this.free.pop() ?? Buffer.allocUnsafeSlow(this.cap));
      let at = this.pos;
      if (this.records > 0) buf[at++] = COMMA;
      buf.set(head, at);
      at = writeEscaped(buf, at + head.length, src, start, end);
      if (at >= 0) {
        buf[at++] = QUOTE;
        buf[at++] = 0x7d;
        this.pos = at;
        this.records++;
        return true;
      }
    }
    const rec: SyslogRecord = {
      receivedAt: origin.receivedAt,
      sender: origin.sender,
      transport: origin.transport,
      raw: messageText(src.subarray(start, end)),
    };
    return this.appendJson(JSON.stringify(rec));
  }

  /** Appends one record already in JSON; false (nothing written) when it would take the batch past its limit. */
  appendJson(json: string): boolean {
    const bytes = Buffer.byteLength(json) + (this.records > 0 ? 1 : 0);
    if (this.records > 0 && this.bytes + bytes > this.limit) return false;
    let buf = (this.buf ??= this.free.pop() ?? Buffer.allocUnsafeSlow(this.cap));
    if (this.pos + bytes + 2 > buf.length) {
      // One record larger than a batch (add() of a record longer than any message framed): a buffer of its own.
      const big = Buffer.allocUnsafeSlow(this.pos + bytes + 2);
      buf.copy(big, HEAD_ROOM, HEAD_ROOM, this.pos);
      this.release(buf);
      buf = this.buf = big;
    }
    if (this.records > 0) buf[this.pos++] = COMMA;
    this.pos += buf.write(json, this.pos, 'utf8');
    this.records++;
    return true;
  }

  /**
   * Ends the open batch with its head (`head` is everything before the first record, e.g. `{…,"records":[`) and
   * starts the next one empty. A small batch is copied out (its pooled buffer is reused at once); a large one stays
   * where it was written, its buffer to be release()d when the batch is done with.
   */
  finish(head: string): FinishedBatch {
    const buf = (this.buf ??= this.free.pop() ?? Buffer.allocUnsafeSlow(this.cap));
    buf[this.pos++] = 0x5d;
    buf[this.pos++] = 0x7d;
    const headBytes = Buffer.byteLength(head);
    let out: FinishedBatch;
    if (headBytes <= HEAD_ROOM) {
      buf.write(head, HEAD_ROOM - headBytes, 'utf8');
      const body = buf.subarray(HEAD_ROOM - headBytes, this.pos);
      if (body.length >= this.cap >> 3) out = { body, pooled: buf };
      else {
        out = { body: Buffer.allocUnsafeSlow(body.length) };
        body.copy(out.body);
        this.release(buf);
      }
    } else {
      out = { body: Buffer.concat([Buffer.from(head), buf.subarray(HEAD_ROOM, this.pos)]) };
      this.release(buf);
    }
    this.buf = undefined;
    this.pos = HEAD_ROOM;
    this.records = 0;
    return out;
  }

  /** The flood is over (a batch sealed by its time, not full): the pool gives back all but a few buffers. */
  shrink(): void {
    if (this.free.length > POOL_IDLE_BUFFERS) this.free.length = POOL_IDLE_BUFFERS;
  }

  /** A buffer finish() returned as `pooled`, nothing reading or writing it any more: it fills a later batch. */
  release(buf: Buffer): void {
    if (buf.length === this.cap && this.free.length < POOL_BUFFERS) this.free.push(buf);
  }
}
