/**
 * The encrypted container of a main backup (`palisade main backup`), byte for byte; test/unit/backup-archive.test.ts
 * checks it against this text.
 *
 *   header   64 bytes, in the clear:
 *              magic "PLSBAK\r\n" (8) ‖ format u16 (= 1) ‖ kdf u8 (1 = scrypt) ‖ log2(N) u8 ‖ r u16 ‖ p u16 ‖
 *              chunk size u32 ‖ salt (16) ‖ 12 zero bytes ‖ tag (16)      (integers big-endian)
 *   key      scrypt(passphrase as UTF-8, salt, N, r, p) → 32 bytes
 *   tag      AES-256-GCM over no plaintext, nonce = counter 0, aad = the 48 header bytes before the tag: it
 *            proves the passphrase and authenticates the header (format, KDF parameters, salt) before any chunk
 *   chunks   the plaintext (archive-entries.ts) cut into pieces of the chunk size, the last one shorter (maybe
 *            empty). Piece i (from 1) is written as: length u32 ‖ AES-256-GCM ciphertext ‖ tag (16), with
 *              nonce = 4 zero bytes ‖ i as u64                aad = sha256(header) ‖ final (1 for the last, else 0)
 *            The counter in the nonce is why chunks cannot be swapped, dropped or repeated; the final flag why the
 *            file cannot be cut short at a chunk boundary; and the header digest why no header can be swapped in.
 *
 * Scrypt because it is memory-hard and in node:crypto (no dependency); AES-256-GCM because it is the AEAD every
 * Node build has with hardware support. The key is unique per file (fresh salt), so counter nonces never repeat.
 * Pure: no I/O (archive-file.ts reads and writes files). Not what the plaintext holds (archive-entries.ts).
 */
import { createCipheriv, createDecipheriv, createHash, scrypt as scryptCb, type ScryptOptions } from 'node:crypto';
import { BadParameterError } from '#common/errors.js';

export const MAGIC = Buffer.from('PLSBAK\r\n', 'latin1');
export const FORMAT_VERSION = 1;
const KDF_SCRYPT = 1;
export const HEADER_BYTES = 64;
const TAG_BYTES = 16;
/** Bytes before the ciphertext of a chunk (its length). */
export const CHUNK_PREFIX_BYTES = 4;
export const CHUNK_TAG_BYTES = TAG_BYTES;

export interface KdfParams {
  log2N: number;
  r: number;
  p: number;
}
/** OWASP's scrypt setting (N = 2^17, r = 8, p = 1): 128 MiB and about half a second per derivation here. */
export const DEFAULT_KDF: KdfParams = Object.freeze({ log2N: 17, r: 8, p: 1 });
/** 1 MiB of plaintext per chunk: memory stays flat whatever the registry's size; 16 bytes of tag per MiB. */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;
/**
 * What a header may ask of a reader: a file is not trusted before its tag checks, and the tag needs the key,
 * so an altered header must not be able to make the derivation take gigabytes or hours first.
 */
const MAX_KDF_BYTES = 1024 ** 3;
const MAX_CHUNK_BYTES = 16 * 1024 * 1024;
const MIN_CHUNK_BYTES = 1024;

export interface ArchiveHeader {
  kdf: KdfParams;
  chunkBytes: number;
  salt: Buffer;
}

const formatError = (why: string) =>
  new BadParameterError('ERR_BACKUP_FORMAT', `not a Palisade main backup this release can read: ${why}`);

function kdfMemory(k: KdfParams): number {
  return 128 * 2 ** k.log2N * k.r * k.p;
}

/** The 48 bytes the header tag covers. */
function headerBody(h: ArchiveHeader): Buffer {
  const b = Buffer.alloc(HEADER_BYTES - TAG_BYTES);
  MAGIC.copy(b, 0);
  b.writeUInt16BE(FORMAT_VERSION, 8);
  b.writeUInt8(KDF_SCRYPT, 10);
  b.writeUInt8(h.kdf.log2N, 11);
  b.writeUInt16BE(h.kdf.r, 12);
  b.writeUInt16BE(h.kdf.p, 14);
  b.writeUInt32BE(h.chunkBytes, 16);
  h.salt.copy(b, 20);
  return b;
}

