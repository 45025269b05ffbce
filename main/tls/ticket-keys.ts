/**
 * TLS session-ticket keys of main's server. Agents resume their TLS sessions with a ticket sealed under
 * this key, which is what makes the reconnect storm after a main restart cheap (P6 of docs/benchmarks.md): so the key
 * lives in a file (pki/tls-ticket-keys, 48 random bytes, 0600) and survives restarts. It is also a secret
 * that opens every session resumed under it, so it rotates: a key older than `ticketKeyRotationMs`
 * (default a day; its age is the file's mtime) is replaced — at start, and by a timer while main runs —
 * the new key written atomically first, then handed to the server (setTicketKeys), so the file is always
 * the key in use and a restart right after a rotation still resumes.
 * What a rotation costs: Node holds one ticket key per server, so a ticket sealed under the previous key
 * no longer resumes; each client pays one full handshake and gets a ticket under the new key. Once a day
 * that is nothing, and a restart storm lands on a fresh key only if main was down past the rotation.
 */
import { readFile, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { writeFileAtomic } from '#common/atomic-file.js';
import { errorMessage } from '#common/errors.js';
import type { Logger } from '#common/logging.js';

/** Node's ticket key: 16 bytes name, 16 HMAC, 16 AES. */
const TICKET_KEY_BYTES = 48;
/** After a failed rotation (disk full…), the current key serves this much longer before the next try. */
const RETRY_MS = 60_000;

export class TicketKeys {
  private createdAt = 0;
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly path: string,
    private readonly rotationMs: number,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** The key in the file, unless it is missing, malformed or too old: then a new one (written first). */
  async load(): Promise<Buffer> {
    const existing = await readFile(this.path).catch(() => undefined);
    const mtime = existing ? (await stat(this.path)).mtimeMs : 0;
    if (existing?.length === TICKET_KEY_BYTES && this.now() - mtime < this.rotationMs) {
      this.createdAt = mtime;
      return existing;
    }
    return this.rotate();
  }

  /** Rotates when the key's age reaches the period, for as long as main runs; `apply` gets each new key. */
  start(apply: (key: Buffer) => void, wait = Math.max(0, this.createdAt + this.rotationMs - this.now())): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.rotate().then(
        (key) => {
          apply(key);
          this.start(apply);
        },
        (e: unknown) => {
          this.log.error({ err: errorMessage(e) }, 'ticket key rotation failed; keeping the current key');
          this.start(apply, RETRY_MS);
        },
      );
    }, wait);
    this.timer.unref();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private async rotate(): Promise<Buffer> {
    const key = randomBytes(TICKET_KEY_BYTES);
    await writeFileAtomic(this.path, key, 0o600);
    this.createdAt = this.now();
    this.log.info({ rotationMs: this.rotationMs }, 'TLS ticket key rotated');
    return key;
  }
}
