/**
 * The spool's files as syslog-spool.ts uses them: where each sealed batch goes (the current spool file, a new one past
 * FILE_BYTES), the writes (queued in a loop turn, each file's run of entries in one write; on the loop while the disk
 * is quick, in the thread pool for a while after a slow write), reading an entry back, the ack logs, and when a file is
 * closed and removed. The format is spool-file.ts's; which batches are pending, the bounds and the memory are the
 * spool's.
 */
import { appendFile, readFile, readdir, rm, stat, unlink } from 'node:fs/promises';
import { close, closeSync, open as openFd, openSync, unlinkSync, writeSync, writev, writevSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { errorMessage } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import {
  ACK_LOG,
  FILE_BYTES,
  HEAD_BYTES,
  SPOOL_FILE,
  ackLogName,
  entryHead,
  readAckLog,
  readEntry,
  scanSpoolFile,
  spoolFileName,
} from './spool-file.js';

/** A write on the event loop slower than this (ms) sends the writes of the next SLOW_DISK_MS elsewhere. */
const SYNC_WRITE_MS = 50;
const SLOW_DISK_MS = 30_000;
/** Entries written in one call at most (two buffers each, within the system's IOV_MAX of 1024). */
const MAX_RUN = 256;
/** A one-batch segment an engine before spool files left (its seq and records in its name). */
const SEGMENT = /^(\d{1,16})-(\d{1,5})\.seg$/;

const gone = (e: NodeJS.ErrnoException) => {
  if (e.code !== 'ENOENT') throw e;
};
const openInPool = promisify(openFd);
const writevInPool = promisify(writev);
const closeInPool = promisify(close);

/**
 * A file of the spool and what is left of it. A file is removed once none of its batches is tracked, none of its
 * writes is pending, and it takes no new batch (it is not the current file, or stops being it then).
 */
export interface SpoolFile {
  readonly name: string;
  /** A one-batch segment an engine before spool files left: read whole. */
  readonly legacy?: boolean;
  /** Where the next entry goes (the current file), or the file's size (one a previous run left). */
  size: number;
  /** Batches of it still tracked, and writes to it not yet settled. */
  live: number;
  writing: number;
  /** Open for writing while it takes batches (or their writes are pending); opened in the thread pool: `opening`. */
  fd?: number;
  opening?: Promise<number>;
  /** Its ack log, open for appending once a batch of it was done with while it stays. */
  acks?: number;
  removed?: Promise<void>;
}

/** A batch a previous run left: its file (whose `live` counts it) and where its entry starts there. */
export interface FoundBatch {
  seq: number;
  records: number;
  bytes: number;
  file: SpoolFile;
  offset: number;
}

/** An entry to write at the end of this loop turn. */
interface PendingWrite {
  file: SpoolFile;
  offset: number;
  head: Buffer;
  body: Buffer;
  resolve(ok: boolean): void;
}

export interface SpoolFilesOptions {
  /** A write on the loop slower than this (ms) sends the next ones to the thread pool (default SYNC_WRITE_MS). */
  syncWriteMs?: number;
  /** A spool file takes no new batch past this many bytes (default FILE_BYTES; tests lower it). */
  fileBytes?: number;
}

export class SpoolFiles {
  /** Bytes of the batches whose write has not settled yet. */
  writingBytes = 0;
  private toWrite: PendingWrite[] = [];
  /** The file new batches go to. */
  private current?: SpoolFile;
  /** Files whose ack log is open. */
  private readonly acking = new Set<SpoolFile>();
  /** Until then, entries are written in the thread pool (a write on the loop was slow). */
  private threadPoolUntil = 0;
  private readonly syncWriteMs: number;
  private readonly fileBytes: number;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
    o: SpoolFilesOptions = {},
  ) {
    this.syncWriteMs = o.syncWriteMs ?? SYNC_WRITE_MS;
    this.fileBytes = o.fileBytes ?? FILE_BYTES;
  }

  /**
   * The batches the files in `dir` hold, but for those their ack logs name, oldest first. Removes what holds none: a
   * spool file with no batch left, an ack log without its file, a segment an older engine's crash left half written.
   */
  static async found(dir: string, log: Logger): Promise<FoundBatch[]> {
    const found: FoundBatch[] = [];
    const empty: string[] = [];
    const names = new Set(await readdir(dir));
    for (const name of [...names].sort()) {
      const path = join(dir, name);
      const m = SEGMENT.exec(name);
      if (m) {
        const bytes = (await stat(path)).size;
        const file: SpoolFile = { name, legacy: true, size: bytes, live: 1, writing: 0 };
        found.push({ seq: Number(m[1]), records: Number(m[2]), bytes, file, offset: 0 });
      } else if (SPOOL_FILE.test(name)) {
        const { entries, size, torn } = await scanSpoolFile(path);
        const done = await readAckLog(join(dir, ackLogName(name)));
        const left = entries.filter((e) => !done.has(e.seq));
        const file: SpoolFile = { name, size, live: left.length, writing: 0 };
        for (const e of left) found.push({ ...e, file });
        if (torn > 0) log.warn({ file: name, bytes: torn }, 'syslog spool file cut short by a crash: its end skipped');
        if (left.length === 0) empty.push(path, join(dir, ackLogName(name)));
      } else if (name.endsWith('.tmp')) empty.push(path);
      else if (ACK_LOG.test(name) && !names.has(name.replace(ACK_LOG, '$1.spool'))) empty.push(path);
    }
    for (const path of empty) await rm(path, { force: true });
    return found.sort((a, b) => a.seq - b.seq);
  }

  /** Places batch `seq` in a file and queues its write: its file, its entry's offset, and whether it was written. */
  append(seq: number, records: number, body: Buffer): { file: SpoolFile; offset: number; written: Promise<boolean> } {
    const file = this.fileFor(seq, body.length);
    const offset = file.size;
    file.size += HEAD_BYTES + body.length;
    file.live++;
    return { file, offset, written: this.write(file, offset, entryHead(seq, records, body), body) };
  }

  /** The bytes of batch `seq` at `offset` of `file` (throws when its entry is gone or damaged). */
  read(file: SpoolFile, offset: number, seq: number): Promise<Buffer> {
    const path = join(this.dir, file.name);
    return file.legacy ? readFile(path) : readEntry(path, offset, seq);
  }

  /**
   * The current file takes no new batch: closed, and removed if nothing of it is pending (once its writes settle);
   * the ack logs are closed (a write after this opens one again).
   */
  async close(): Promise<void> {
    const file = this.current;
    this.current = undefined;
    if (file) await this.settle(file);
    for (const f of this.acking) this.closeAcks(f);
  }

  private closeAcks(file: SpoolFile): void {
    if (file.acks !== undefined) closeSync(file.acks);
    file.acks = undefined;
    this.acking.delete(file);
  }

  /** The file batch `seq` goes to: the current one while it has room (it always takes one batch), else a new one. */
  private fileFor(seq: number, bytes: number): SpoolFile {
    const cur = this.current;
    if (cur && (cur.size === 0 || cur.size + HEAD_BYTES + bytes <= this.fileBytes)) return cur;
    this.current = { name: spoolFileName(seq), size: 0, live: 0, writing: 0 };
    if (cur) void this.settle(cur);
    return this.current;
  }

  /**
   * Queues the entry's write, done once the loop turn that sealed it is over (with the others sealed in it, one write
   * to a file): true when written. While writes on the loop are quick (the page cache), entries are written there,
   * synchronously: the thread pool's round trips cost more CPU than the write itself (about 1.5 µs per event at 250k
   * events/s, bench/syslog-engine-path.ts). A write slower than SYNC_WRITE_MS (a disk behind) sends the writes of the
   * next SLOW_DISK_MS to the thread pool, where they no longer hold up the engine's sessions, and are capped
   * (maxWritingBytes).
   */
  private write(file: SpoolFile, offset: number, head: Buffer, body: Buffer): Promise<boolean> {
    this.writingBytes += body.length;
    file.writing++;
    return new Promise((resolve) => {
      if (this.toWrite.push({ file, offset, head, body, resolve }) === 1) setImmediate(() => this.writeQueued());
    });
  }

  /** Writes what is queued, entries that follow each other in one file as one write. */
  private writeQueued(): void {
    const queued = this.toWrite.splice(0);
    for (let i = 0; i < queued.length;) {
      const run = [queued[i]];
      let end = queued[i].offset + HEAD_BYTES + queued[i].body.length;
      const follows = (w: PendingWrite) => w.file === run[0].file && w.offset === end && run.length < MAX_RUN;
      for (i++; i < queued.length && follows(queued[i]); i++) {
        run.push(queued[i]);
        end += HEAD_BYTES + queued[i].body.length;
      }
      const file = run[0].file;
      const inPool = Date.now() < this.threadPoolUntil || (file.fd === undefined && file.opening !== undefined);
      void (inPool ? this.writeInPool(run) : Promise.resolve(this.writeOnLoop(run))).then((ok) => {
        for (const w of run) {
          this.writingBytes -= w.body.length;
          file.writing--;
          w.resolve(ok);
        }
        // A scan at the next start stops at the hole a failed write left: later batches go to a new file.
        if (!ok && file === this.current) this.current = undefined;
        if (file.writing === 0) void this.settle(file);
      });
    }
  }

  private writeOnLoop(run: PendingWrite[]): boolean {
    const file = run[0].file;
    const t0 = performance.now();
    try {
      file.fd ??= openSync(join(this.dir, file.name), 'w', 0o600);
      return whole(run, writevSync(file.fd, buffersOf(run), run[0].offset));
    } catch (e) {
      this.writeFailed(run, e);
      return false;
    } finally {
      if (performance.now() - t0 > this.syncWriteMs) this.threadPoolUntil = Date.now() + SLOW_DISK_MS;
    }
  }

  private async writeInPool(run: PendingWrite[]): Promise<boolean> {
    const file = run[0].file;
    try {
      if (file.fd === undefined) {
        file.opening ??= openInPool(join(this.dir, file.name), 'w', 0o600);
        // Not opened: the next write tries again (nothing was written to it, so opening it afresh loses nothing).
        file.fd = await file.opening.catch((e: unknown) => {
          file.opening = undefined;
          throw e;
        });
      }
      return whole(run, (await writevInPool(file.fd, buffersOf(run), run[0].offset)).bytesWritten);
    } catch (e) {
      this.writeFailed(run, e);
      return false;
    }
  }

  /** Batch `seq` of `file` is done with: noted in the file's ack log if the file stays, else the file goes. */
  release(file: SpoolFile, seq: number): Promise<void> {
    file.live--;
    // A file left with no batch goes (current or not): nothing to note.
    if (!file.legacy && file.live > 0) this.noteDone(file, seq);
    return this.settle(file);
  }

  /**
   * Appends `seq` to the file's ack log, so that a restart does not send that batch again (the tenant would answer it
   * as a duplicate only while it keeps its marker, 7 days). A failure costs only that re-send: logged, not thrown.
   */
  private noteDone(file: SpoolFile, seq: number): void {
    const path = join(this.dir, ackLogName(file.name));
    const entry = Buffer.allocUnsafe(8);
    entry.writeDoubleLE(seq);
    const failed = (e: unknown) => this.log.warn({ err: errorMessage(e), seq }, 'syslog spool ack log not written');
    if (Date.now() < this.threadPoolUntil && file.acks === undefined) return void appendFile(path, entry).catch(failed);
    try {
      if (file.acks === undefined) {
        file.acks = openSync(path, 'a', 0o600);
        this.acking.add(file);
      }
      writeSync(file.acks, entry);
    } catch (e) {
      failed(e);
    }
  }

  /**
   * A file that takes no new batch is closed once its writes settled, and removed once none of its batches is left
   * (already gone is fine: removed by hand). The current file with no batch left stops being current and goes too:
   * an idle spool holds no file, and a restart sends again no batch that was acknowledged.
   */
  private async settle(file: SpoolFile): Promise<void> {
    if (file.writing > 0 || (file.live > 0 && file === this.current)) return;
    if (file === this.current) this.current = undefined;
    if (file.fd !== undefined || file.opening) {
      // Taken at once: a second settle meanwhile finds nothing to close.
      const [open, opening] = [file.fd, file.opening];
      file.fd = undefined;
      file.opening = undefined;
      const fd = open ?? (await opening!.catch(() => undefined));
      if (fd !== undefined) {
        if (Date.now() < this.threadPoolUntil) await closeInPool(fd).catch(() => undefined);
        else closeSync(fd);
      }
    }
    if (file.live > 0) return;
    this.closeAcks(file);
    file.removed ??= this.remove(join(this.dir, file.name)).then(() =>
      file.legacy ? undefined : this.remove(join(this.dir, ackLogName(file.name))),
    );
    return file.removed;
  }

  /** A file goes (already gone is fine); on the loop, as entries are written, while the disk is quick. */
  private async remove(path: string): Promise<void> {
    if (Date.now() < this.threadPoolUntil) return unlink(path).catch(gone);
    try {
      unlinkSync(path);
    } catch (e) {
      gone(e as NodeJS.ErrnoException);
    }
  }

  private writeFailed(run: PendingWrite[], e: unknown): void {
    // The batches are still sent from memory; a later restart would not find them.
    this.log.error({ err: errorMessage(e), seq: entrySeq(run[0]), batches: run.length }, 'syslog spool write failed');
  }
}

const buffersOf = (run: readonly PendingWrite[]): Buffer[] => run.flatMap((w) => [w.head, w.body]);
const entrySeq = (w: PendingWrite): number => w.head.readDoubleLE(8);

/** A write that stopped short (a full disk) leaves its entries cut: they are not on disk. */
function whole(run: readonly PendingWrite[], written: number): boolean {
  const bytes = run.reduce((a, w) => a + HEAD_BYTES + w.body.length, 0);
  if (written !== bytes) throw new Error(`wrote ${written} of ${bytes} bytes`);
  return true;
}