/** Reads the header's fields and checks its bounds; the tag is checked by `ArchiveKey.open`. */
export function parseHeader(bytes: Buffer): ArchiveHeader {
  if (bytes.length < HEADER_BYTES || !bytes.subarray(0, 8).equals(MAGIC)) throw formatError('no backup header');
  const version = bytes.readUInt16BE(8);
  if (version !== FORMAT_VERSION) throw formatError(`format version ${version} (this release reads ${FORMAT_VERSION})`);
  if (bytes.readUInt8(10) !== KDF_SCRYPT) throw formatError(`key derivation ${bytes.readUInt8(10)}`);
  const kdf = { log2N: bytes.readUInt8(11), r: bytes.readUInt16BE(12), p: bytes.readUInt16BE(14) };
  const chunkBytes = bytes.readUInt32BE(16);
  if (kdf.log2N < 10 || kdf.log2N > 22 || kdf.r < 1 || kdf.p < 1 || kdfMemory(kdf) > MAX_KDF_BYTES)
    throw formatError(`key derivation parameters out of bounds (${JSON.stringify(kdf)})`);
  if (chunkBytes < MIN_CHUNK_BYTES || chunkBytes > MAX_CHUNK_BYTES) throw formatError(`chunk size ${chunkBytes}`);
  return { kdf, chunkBytes, salt: Buffer.from(bytes.subarray(20, 36)) };
}

function nonce(counter: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(BigInt(counter), 4);
  return n;
}

/** The passphrase's key for one header: seals or opens its tag and its chunks, in order. */
export class ArchiveKey {
  private readonly digest: Buffer;
  private counter = 0;
  private ended = false;

  private constructor(
    private readonly key: Buffer,
    readonly header: ArchiveHeader,
  ) {
    this.digest = createHash('sha256').update(this.headerBytes()).digest();
  }

  static async derive(passphrase: string, header: ArchiveHeader): Promise<ArchiveKey> {
    const opts: ScryptOptions = {
      N: 2 ** header.kdf.log2N,
      r: header.kdf.r,
      p: header.kdf.p,
      maxmem: 2 * kdfMemory(header.kdf),
    };
    const key = await new Promise<Buffer>((res, rej) =>
      scryptCb(Buffer.from(passphrase, 'utf8'), header.salt, 32, opts, (e, k) => (e ? rej(e) : res(k))),
    );
    return new ArchiveKey(key, header);
  }

  /** The whole 64-byte header, tag included. */
  headerBytes(): Buffer {
    const body = headerBody(this.header);
    const c = createCipheriv('aes-256-gcm', this.key, nonce(0));
    c.setAAD(body);
    c.final();
    return Buffer.concat([body, c.getAuthTag()]);
  }

  /** Checks the tag of a header read from a file: false for a wrong passphrase or an altered header. */
  headerMatches(bytes: Buffer): boolean {
    return this.headerBytes().equals(bytes.subarray(0, HEADER_BYTES));
  }

  /** The next chunk, framed (length ‖ ciphertext ‖ tag). */
  seal(plain: Buffer, final: boolean): Buffer {
    this.advance();
    const c = createCipheriv('aes-256-gcm', this.key, nonce(this.counter));
    c.setAAD(this.aad(final));
    const body = Buffer.concat([c.update(plain), c.final()]);
    const len = Buffer.alloc(CHUNK_PREFIX_BYTES);
    len.writeUInt32BE(body.length);
    return Buffer.concat([len, body, c.getAuthTag()]);
  }

  /**
   * The next chunk's plaintext from its ciphertext and tag; `final` is what the reader found (no bytes after it).
   * Throws ERR_BACKUP_DAMAGED when the chunk was altered, moved, or the file was cut short or extended.
   */
  open(body: Buffer, tag: Buffer, final: boolean): Buffer {
    this.advance();
    const d = createDecipheriv('aes-256-gcm', this.key, nonce(this.counter));
    d.setAAD(this.aad(final));
    d.setAuthTag(tag);
    try {
      return Buffer.concat([d.update(body), d.final()]);
    } catch {
      throw new BadParameterError(
        'ERR_BACKUP_DAMAGED',
        `the backup is damaged, truncated or altered (chunk ${this.counter} does not authenticate)`,
      );
    }
  }

  private advance(): void {
    if (this.ended) throw new BadParameterError('ERR_BACKUP_DAMAGED', 'the backup has data after its last chunk');
    this.counter++;
  }

  private aad(final: boolean): Buffer {
    if (final) this.ended = true;
    return Buffer.concat([this.digest, Buffer.from([final ? 1 : 0])]);
  }
}

/** A fresh header: the given (or default) KDF parameters, chunk size and salt. */
export function newHeader(salt: Buffer, kdf: KdfParams = DEFAULT_KDF, chunkBytes = DEFAULT_CHUNK_BYTES): ArchiveHeader {
  return { kdf, chunkBytes, salt };
}

/** Checks a chunk's declared length against the header before reading it. */
export function checkChunkLength(len: number, header: ArchiveHeader): void {
  if (len > header.chunkBytes)
    throw new BadParameterError('ERR_BACKUP_DAMAGED', `the backup is damaged: a chunk of ${len} bytes`);
}
