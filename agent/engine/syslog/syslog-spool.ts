/**
 * The engine's syslog spool: every record received goes into the open batch, which is sealed after BATCH_MS or when
 * full (MAX_SYSLOG_BATCH_RECORDS, or BATCH_BYTES: it must travel as one sealed command), given the next sequence number
 * and appended to the current spool file (spool-file.ts: many batches to a file, each an entry with a head and a CRC)
 * exactly as it is sent (the binary `events.batch` args, agent/tunnel/events-batch-binary.ts): a batch is encoded
 * once, record by record as it fills (syslog-batch.ts), and those bytes are both the entry, written in one write with
 * the others sealed in the same loop turn, and the command's args (the forwarder makes JSON of them for a tenant
 * before protocol 1.11). A batch is on disk (the page cache) before it is sent (take()), and it is done with only once
 * the tenant acknowledged it as stored; a file goes once every batch in it is done with (and it takes no new ones).
 * The spool is bounded by the bytes of its batches: past the bound the oldest batches go first, and what they held is
 * counted (`dropped`) and logged. A file's batches done with while it stays (others of it pending) are noted in its
 * ack log (spool-file.ts), eight bytes each. Files outlive the engine's process: at open, the batches a previous run
 * left are sent first, but for those its ack logs name; an entry a crash cut short, and what follows it in its file,
 * is not. Segments of one batch each (`SEQ-RECORDS.seg`) that an engine before spool files left are sent too (those
 * an engine before the binary form left hold the JSON args, sent as they are: a JSON batch starts with `{`). Where
 * the batches go on disk and when a file is written, closed and removed: spool-files.ts.
 *
 * Sequence numbers rise across restarts (the tenant stores a batch once per engine and seq): they start above the
 * last one used and above the clock in µs, so they rise even when the spool directory is lost.
 * The open batch (at most BATCH_MS of records) lives in memory only: an engine killed hard loses it; a tenant
 * restarting or moving loses nothing. Sealed batches stay in memory too (up to IN_MEMORY_BYTES) until a send takes
 * them; a send after that reads the entry back. Not the sockets (syslog-listeners.ts) nor the sending.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '#common/logging.js';
import { MAX_SYSLOG_BATCH_RECORDS, type SyslogRecord } from '#common/syslog-record.js';
import { BatchWriter, type SyslogOrigin } from './syslog-batch.js';
import { SpoolFiles, type SpoolFile, type SpoolFilesOptions } from './spool-files.js';

/** How long a record waits for others before its batch is sealed: the issue's ~50 ms. */
export const BATCH_MS = 50;
/**
 * A batch's bytes stay under this. It must travel as one sealed command (MAX_COMMAND_FRAME_BYTES, 1 MiB less 1 KiB),
 * also as the JSON a tenant before protocol 1.11 gets (jsonOfBatch: at most about 6 × the message bytes plus ~130 per
 * record). The bound kept from the JSON batches: a tenant reading JSON reads a batch as one string, and V8 puts a
 * string over 128 KiB in its large-object space, where making and collecting it cost the tenant's ingest about twice
 * the CPU per event (9.9 against 4.8 µs, batches of 2 000 records against 500, the tenant's pipeline alone;
 * docs/benchmarks.md, syslog-ingest). One record always fits, whatever its size (a message is at most 64 KiB).
 */
export const BATCH_BYTES = 120 * 1024;
/** Sealed batches kept in memory too, for sending without reading them back; older ones are read from disk. */
const IN_MEMORY_BYTES = 32 * 1024 * 1024;
/**
 * Batch bytes being written at once (or waiting for it): a flood faster than a slow disk would otherwise pile up
 * writes (and their buffers) without bound. Past it the newest batch is dropped and counted, as a full UDP socket
 * buffer would.
 */
export const MAX_WRITING_BYTES = 64 * 1024 * 1024;
/** The batch buffers a flood used are kept this long after it (ms), then mostly let go (BatchWriter.shrink). */
const POOL_IDLE_MS = 10_000;
/** Drops are logged at most this often (with the counts since), not once per batch under a flood. */
const DROP_LOG_MS = 10_000;
const SEQ_FILE = 'last-seq';

export interface SpoolBatch {
  readonly seq: number;
  readonly records: number;
  readonly bytes: number;
  /** Its file, and where its entry starts there. */
  readonly file: SpoolFile;
  readonly offset: number;
  /** The batch's bytes while it is held in memory (until a send takes it, see take()). */
  body?: Buffer;
  /** The pooled buffer the body lies in (syslog-batch.ts), reused once the batch is done with. */
  pooled?: Buffer;
  /** Its entry is written (set when `written` settles well). */
  onDisk?: boolean;
  /** Settles once the entry is on disk (or failed to be written). */
  readonly written: Promise<void>;
}

export interface SpoolStats {
  /** Records taken in since the process started. */
  received: number;
  /** Records the tenant acknowledged since the process started. */
  forwarded: number;
  /** Records dropped because the spool was full (oldest first) since the process started. */
  dropped: number;
  /** Records in sealed batches not yet acknowledged, and their bytes. */
  pendingRecords: number;
  spooledBytes: number;
}

