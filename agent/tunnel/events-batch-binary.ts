/**
 * The binary form of an `events.batch` (events-batch.ts): what an engine's spool writes (syslog-batch.ts), keeps as
 * its segments and sends to a tenant that reads it (protocol ≥ 1.11, see common/protocol-version.ts), and how the
 * tenant reads it: validated whole, then read record by record in place (SyslogRecords), with no JSON.parse and no
 * object or escape per record. All numbers little-endian:
 *
 *   0   magic 'P' 'S' 'B', then the format version (1)
 *   4   u32 records (n)          8  u32 origins (k)          12  u32 message bytes (m)
 *   16  f64 seq                  24 f64 spool received       32  f64 spool dropped       40  f64 base time (ms)
 *   48  the messages' bytes, one after the other, exactly as framed (m bytes; any bytes, not necessarily UTF-8)
 *   then the origins, k × { u8 transport (1 udp, 2 tcp, 3 tls), u8 sender length, the sender's ASCII }
 *   then the columns: n × i32 receive time − base time, n × u16 origin index, n × u32 message length
 *   and nothing after them.
 *
 * The one contested decision: the messages come before the tables, not after them. The engine copies each message
 * into its batch buffer as it is framed, before it knows how many records and origins the batch will hold; tables
 * written after the messages cost no second copy of the messages (they are most of the bytes), and the tenant reads
 * a batch whole anyway. The f64 fields hold whole numbers (safe integers, checked): seq and the receive times go
 * beyond 32 bits, and a double is read without a BigInt. A JSON batch starts with `{`, never with this magic: a
 * tenant tells the two apart at the first byte, so segments written before the upgrade are still read.
 * Pure: bytes in, a batch or a typed error (ERR_EVENTS_BATCH, naming the field) out. Not the writing (the engine's).
 */
import { isAscii } from 'node:buffer';
import { BadParameterError } from '#common/errors.js';
import {
  MAX_SYSLOG_BATCH_BYTES,
  MAX_SYSLOG_BATCH_RECORDS,
  MAX_SYSLOG_MESSAGE_BYTES,
  messageText,
  type SyslogRecords,
  type SyslogTransport,
} from '#common/syslog-record.js';

export const BINARY_BATCH_MAGIC = Uint8Array.of(0x50, 0x53, 0x42);
export const BINARY_BATCH_VERSION = 1;
export const BINARY_HEAD_BYTES = 48;
/** Column bytes per record: time offset, origin index, length. */
export const BINARY_COLUMN_BYTES = 4 + 2 + 4;
export const TRANSPORT_CODES: Readonly<Record<SyslogTransport, number>> = { udp: 1, tcp: 2, tls: 3 };
const TRANSPORTS: readonly (SyslogTransport | undefined)[] = [undefined, 'udp', 'tcp', 'tls'];
/** An IPv6 address with a zone is at most 45 + 1 + zone characters; 64 leaves room and bounds the field. */
export const MAX_SENDER = 64;
/** The largest time a JavaScript Date holds (ms since the epoch): beyond it toISOString throws on every retry. */
export const MAX_TIME_MS = 8.64e15;
/** The byte a JSON batch starts with. */
export const JSON_FIRST_BYTE = 0x7b;

/** Where each field lies in a batch of `records` records and `originBytes` bytes of origins after `m` messages. */
export function columnsAt(
  m: number,
  originBytes: number,
  records: number,
): { time: number; origin: number; len: number } {
  const time = BINARY_HEAD_BYTES + m + originBytes;
  return { time, origin: time + 4 * records, len: time + 6 * records };
}

/** A binary batch read and checked: its records are read in place, from the buffer it came in. */
export interface BinaryBatch {
  engine: string;
  seq: number;
  spool: { received: number; dropped: number };
  records: BinaryRecords;
}

/** The records of a checked binary batch, by index; text(i) decodes as messageText() does the bytes framed. */
export class BinaryRecords implements SyslogRecords {
  /**
   * Every message is ASCII with no newline (the usual batch): then the messages are decoded in one call and text(i)
   * is a slice of that string (no decoding call per message), and a block can join them as they are (event-block.ts).
   * A slice keeps the whole batch's string alive: what outlives the batch must be copied (event-pipeline.ts).
   */
  readonly plain: boolean;
  private all: string | undefined;

  constructor(
    private readonly buf: Buffer,
    readonly length: number,
    private readonly base: number,
    private readonly starts: Uint32Array,
    private readonly senders: readonly string[],
    private readonly transports: readonly SyslogTransport[],
    private readonly timeAt: number,
    private readonly originAt: number,
  ) {
    const from = starts[0];
    const to = starts[length];
    const messages = buf.subarray(from, to);
    this.plain = isAscii(messages) && messages.indexOf(0x0a) < 0;
    // ASCII decodes alike as latin1 and UTF-8, and latin1 is a copy.
    this.all = this.plain ? buf.toString('latin1', from, to) : undefined;
  }

  time(i: number): number {
    return this.base + this.buf.readInt32LE(this.timeAt + 4 * i);
  }

  sender(i: number): string {
    return this.senders[this.buf.readUInt16LE(this.originAt + 2 * i)];
  }

  transport(i: number): SyslogTransport {
    return this.transports[this.buf.readUInt16LE(this.originAt + 2 * i)];
  }

  text(i: number): string {
    const start = this.starts[i];
    const end = this.starts[i + 1];
    if (this.all !== undefined) return this.all.slice(start - this.starts[0], end - this.starts[0]);
    // Below the limit messageText is plain UTF-8 decoding: done without a view object.
    if (end - start < MAX_SYSLOG_MESSAGE_BYTES) return this.buf.toString('utf8', start, end);
    return messageText(this.buf.subarray(start, end));
  }

