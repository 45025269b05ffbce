/**
 * The spool's open batch as the bytes it will be stored and sent as: the binary `events.batch`
 * (agent/tunnel/events-batch-binary.ts) written straight into one buffer, message by message as they are framed
 * (their bytes copied once, no escaping), with the origins and columns kept aside in small arrays and written after
 * the messages when the batch is sealed, the head last. A batch is encoded once: its segment file and its command
 * share those bytes. For a tenant before protocol 1.11, syslog-batch-json.ts makes the JSON args of a batch at send
 * time. Pure: no I/O. Not when batches are sealed, nor the disk (syslog-spool.ts).
 */
import {
  MAX_SYSLOG_BATCH_RECORDS,
  MAX_SYSLOG_MESSAGE_BYTES,
  type SyslogRecord,
  type SyslogTransport,
} from '#common/syslog-record.js';
import {
  BINARY_BATCH_MAGIC,
  BINARY_BATCH_VERSION,
  BINARY_COLUMN_BYTES,
  BINARY_HEAD_BYTES,
  MAX_SENDER,
  TRANSPORT_CODES,
  columnsAt,
} from '../../tunnel/events-batch-binary.js';

/** Where and when messages came from: one per connection (or datagram sender) and millisecond. */
export interface SyslogOrigin {
  readonly receivedAt: number;
  readonly sender: string;
  readonly transport: SyslogTransport;
  /** The batch (BatchWriter's generation) that last gave this origin an index in its table, and that index. */
  gen?: number;
  index?: number;
}

/**
 * Batch buffers kept for reuse during a flood (each the spool's batch limit, 120 KiB): as many as the batches a burst
 * piles up before the tenant answers, within the spool's in-memory bound (32 MiB). Fresh ones cost page faults and, as
 * external memory, full garbage collections: in bench/syslog-engine-path.ts, ~0.5 µs per event. Shrunk to
 * POOL_IDLE_BUFFERS when the flood is over (shrink()).
 */
const POOL_BUFFERS = 256;
const POOL_IDLE_BUFFERS = 2;
/** An origin's entry: transport, sender length, sender (at most MAX_SENDER bytes, what the tenant takes). */
const MAX_ORIGIN_BYTES = 2 + MAX_SENDER;
/** Room for one record of the largest message with a new origin: a batch always takes its first record. */
const ONE_RECORD_BYTES = BINARY_HEAD_BYTES + MAX_SYSLOG_MESSAGE_BYTES + MAX_ORIGIN_BYTES + BINARY_COLUMN_BYTES;
const I32_MAX = 2 ** 31 - 1;
/** Batch generations, unique in the process: an origin may meet more than one writer (one per spool). */
let generations = 0;

/** A sealed batch's bytes and, when they lie in a pooled buffer, that buffer (for release() once done with). */
export interface FinishedBatch {
  body: Buffer;
  pooled?: Buffer;
}

export class BatchWriter {
  private buf?: Buffer;
  /** Where the next message goes. */
  private pos = BINARY_HEAD_BYTES;
  /** Records in the open batch. */
  records = 0;
  private base = 0;
  private readonly times = new Int32Array(MAX_SYSLOG_BATCH_RECORDS);
  private readonly originOf = new Uint16Array(MAX_SYSLOG_BATCH_RECORDS);
  private readonly lengths = new Uint32Array(MAX_SYSLOG_BATCH_RECORDS);
  /** The open batch's origins, by `transport sender`, and their encoded bytes. */
  private readonly originIndex = new Map<string, number>();
  private origins: Buffer[] = [];
  private originBytes = 0;
  /** The open batch's generation: an origin's cached index is good for the batch of its generation only. */
  private gen = ++generations;
  /** Buffers of `cap` bytes to fill again: memory already mapped in, unlike a fresh buffer per batch. */
  private readonly free: Buffer[] = [];
  private readonly cap: number;

  /** `limit`: the bytes a batch may take, all included; its first record always goes in, whatever its size. */
  constructor(private readonly limit: number) {
    this.cap = Math.max(limit, ONE_RECORD_BYTES);
  }

  /** Bytes of the batch so far, tables and head included. */
  get bytes(): number {
    return this.pos + this.originBytes + BINARY_COLUMN_BYTES * this.records;
  }

