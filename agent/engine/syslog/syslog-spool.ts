/**
 * The engine's syslog spool: every record received goes into the open batch, which is sealed after BATCH_MS or
 * when full (MAX_SYSLOG_BATCH_RECORDS, or BATCH_JSON_BYTES of its JSON: it must travel as one sealed command), given
 * the next sequence number and written to disk as one append-only segment file, `SEQ-RECORDS.seg`, holding the
 * batch exactly as it is sent (the `events.batch` args, syslog-forwarder.ts). A segment is removed only once the
 * tenant acknowledged its batch as stored. The spool is bounded by the bytes of its segments: past the bound the
 * oldest segments go first, and what they held is counted (`dropped`) and logged. Segments outlive the engine's
 * process: at open, those a previous run left are sent first (a segment half written by a crash was never
 * renamed into place, and is removed).
 *
 * Sequence numbers rise across restarts (the tenant stores a batch once per engine and seq): they start above the
 * last one used and above the clock in µs, so they rise even when the spool directory is lost.
 * The open batch (at most BATCH_MS of records) lives in memory only: an engine killed hard loses it; a tenant
 * restarting or moving loses nothing. Not the sockets (syslog-listeners.ts) nor the sending.
 */
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import { MAX_SYSLOG_BATCH_RECORDS, type SyslogRecord } from '#common/syslog-record.js';

/** How long a record waits for others before its batch is sealed: the issue's ~50 ms. */
export const BATCH_MS = 50;
/**
 * A batch's JSON stays under this: it travels as one sealed command (MAX_COMMAND_FRAME_BYTES, 1 MiB less 1 KiB, with
 * the command's own fields); one record's JSON is at most about 6 × 64 KiB (every byte escaped), so one always fits.
 */
export const BATCH_JSON_BYTES = 960 * 1024;
/** Sealed batches kept in memory too, for sending without reading them back; older ones are read from disk. */
const IN_MEMORY_BYTES = 32 * 1024 * 1024;
/**
 * Segment bytes being written at once: a flood faster than a slow disk would otherwise pile up writes (and their
 * buffers) without bound. Past it the newest batch is dropped and counted, as a full UDP socket buffer would.
 */
export const MAX_WRITING_BYTES = 64 * 1024 * 1024;
/** Drops are logged at most this often (with the counts since), not once per segment under a flood. */
const DROP_LOG_MS = 10_000;
const SEGMENT = /^(\d{1,16})-(\d{1,5})\.seg$/;
const SEQ_FILE = 'last-seq';

export interface SpoolBatch {
  readonly seq: number;
  readonly records: number;
  readonly bytes: number;
  /** The batch's JSON while it is held in memory. */
  body?: Buffer;
  /** Settles once the segment is on disk (or failed to be written). */
  readonly written: Promise<void>;
}

export interface SpoolStats {
  /** Records taken in since the process started. */
  received: number;
  /** Records the tenant acknowledged since the process started. */
  forwarded: number;
  /** Records dropped because the spool was full (oldest first) since the process started. */
  dropped: number;
  /** Records in sealed batches not yet acknowledged, and their segments' bytes. */
  pendingRecords: number;
  spooledBytes: number;
}

export interface SpoolOptions {
  /** The engine's name, as the batch names it (the tenant takes the name from the session anyway). */
  engine: string;
  maxBytes: number;
  log: Logger;
  batchMs?: number;
  /** Bytes of segment writes in flight at once (default MAX_WRITING_BYTES). */
  maxWritingBytes?: number;
}

