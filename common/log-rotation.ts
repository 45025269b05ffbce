/**
 * A log file that rotates itself by size: past `maxBytes` the file becomes FILE.1 (FILE.1 becomes FILE.2 …,
 * and the oldest past `keep` is deleted), and writing goes on in a fresh FILE. Not a transport: it runs on
 * the logging thread, behind pino's streamWrite hook, so every line is escaped as before (common/logging.ts).
 *
 * Why not pino-roll: it writes to a numbered file (FILE.1, FILE.2 …) and never to FILE itself, so `tail -f
 * logs/main.log`, the docs and the test harness, which read FILE, would each have to find the newest number.
 * Renaming beside an open descriptor is logrotate's own scheme: the old sonic-boom stream ends on its descriptor,
 * so lines it still buffers land in the renamed file, in order, and a new stream takes FILE. Each file is opened
 * synchronously (sonic-boom's own open is asynchronous): a rotation never finds FILE not yet created.
 */
import { existsSync, mkdirSync, openSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { pino } from 'pino';

/** Rotate past this size: a day of a busy main at info (about 300 bytes a line) without one huge file. */
export const LOG_ROTATE_BYTES = 50 * 1024 * 1024;
/** Rotated files kept beside the live one: at most (1 + 5) x 50 MiB of logs per process. */
export const LOG_KEEP_FILES = 5;

export interface RotationLimits {
  maxBytes: number;
  keep: number;
}

export class RotatingFile {
  private out: ReturnType<typeof pino.destination>;
  private bytes: number;
  /** Reported once on stderr: a log that cannot rotate would otherwise say so on every file's worth. */
  private rotationFailed = false;

  constructor(
    private readonly file: string,
    private readonly limits: RotationLimits = { maxBytes: LOG_ROTATE_BYTES, keep: LOG_KEEP_FILES },
  ) {
    mkdirSync(dirname(file), { recursive: true });
    this.out = this.open();
    this.bytes = statSync(file).size;
  }

  write(line: string): boolean {
    const n = Buffer.byteLength(line);
    if (this.bytes > 0 && this.bytes + n > this.limits.maxBytes) this.rotate();
    this.bytes += n;
    return this.out.write(line);
  }

  flush(cb?: (err?: Error) => void): void {
    this.out.flush(cb);
  }

  flushSync(): void {
    this.out.flushSync();
  }

  /**
   * Synchronous renames, once per maxBytes: the shift must finish before the next line picks its file. A rename
   * that fails (an operator deleted the file, a full disk) must not throw into whoever is logging: FILE is
   * opened again (recreated if gone) and the count restarts, so the next attempt comes a whole file later.
   */
  private rotate(): void {
    try {
      this.shift();
    } catch (e) {
      if (!this.rotationFailed) process.stderr.write(`log rotation of ${this.file} failed: ${(e as Error).message}\n`);
      this.rotationFailed = true;
    }
    this.out.end();
    this.out = this.open();
    this.bytes = 0;
  }

  private shift(): void {
    const { keep } = this.limits;
    const numbered = (i: number) => `${this.file}.${i}`;
    if (existsSync(numbered(keep))) unlinkSync(numbered(keep));
    for (let i = keep - 1; i >= 1; i--) if (existsSync(numbered(i))) renameSync(numbered(i), numbered(i + 1));
    if (keep > 0) renameSync(this.file, numbered(1));
    else unlinkSync(this.file);
  }

  private open(): ReturnType<typeof pino.destination> {
    return pino.destination({ dest: openSync(this.file, 'a'), sync: false });
  }
}
