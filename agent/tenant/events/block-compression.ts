/**
 * How a tenant's event blocks are kept on disk: a zstd frame (RFC 8878, level 1; Node's own node:zlib) of the bytes
 * event-block.ts encodes. Syslog lines repeat their hosts, apps and keys: blocks shrink ~5-20×, and so does what
 * LevelDB writes to its log, fsyncs, flushes and compacts. Measured in the deployment (docs/benchmarks.md,
 * syslog-ingest), LevelDB's thread went from ~0.4-0.6 to ~0.04 µs per event and a group of fsynced batches was written
 * in a third of the time, for ~0.12 µs per event of compression; a search decompresses only the blocks it reads. A
 * value starting with the frame's magic is compressed; a block as stored before compression starts with `{`.
 */
import { constants, zstdCompressSync, zstdDecompressSync } from 'node:zlib';

const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];
const COMPRESSION = { [constants.ZSTD_c_compressionLevel]: 1 };
/** Bounds what one stored value may decompress to: far above any block (a batch is at most 1 MiB). */
const MAX_BLOCK_BYTES = 64 * 1024 * 1024;

export function isCompressedBlock(value: Uint8Array): boolean {
  return ZSTD_MAGIC.every((byte, k) => value[k] === byte);
}

/** A block's bytes as stored. The size is given ahead (in the frame), so a read allocates once. */
export function compressBlock(bytes: Buffer): Buffer {
  return zstdCompressSync(bytes, { params: COMPRESSION, pledgedSrcSize: bytes.length });
}

/** A stored block's bytes as encoded, whether stored compressed (now) or not (before). */
export function blockBytes(value: Buffer): Buffer {
  return isCompressedBlock(value) ? zstdDecompressSync(value, { maxOutputLength: MAX_BLOCK_BYTES }) : value;
}