export interface SpoolOptions extends SpoolFilesOptions {
  /** The engine's name, as the batch names it (the tenant takes the name from the session anyway). */
  engine: string;
  maxBytes: number;
  log: Logger;
  batchMs?: number;
  /** Bytes of batch writes in flight at once (default MAX_WRITING_BYTES). */
  maxWritingBytes?: number;
  /** A batch's bytes stay under this (default BATCH_BYTES; tests of the record count raise it). */
  batchBytes?: number;
}

export class SyslogSpool {
  private readonly batches = new Map<number, SpoolBatch>();
  private readonly open: BatchWriter;
  private sealTimer?: NodeJS.Timeout;
  private lastSeq: number;
  private memBytes = 0;
  private readonly files: SpoolFiles;
  /** When a batch was last sealed full (by count or bytes): a flood. */
  private lastFull = 0;
  private closed = false;
  private readonly counts = { received: 0, forwarded: 0, dropped: 0, spooledBytes: 0, pendingRecords: 0 };
  private dropLog = { at: 0, records: 0, batches: 0 };
  /** Called after a batch is sealed (the forwarder sends it). */
  onBatch?: () => void;

  private constructor(
    private readonly dir: string,
    private readonly o: SpoolOptions,
    lastSeq: number,
  ) {
    this.lastSeq = lastSeq;
    this.open = new BatchWriter(o.batchBytes ?? BATCH_BYTES);
    this.files = new SpoolFiles(dir, o.log, o);
  }

