/**
 * Backup files on disk: `ArchiveWriter` seals a plaintext stream chunk by chunk into a 0600 temp file and puts it
 * in place only when whole (link, so an existing file is never replaced); `openArchive` checks the passphrase on
 * the header, then yields the plaintext chunk by chunk. Neither holds more than a chunk or two in memory.
 * The format is archive-format.ts; what the plaintext means is archive-entries.ts.
 */
import { link, open, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BadParameterError, ConflictError } from '#common/errors.js';
import {
  ArchiveKey,
  CHUNK_PREFIX_BYTES,
  CHUNK_TAG_BYTES,
  checkChunkLength,
  HEADER_BYTES,
  newHeader,
  parseHeader,
  type KdfParams,
} from './archive-format.js';

export interface WriterOptions {
  /** Tests use a cheap derivation; a real backup takes the default. */
  kdf?: KdfParams;
  chunkBytes?: number;
}

export class ArchiveWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private written = 0;

  private constructor(
    private readonly fh: FileHandle,
    private readonly tmp: string,
    /** Where the backup appears once committed. */
    readonly path: string,
    private readonly key: ArchiveKey,
  ) {}

  static async create(path: string, passphrase: string, opts: WriterOptions = {}): Promise<ArchiveWriter> {
    const header = newHeader(randomBytes(16), opts.kdf, opts.chunkBytes);
    const key = await ArchiveKey.derive(passphrase, header);
    const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
    const fh = await open(tmp, 'wx', 0o600).catch((e: NodeJS.ErrnoException) => {
      throw new BadParameterError('ERR_BACKUP_OUT_WRITE', `cannot write ${path}: ${e.code ?? e.message}`, {
        field: 'out',
      });
    });
    const w = new ArchiveWriter(fh, tmp, path, key);
    await w.out(key.headerBytes());
    return w;
  }

  /** Bytes written to the file so far. */
  get bytes(): number {
    return this.written;
  }

  async write(plain: Buffer): Promise<void> {
    this.pending.push(plain);
    this.pendingBytes += plain.length;
    const size = this.key.header.chunkBytes;
    if (this.pendingBytes < size) return;
    let all = Buffer.concat(this.pending);
    while (all.length >= size) {
      await this.out(this.key.seal(all.subarray(0, size), false));
      all = all.subarray(size);
    }
    this.pending = [all];
    this.pendingBytes = all.length;
  }

  /** Seals the last chunk, syncs, and puts the file at its path; ERR_BACKUP_OUT_EXISTS if one appeared there. */
  async commit(): Promise<number> {
    await this.out(this.key.seal(Buffer.concat(this.pending), true));
    await this.fh.sync();
    await this.fh.close();
    try {
      await link(this.tmp, this.path);
    } catch (e) {
      await unlink(this.tmp);
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw outExists(this.path);
      throw e;
    }
    await unlink(this.tmp);
    const dir = await open(dirname(this.path), 'r');
    await dir.sync().finally(() => dir.close());
    return this.written;
  }

  /** Removes the temp file; nothing is left of the backup. */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await unlink(this.tmp).catch(() => undefined);
  }

  private async out(b: Buffer): Promise<void> {
    await this.fh.write(b);
    this.written += b.length;
  }
}

export function outExists(path: string): ConflictError {
  return new ConflictError('ERR_BACKUP_OUT_EXISTS', `${path} already exists; give another --out`, { field: 'out' });
}

export interface OpenArchive {
  /** The plaintext, chunk by chunk; throws ERR_BACKUP_DAMAGED at the first chunk that does not authenticate. */
  chunks(): AsyncGenerator<Buffer>;
  close(): Promise<void>;
}

/** Opens a backup and checks the passphrase against its header before anything else is read. */
export async function openArchive(path: string, passphrase: string): Promise<OpenArchive> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new BadParameterError('ERR_BACKUP_IN_READ', `cannot read ${path}: ${(e as Error).message}`, { field: 'in' });
  }
  try {
    const size = (await stat(path)).size;
    const head = Buffer.alloc(HEADER_BYTES);
    const { bytesRead } = await fh.read(head, 0, HEADER_BYTES, 0);
    const header = parseHeader(head.subarray(0, bytesRead));
    const key = await ArchiveKey.derive(passphrase, header);
    if (!key.headerMatches(head))
      throw new BadParameterError(
        'ERR_BACKUP_PASSPHRASE_WRONG',
        `wrong passphrase for ${path} (or its header was altered)`,
        { field: 'passphrase-file' },
      );
    return { chunks: () => readChunks(fh, key, size), close: () => fh.close() };
  } catch (e) {
    await fh.close();
    throw e;
  }
}

async function* readChunks(fh: FileHandle, key: ArchiveKey, size: number): AsyncGenerator<Buffer> {
  let pos = HEADER_BYTES;
  const cut = () => new BadParameterError('ERR_BACKUP_DAMAGED', 'the backup is truncated');
  for (;;) {
    if (pos + CHUNK_PREFIX_BYTES + CHUNK_TAG_BYTES > size) throw cut();
    const prefix = Buffer.alloc(CHUNK_PREFIX_BYTES);
    await fh.read(prefix, 0, CHUNK_PREFIX_BYTES, pos);
    const len = prefix.readUInt32BE(0);
    checkChunkLength(len, key.header);
    const end = pos + CHUNK_PREFIX_BYTES + len + CHUNK_TAG_BYTES;
    if (end > size) throw cut();
    const body = Buffer.alloc(len + CHUNK_TAG_BYTES);
    await fh.read(body, 0, body.length, pos + CHUNK_PREFIX_BYTES);
    const final = end === size;
    yield key.open(body.subarray(0, len), body.subarray(len), final);
    if (final) return;
    pos = end;
  }
}
