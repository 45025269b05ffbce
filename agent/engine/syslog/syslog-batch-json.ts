/**
 * A binary batch (agent/tunnel/events-batch-binary.ts) as the JSON args a tenant before protocol 1.11 reads:
 * `{"engine":…,"seq":…,"spool":{…},"records":[{receivedAt, sender, transport, raw}…]}`, exactly what JSON.stringify
 * writes for those records with `raw` as messageText() decodes each message's bytes. Made at send time, and only for
 * such a tenant, so it is written straight into one buffer from the batch's bytes: the part of a record before `raw`
 * made once per origin and millisecond, each message copied with JSON's escapes (looked for four bytes at a time). A
 * message that is not valid UTF-8 or is cut at the size limit takes the general way (messageText, JSON.stringify).
 * Through JSON.stringify of record objects this cost an engine ~1.7 µs per event more (bench/syslog-engine-path.ts,
 * PALISADE_BENCH_SYSLOG_ENGINE_TENANT_MINOR=10). Pure: bytes in, bytes out; ERR_EVENTS_BATCH for a malformed batch.
 */
import { isUtf8 } from 'node:buffer';
import { MAX_SYSLOG_MESSAGE_BYTES, messageText } from '#common/syslog-record.js';
import { readEventsBatchBinary } from '../../tunnel/events-batch-binary.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
/** JSON.stringify's escape of each byte that needs one (control characters, quote, backslash); else undefined. */
const ESCAPES: (Buffer | undefined)[] = Array.from({ length: 256 }, (_, c) =>
  c < 0x20 || c === QUOTE || c === BACKSLASH
    ? Buffer.from(JSON.stringify(String.fromCharCode(c)).slice(1, -1))
    : undefined,
);
/** At most this many bytes out per byte in (`\u00XX`). */
const MAX_ESCAPE = 6;
const RECORD_END = Buffer.from('"}');

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

/** A growing output buffer. */
class Out {
  buf: Buffer;
  at = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }
  put(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }
}

/**
 * The JSON args of a binary batch for a tenant before protocol 1.11, `engine` the name they carry; at most about six
 * times the batch's message bytes (every byte escaped) plus ~130 per record, within one command for a batch of
 * 120 KiB. Throws ERR_EVENTS_BATCH for bytes that are not a well-formed batch (a damaged segment).
 */
export function jsonOfBatch(binary: Buffer, engine: string): Buffer {
  const b = readEventsBatchBinary(binary, engine);
  const r = b.records;
  const spool = JSON.stringify(b.spool);
  // Room for most batches as they are (~75 bytes of JSON per record around its message, few escapes): the buffer is
  // fresh for each batch, and every byte more of it costs page faults and garbage collection. It grows if need be.
  const out = new Out(binary.length + 90 * r.length + 256);
  out.put(Buffer.from(`{"engine":${JSON.stringify(engine)},"seq":${b.seq},"spool":${spool},"records":[`));
  let prefix = Buffer.alloc(0);
  let prefixTime = -1;
  let prefixSender = '';
  let prefixTransport = '';
  for (let i = 0; i < r.length; i++) {
    const time = r.time(i);
    const sender = r.sender(i);
    const transport = r.transport(i);
    // Records of one read share their origin and millisecond: the part before the message is made once for them.
    if (time !== prefixTime || sender !== prefixSender || transport !== prefixTransport) {
      const head = { receivedAt: time, sender, transport, raw: '' };
      prefix = Buffer.from(JSON.stringify(head).slice(0, -2));
      prefixTime = time;
      prefixSender = sender;
      prefixTransport = transport;
    }
    const msg = r.bytes(i);
    out.room(1 + prefix.length + MAX_ESCAPE * msg.length + RECORD_END.length);
    if (i > 0) out.buf[out.at++] = 0x2c;
    const start = out.at;
    out.put(prefix);
    const end = msg.length < MAX_SYSLOG_MESSAGE_BYTES ? writeEscaped(out.buf, out.at, msg, 0, msg.length) : -1;
    if (end >= 0) {
      out.at = end;
      out.put(RECORD_END);
      continue;
    }
    // Not UTF-8, or cut at the limit: decoded as the tenant would, and written by JSON.stringify.
    out.at = start;
    const rec = { receivedAt: time, sender, transport, raw: messageText(msg) };
    out.put(Buffer.from(JSON.stringify(rec)));
  }
  out.put(Buffer.from(']}'));
  return out.buf.subarray(0, out.at);
}