  /** Opens (making it if need be) the spool in `dir`, with the batches a previous run left there. */
  static async open(dir: string, o: SpoolOptions): Promise<SyslogSpool> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    let last = Number((await readFile(join(dir, SEQ_FILE), 'utf8').catch(() => '0')).trim()) || 0;
    const found = await SpoolFiles.found(dir, o.log);
    for (const f of found) last = Math.max(last, f.seq);
    const spool = new SyslogSpool(dir, o, Math.max(last, Date.now() * 1000));
    for (const f of found) spool.track({ ...f, written: Promise.resolve(), onDisk: true });
    if (found.length)
      o.log.info({ batches: found.length, records: spool.counts.pendingRecords }, 'syslog spool has batches to send');
    spool.trim();
    return spool;
  }

  /** The engine's name, as the JSON of a batch names it (jsonOfBatch). */
  get engine(): string {
    return this.o.engine;
  }

  get stats(): SpoolStats {
    return { ...this.counts };
  }

  /** The sealed batches not yet acknowledged, oldest first. */
  pending(): IterableIterator<SpoolBatch> {
    return this.batches.values();
  }

  has(seq: number): boolean {
    return this.batches.has(seq);
  }

  add(rec: SyslogRecord): void {
    if (this.closed) return;
    if (!this.open.appendRecord(rec)) {
      this.sealFull();
      this.open.appendRecord(rec);
    }
    this.added();
  }

  /** The message src[start, end) as a record from `origin` (the listeners' way: no record object, no copy). */
  message(src: Buffer, start: number, end: number, origin: SyslogOrigin): void {
    if (this.closed) return;
    if (!this.open.appendMessage(src, start, end, origin)) {
      this.sealFull();
      this.open.appendMessage(src, start, end, origin);
    }
    this.added();
  }

  private added(): void {
    this.counts.received++;
    if (this.open.records >= MAX_SYSLOG_BATCH_RECORDS) this.sealFull();
    else if (!this.sealTimer) {
      this.sealTimer = setTimeout(() => {
        this.seal();
        // A batch not filled in its time, and none filled for a while: the flood is over, its buffers can go.
        if (Date.now() - this.lastFull > POOL_IDLE_MS) this.open.shrink();
      }, this.o.batchMs ?? BATCH_MS);
      this.sealTimer.unref();
    }
  }

  private sealFull(): void {
    this.lastFull = Date.now();
    this.seal();
  }

  /** Seals the open batch now (if it holds anything). */
  seal(): void {
    clearTimeout(this.sealTimer);
    this.sealTimer = undefined;
    if (this.open.records === 0) return;
    const seq = ++this.lastSeq;
    // The spool's counts so far travel with the batch: the tenant shows what its engines received and dropped.
    const records = this.open.records;
    const { body, pooled } = this.open.finish(seq, this.counts.received, this.counts.dropped);
    // The disk is behind: this (newest) batch goes, counted; one batch is always let through when none is in flight.
    const writing = this.files.writingBytes;
    if (writing > 0 && writing + body.length > (this.o.maxWritingBytes ?? MAX_WRITING_BYTES)) {
      if (pooled) this.open.release(pooled);
      this.counts.dropped += records;
      this.dropLog.records += records;
      this.dropLog.batches++;
      this.logDrops('syslog spool writes behind: newest batches dropped (the disk is slower than the senders)');
      return;
    }
    const { file, offset, written: ok } = this.files.append(seq, records, body);
    const written = ok.then((ok) => {
      batch.onDisk = ok;
      // Over the memory bound: its entry is enough (it is read back when sent), its buffer fills a later batch.
      if (this.memBytes > IN_MEMORY_BYTES && batch.body && this.batches.has(seq)) this.forget(batch, true);
    });
    const batch: SpoolBatch = { seq, records, bytes: body.length, file, offset, body, pooled, written };
    this.memBytes += batch.bytes;
    this.track(batch);
    this.trim();
    this.onBatch?.();
  }

  /** A batch's bytes, from memory or its file (a copy the caller must leave as it is). */
  async body(b: SpoolBatch): Promise<Buffer> {
    if (b.body) return b.body;
    await b.written;
    return this.readBack(b);
  }

  /**
   * A batch's bytes to send, once its entry is written (a batch is on disk before it is sent): the bytes in memory,
   * handed over (`disposable`: the caller may seal them in place, and a later send reads the entry back), or read
   * from its file. Only when its entry could not be written are the bytes in memory lent, not handed over.
   */
  async take(b: SpoolBatch): Promise<{ body: Buffer; disposable: boolean }> {
    await b.written;
    const body = b.body;
    if (body && this.batches.has(b.seq)) {
      if (!b.onDisk) return { body, disposable: false };
      this.memBytes -= b.bytes;
      b.body = undefined; // its pooled buffer comes back at the ack, once the tenant has read it all
      return { body, disposable: true };
    }
    // Taken before by a send whose answer never came: that buffer may still be queued on the old connection.
    b.pooled = undefined;
    return { body: await this.readBack(b), disposable: true };
  }

  /** The tenant stored batch `seq`: it is done with (its file goes with its last batch). */
  async ack(seq: number): Promise<void> {
    const b = this.batches.get(seq);
    if (!b) return;
    this.counts.forwarded += b.records;
    this.untrack(b, true);
    await b.written;
    await this.files.release(b.file, b.seq);
  }

  /** The tenant refused batch `seq` for good (malformed to it): it goes, counted as dropped, so later ones can pass. */
  async discard(seq: number): Promise<void> {
    const b = this.batches.get(seq);
    if (!b) return;
    this.counts.dropped += b.records;
    this.untrack(b, true);
    await b.written;
    await this.files.release(b.file, b.seq).catch(() => undefined);
  }

  /** Seals what is open, waits for every entry to be written, and keeps the last seq for the next start. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.seal();
    this.closed = true;
    await Promise.all([...this.batches.values()].map((b) => b.written));
    await this.files.close();
    await writeFile(join(this.dir, SEQ_FILE), `${this.lastSeq}\n`).catch(() => undefined);
  }

  private readBack(b: SpoolBatch): Promise<Buffer> {
    return this.files.read(b.file, b.offset, b.seq);
  }

  private track(b: SpoolBatch): void {
    this.batches.set(b.seq, b);
    this.counts.pendingRecords += b.records;
    this.counts.spooledBytes += b.bytes;
  }

  /** `delivered`: the tenant answered it, so a body taken by its send is no longer read by anything. */
  private untrack(b: SpoolBatch, delivered: boolean): void {
    this.batches.delete(b.seq);
    this.counts.pendingRecords -= b.records;
    this.counts.spooledBytes -= b.bytes;
    this.forget(b, delivered);
  }

  /**
   * The batch's body leaves memory; its pooled buffer is reused once written to disk, if nothing else may read it:
   * the body was never taken by a send (see take()), or its send was answered.
   */
  private forget(b: SpoolBatch, delivered: boolean): void {
    const reusable = delivered || b.body !== undefined;
    if (b.body) this.memBytes -= b.bytes;
    b.body = undefined;
    const pooled = b.pooled;
    b.pooled = undefined;
    if (pooled && reusable) void b.written.then(() => this.open.release(pooled));
  }

  /** Over the bound: the oldest batches go (never the newest, so the spool always holds the latest batch). */
  private trim(): void {
    while (this.counts.spooledBytes > this.o.maxBytes && this.batches.size > 1) {
      const oldest = this.batches.values().next().value!;
      this.untrack(oldest, false);
      this.counts.dropped += oldest.records;
      this.dropLog.records += oldest.records;
      this.dropLog.batches++;
      void oldest.written.then(() => this.files.release(oldest.file, oldest.seq)).catch(() => undefined);
    }
    this.logDrops('syslog spool full: oldest batches dropped (the tenant is unreachable or slower than the senders)');
  }

  /** Logs the drops since the last time, at most every DROP_LOG_MS. */
  private logDrops(message: string): void {
    if (this.dropLog.batches && Date.now() - this.dropLog.at >= DROP_LOG_MS) {
      this.o.log.warn(
        { droppedRecords: this.dropLog.records, droppedBatches: this.dropLog.batches, total: this.counts.dropped },
        message,
      );
      this.dropLog = { at: Date.now(), records: 0, batches: 0 };
    }
  }
}