  /**
   * Appends the message src[start, end) from `origin` as a record (cut at MAX_SYSLOG_MESSAGE_BYTES: the tenant
   * decodes the cut as messageText() does); false when it would take the batch past its limit or its record count,
   * or its time is too far from the batch's first (the caller seals the batch and appends again), nothing written.
   */
  appendMessage(src: Buffer, start: number, end: number, origin: SyslogOrigin): boolean {
    const len = Math.min(end - start, MAX_SYSLOG_MESSAGE_BYTES);
    const n = this.records;
    let index = origin.gen === this.gen ? origin.index! : -1;
    let entry: Buffer | undefined;
    if (index < 0) {
      const key = `${origin.transport} ${origin.sender}`;
      index = this.originIndex.get(key) ?? -1;
      if (index < 0) entry = originEntry(origin);
    }
    if (n > 0) {
      const offset = origin.receivedAt - this.base;
      const grows = len + BINARY_COLUMN_BYTES + (entry?.length ?? 0);
      if (n >= MAX_SYSLOG_BATCH_RECORDS || this.bytes + grows > this.limit || offset < -I32_MAX || offset > I32_MAX)
        return false;
    } else this.base = origin.receivedAt;
    if (entry) {
      index = this.origins.push(entry) - 1;
      this.originBytes += entry.length;
      this.originIndex.set(`${origin.transport} ${origin.sender}`, index);
    }
    origin.gen = this.gen;
    origin.index = index;
    const buf = (this.buf ??= this.free.pop() ?? Buffer.allocUnsafeSlow(this.cap));
    buf.set(new Uint8Array(src.buffer, src.byteOffset + start, len), this.pos);
    this.pos += len;
    this.times[n] = origin.receivedAt - this.base;
    this.originOf[n] = index;
    this.lengths[n] = len;
    this.records = n + 1;
    return true;
  }

  /** Appends a record given as an object (its message as UTF-8); false as appendMessage. */
  appendRecord(rec: SyslogRecord): boolean {
    const raw = Buffer.from(rec.raw);
    return this.appendMessage(raw, 0, raw.length, {
      receivedAt: rec.receivedAt,
      sender: rec.sender,
      transport: rec.transport,
    });
  }

  /**
   * Ends the open batch with its tables and head, and starts the next one empty. A small batch is copied out (its
   * pooled buffer is reused at once); a large one stays where it was written, its buffer to be release()d when the
   * batch is done with.
   */
  finish(seq: number, received: number, dropped: number): FinishedBatch {
    const buf = (this.buf ??= this.free.pop() ?? Buffer.allocUnsafeSlow(this.cap));
    const n = this.records;
    const m = this.pos - BINARY_HEAD_BYTES;
    let at = this.pos;
    for (const o of this.origins) at += o.copy(buf, at);
    const cols = columnsAt(m, this.originBytes, n);
    for (let i = 0; i < n; i++) {
      buf.writeInt32LE(this.times[i], cols.time + 4 * i);
      buf.writeUInt16LE(this.originOf[i], cols.origin + 2 * i);
      buf.writeUInt32LE(this.lengths[i], cols.len + 4 * i);
    }
    const end = cols.time + BINARY_COLUMN_BYTES * n;
    buf.set(BINARY_BATCH_MAGIC, 0);
    buf[3] = BINARY_BATCH_VERSION;
    buf.writeUInt32LE(n, 4);
    buf.writeUInt32LE(this.origins.length, 8);
    buf.writeUInt32LE(m, 12);
    buf.writeDoubleLE(seq, 16);
    buf.writeDoubleLE(received, 24);
    buf.writeDoubleLE(dropped, 32);
    buf.writeDoubleLE(this.base, 40);
    let out: FinishedBatch;
    const body = buf.subarray(0, end);
    if (end >= this.cap >> 3) out = { body, pooled: buf };
    else {
      out = { body: Buffer.allocUnsafeSlow(end) };
      body.copy(out.body);
      this.release(buf);
    }
    this.buf = undefined;
    this.pos = BINARY_HEAD_BYTES;
    this.records = 0;
    this.origins = [];
    this.originBytes = 0;
    this.originIndex.clear();
    this.gen = ++generations;
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

/**
 * An origin's entry, its sender as the tenant reads one: printable ASCII, at most MAX_SENDER bytes. An address always
 * is, but an IPv6 zone is an interface name, which may hold anything: such a character becomes `?`, because a sender
 * the tenant refuses would lose the whole batch, every other sender's records with it.
 */
function originEntry(o: SyslogOrigin): Buffer {
  const n = Math.min(o.sender.length, MAX_SENDER);
  const e = Buffer.allocUnsafe(2 + n);
  e[0] = TRANSPORT_CODES[o.transport];
  e[1] = n;
  for (let i = 0; i < n; i++) {
    const c = o.sender.charCodeAt(i);
    e[2 + i] = c > 0x20 && c < 0x7f ? c : 0x3f;
  }
  return e;
}