  /** Lets go of the messages' one string (slices of it keep it alive still); text(i) then decodes each message. */
  release(): void {
    this.all = undefined;
  }

  /** The message's bytes as framed (a view). */
  bytes(i: number): Buffer {
    return this.buf.subarray(this.starts[i], this.starts[i + 1]);
  }
}

const bad = (field: string, what: string) =>
  new BadParameterError('ERR_EVENTS_BATCH', `events.batch: ${field} must be ${what}`, { field });

function wholeNumber(buf: Buffer, at: number, field: string, max = Number.MAX_SAFE_INTEGER): number {
  const v = buf.readDoubleLE(at);
  if (!Number.isSafeInteger(v) || v < 0 || v > max) throw bad(field, `a whole number from 0 to ${max}`);
  return v;
}

/** The origins table at `at`: senders and transports, and where the table ends. */
function readOrigins(buf: Buffer, at: number, k: number) {
  const senders: string[] = new Array<string>(k);
  const transports: SyslogTransport[] = new Array<SyslogTransport>(k);
  for (let j = 0; j < k; j++) {
    if (at + 2 > buf.length) throw bad(`origins[${j}]`, 'within the batch (it is truncated)');
    const t = TRANSPORTS[buf[at]];
    if (!t) throw bad(`origins[${j}].transport`, '1 (udp), 2 (tcp) or 3 (tls)');
    const len = buf[at + 1];
    if (len > MAX_SENDER || at + 2 + len > buf.length)
      throw bad(`origins[${j}].sender`, `an address of at most ${MAX_SENDER} characters within the batch`);
    for (let c = at + 2; c < at + 2 + len; c++)
      if (buf[c] <= 0x20 || buf[c] >= 0x7f) throw bad(`origins[${j}].sender`, 'printable ASCII');
    transports[j] = t;
    senders[j] = buf.toString('latin1', at + 2, at + 2 + len);
    at += 2 + len;
  }
  return { senders, transports, end: at };
}

/**
 * A binary `events.batch` as the tenant reads it, from `engine` (the engine's name as main vouched for it in the
 * session). Every count, offset, length and index is checked before anything is read from it: a malformed batch is
 * refused whole (ERR_EVENTS_BATCH, naming the field), and nothing of it is stored.
 */
export function readEventsBatchBinary(bytes: Uint8Array, engine: string): BinaryBatch {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < BINARY_HEAD_BYTES) throw bad('head', `${BINARY_HEAD_BYTES} bytes (the batch is truncated)`);
  if (buf[0] !== BINARY_BATCH_MAGIC[0] || buf[1] !== BINARY_BATCH_MAGIC[1] || buf[2] !== BINARY_BATCH_MAGIC[2])
    throw bad('magic', '"PSB" (a binary events batch) or a JSON object');
  if (buf[3] !== BINARY_BATCH_VERSION) throw bad('version', `${BINARY_BATCH_VERSION}`);
  const n = buf.readUInt32LE(4);
  const k = buf.readUInt32LE(8);
  const m = buf.readUInt32LE(12);
  if (n > MAX_SYSLOG_BATCH_RECORDS) throw bad('records', `at most ${MAX_SYSLOG_BATCH_RECORDS}`);
  if (k > n || (n > 0 && k === 0)) throw bad('origins', 'between 1 and the number of records');
  if (m > MAX_SYSLOG_BATCH_BYTES || BINARY_HEAD_BYTES + m > buf.length)
    throw bad('messageBytes', `at most ${MAX_SYSLOG_BATCH_BYTES}, within the batch`);
  const seq = wholeNumber(buf, 16, 'seq');
  const received = wholeNumber(buf, 24, 'spool.received');
  const dropped = wholeNumber(buf, 32, 'spool.dropped');
  const base = wholeNumber(buf, 40, 'baseTime', MAX_TIME_MS);
  const origins = readOrigins(buf, BINARY_HEAD_BYTES + m, k);
  const cols = columnsAt(m, origins.end - BINARY_HEAD_BYTES - m, n);
  if (cols.time + BINARY_COLUMN_BYTES * n !== buf.length)
    throw bad('columns', `${BINARY_COLUMN_BYTES} bytes per record, ending the batch`);
  const starts = new Uint32Array(n + 1);
  let at = BINARY_HEAD_BYTES;
  for (let i = 0; i < n; i++) {
    const t = base + buf.readInt32LE(cols.time + 4 * i);
    if (t < 0 || t > MAX_TIME_MS) throw bad(`records[${i}].receivedAt`, 'ms since the epoch');
    if (buf.readUInt16LE(cols.origin + 2 * i) >= k) throw bad(`records[${i}].origin`, `an index below ${k}`);
    const len = buf.readUInt32LE(cols.len + 4 * i);
    if (len > MAX_SYSLOG_MESSAGE_BYTES) throw bad(`records[${i}].length`, `at most ${MAX_SYSLOG_MESSAGE_BYTES}`);
    starts[i] = at;
    at += len;
    if (at > BINARY_HEAD_BYTES + m) throw bad(`records[${i}].length`, "within the messages' bytes");
  }
  if (at !== BINARY_HEAD_BYTES + m) throw bad('messageBytes', "the sum of the records' lengths");
  starts[n] = at;
  const records = new BinaryRecords(buf, n, base, starts, origins.senders, origins.transports, cols.time, cols.origin);
  return { engine, seq, spool: { received, dropped }, records };
}