export class SyslogSpool {
  private readonly batches = new Map<number, SpoolBatch>();
  private open: string[] = [];
  private openBytes = 0;
  private sealTimer?: NodeJS.Timeout;
  private lastSeq: number;
  private memBytes = 0;
  /** Bytes of the segments whose write has not settled yet. */
  private writingBytes = 0;
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
  }

  /** Opens (making it if need be) the spool in `dir`, with the segments a previous run left there. */
  static async open(dir: string, o: SpoolOptions): Promise<SyslogSpool> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    let last = Number((await readFile(join(dir, SEQ_FILE), 'utf8').catch(() => '0')).trim()) || 0;
    const found: { seq: number; records: number; bytes: number }[] = [];
    for (const name of await readdir(dir)) {
      const m = SEGMENT.exec(name);
      if (!m) {
        if (name.endsWith('.tmp')) await rm(join(dir, name), { force: true });
        continue;
      }
      const seq = Number(m[1]);
      found.push({ seq, records: Number(m[2]), bytes: (await stat(join(dir, name))).size });
      last = Math.max(last, seq);
    }
    const spool = new SyslogSpool(dir, o, Math.max(last, Date.now() * 1000));
    found.sort((a, b) => a.seq - b.seq);
    for (const f of found) spool.track({ ...f, written: Promise.resolve() });
    if (found.length)
      o.log.info({ batches: found.length, records: spool.counts.pendingRecords }, 'syslog spool has batches to send');
    spool.trim();
    return spool;
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
    const json = JSON.stringify(rec);
    const bytes = Buffer.byteLength(json) + 1;
    if (this.open.length && this.openBytes + bytes > BATCH_JSON_BYTES) this.seal();
    this.open.push(json);
    this.openBytes += bytes;
    this.counts.received++;
    if (this.open.length >= MAX_SYSLOG_BATCH_RECORDS) this.seal();
    else if (!this.sealTimer) {
      this.sealTimer = setTimeout(() => this.seal(), this.o.batchMs ?? BATCH_MS);
      this.sealTimer.unref();
    }
  }

  /** Seals the open batch now (if it holds anything). */
  seal(): void {
    clearTimeout(this.sealTimer);
    this.sealTimer = undefined;
    if (this.open.length === 0) return;
    const seq = ++this.lastSeq;
    // The spool's counts so far travel with the batch: the tenant shows what its engines received and dropped.
    const counts = `{"received":${this.counts.received},"dropped":${this.counts.dropped}}`;
    const head = `{"engine":${JSON.stringify(this.o.engine)},"seq":${seq},"spool":${counts},"records":[`;
    const body = Buffer.from(`${head}${this.open.join(',')}]}`);
    const records = this.open.length;
    this.open = [];
    this.openBytes = 0;
    // The disk is behind: this (newest) batch goes, counted; one batch is always let through when none is in flight.
    if (this.writingBytes > 0 && this.writingBytes + body.length > (this.o.maxWritingBytes ?? MAX_WRITING_BYTES)) {
      this.counts.dropped += records;
      this.dropLog.records += records;
      this.dropLog.batches++;
      this.logDrops('syslog spool writes behind: newest batches dropped (the disk is slower than the senders)');
      return;
    }
    const batch: SpoolBatch = { seq, records, bytes: body.length, body, written: this.write(seq, records, body) };
    this.memBytes += body.length;
    this.track(batch);
    this.trim();
    void batch.written.then(() => {
      if (this.memBytes > IN_MEMORY_BYTES && batch.body && this.batches.has(seq)) {
        batch.body = undefined;
        this.memBytes -= body.length;
      }
    });
    this.onBatch?.();
  }

  /** A batch's JSON, from memory or its segment. */
  async body(b: SpoolBatch): Promise<Buffer> {
    if (b.body) return b.body;
    await b.written;
    return readFile(this.file(b.seq, b.records));
  }

  /** The tenant stored batch `seq`: its segment goes. A batch dropped meanwhile (spool full) is already gone. */
  async ack(seq: number): Promise<void> {
    const b = this.batches.get(seq);
    if (!b) return;
    this.counts.forwarded += b.records;
    this.untrack(b);
    await b.written;
    await rm(this.file(seq, b.records), { force: true });
  }

  /** The tenant refused batch `seq` for good (malformed to it): it goes, counted as dropped, so later ones can pass. */
  async discard(seq: number): Promise<void> {
    const b = this.batches.get(seq);
    if (!b) return;
    this.counts.dropped += b.records;
    this.untrack(b);
    await b.written;
    await rm(this.file(seq, b.records), { force: true }).catch(() => undefined);
  }

  /** Seals what is open, waits for every segment to be written, and keeps the last seq for the next start. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.seal();
    this.closed = true;
    await Promise.all([...this.batches.values()].map((b) => b.written));
    await writeFile(join(this.dir, SEQ_FILE), `${this.lastSeq}\n`).catch(() => undefined);
  }

  private file(seq: number, records: number): string {
    return join(this.dir, `${String(seq).padStart(16, '0')}-${records}.seg`);
  }

  /** Written under a temporary name and renamed: a segment is either whole or absent after a crash. */
  private async write(seq: number, records: number, body: Buffer): Promise<void> {
    const file = this.file(seq, records);
    this.writingBytes += body.length;
    try {
      await writeFile(`${file}.tmp`, body, { mode: 0o600 });
      await rename(`${file}.tmp`, file);
    } catch (e) {
      // The batch is still sent from memory; a later restart would not find it.
      this.o.log.error({ err: errorMessage(e), seq }, 'syslog spool write failed');
    } finally {
      this.writingBytes -= body.length;
    }
  }

  private track(b: SpoolBatch): void {
    this.batches.set(b.seq, b);
    this.counts.pendingRecords += b.records;
    this.counts.spooledBytes += b.bytes;
  }

  private untrack(b: SpoolBatch): void {
    this.batches.delete(b.seq);
    this.counts.pendingRecords -= b.records;
    this.counts.spooledBytes -= b.bytes;
    if (b.body) this.memBytes -= b.bytes;
    b.body = undefined;
  }

  /** Over the bound: the oldest segments go (never the newest, so the spool always holds the latest batch). */
  private trim(): void {
    while (this.counts.spooledBytes > this.o.maxBytes && this.batches.size > 1) {
      const oldest = this.batches.values().next().value!;
      this.untrack(oldest);
      this.counts.dropped += oldest.records;
      this.dropLog.records += oldest.records;
      this.dropLog.batches++;
      void oldest.written.then(() => rm(this.file(oldest.seq, oldest.records), { force: true })).catch(() => undefined);
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
