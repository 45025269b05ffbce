/**
 * The spool's files on disk (syslog-spool.ts keeps them): a spool file, `FIRSTSEQ.spool` (its first batch's seq, 16
 * digits), holds many sealed batches one after another, each an entry: a head of HEAD_BYTES, then the batch's bytes as
 * they are sent. The spool appends to one file at a time, at offsets it hands out as batches are sealed, and starts the
 * next file past FILE_BYTES or once every batch of the current one is done with.
 *
 * Why many batches to a file: creating, renaming and removing one file per batch cost the engine's loop more than the
 * rest of its work under a flood (on ext4, a file's creation waits ~1 ms for the journal while another process writes
 * much: the tenant's store, on an engine that shares its disk), ~1.2 µs per event in the syslog-ingest benchmark.
 *
 * An entry's head: magic `PSB1`, the body's length (u32), the seq (f64, a whole number), the records (u32), the body's
 * CRC-32. A crash can leave a file's last entries cut short or never written (a hole of zeros where a write in the
 * thread pool did not land): a scan stops at the first entry that is not whole, and the bytes after it are reported.
 * A whole head with a body that fails its CRC is found when the batch is read back (readEntry throws).
 *
 * Beside a file that stays while some of its batches are pending, its ack log, `FIRSTSEQ.acked`, lists the batches of
 * it already done with (acknowledged or dropped), each as an f64 seq: a restart skips them. A log cut short by a crash
 * loses at most its last seq, whose batch is sent again (the tenant answers it as a duplicate). Pure but for the file
 * reads: the file handles and the batches' lifetimes are the spool's.
 */
import { open, readFile } from 'node:fs/promises';
import { crc32 } from 'node:zlib';

export const SPOOL_FILE = /^(\d{16})\.spool$/;
/**
 * A spool file takes no new batch once this long: a file goes only with its last batch, so a batch pending long (a
 * tenant that refuses it for now) keeps at most this much beside it on disk.
 */
export const FILE_BYTES = 8 * 1024 * 1024;
export const HEAD_BYTES = 24;
const MAGIC = 0x31425350; // 'PSB1' read as a u32 LE

export const ACK_LOG = /^(\d{16})\.acked$/;

export const spoolFileName = (firstSeq: number): string => `${String(firstSeq).padStart(16, '0')}.spool`;
export const ackLogName = (spoolFile: string): string => spoolFile.replace(/\.spool$/, '.acked');

/** The seqs an ack log lists (none when it is absent). */
export async function readAckLog(path: string): Promise<Set<number>> {
  const bytes = await readFile(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return Buffer.alloc(0);
    throw e;
  });
  const done = new Set<number>();
  for (let at = 0; at + 8 <= bytes.length; at += 8) done.add(bytes.readDoubleLE(at));
  return done;
}

/** The head of an entry holding `body` as batch `seq` of `records` records. */
export function entryHead(seq: number, records: number, body: Buffer): Buffer {
  const h = Buffer.allocUnsafe(HEAD_BYTES);
  h.writeUInt32LE(MAGIC, 0);
  h.writeUInt32LE(body.length, 4);
  h.writeDoubleLE(seq, 8);
  h.writeUInt32LE(records, 16);
  h.writeUInt32LE(crc32(body), 20);
  return h;
}

interface Head {
  bytes: number;
  seq: number;
  records: number;
  crc: number;
}

function readHead(h: Buffer): Head | undefined {
  if (h.length < HEAD_BYTES || h.readUInt32LE(0) !== MAGIC) return undefined;
  const seq = h.readDoubleLE(8);
  if (!Number.isSafeInteger(seq) || seq < 0) return undefined;
  return { bytes: h.readUInt32LE(4), seq, records: h.readUInt32LE(16), crc: h.readUInt32LE(20) };
}

export interface SpoolEntry {
  seq: number;
  records: number;
  /** The batch's bytes (without the head), and where its head starts in the file. */
  bytes: number;
  offset: number;
}

/** The whole entries of a spool file, in order, and how many bytes follow the last (a crash cut them short). */
export async function scanSpoolFile(path: string): Promise<{ entries: SpoolEntry[]; size: number; torn: number }> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const entries: SpoolEntry[] = [];
    const head = Buffer.allocUnsafe(HEAD_BYTES);
    let at = 0;
    while (at + HEAD_BYTES <= size) {
      const { bytesRead } = await fh.read(head, 0, HEAD_BYTES, at);
      const h = bytesRead === HEAD_BYTES ? readHead(head) : undefined;
      if (!h || at + HEAD_BYTES + h.bytes > size) break;
      entries.push({ seq: h.seq, records: h.records, bytes: h.bytes, offset: at });
      at += HEAD_BYTES + h.bytes;
    }
    return { entries, size, torn: size - at };
  } finally {
    await fh.close();
  }
}

/** The bytes of batch `seq` whose entry starts at `offset` of the file; throws when they are not there whole. */
export async function readEntry(path: string, offset: number, seq: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.allocUnsafe(HEAD_BYTES);
    const h = (await fh.read(head, 0, HEAD_BYTES, offset)).bytesRead === HEAD_BYTES ? readHead(head) : undefined;
    if (!h || h.seq !== seq) throw new Error(`spool file ${path}: no batch ${seq} at ${offset}`);
    const body = Buffer.allocUnsafe(h.bytes);
    const { bytesRead } = await fh.read(body, 0, h.bytes, offset + HEAD_BYTES);
    if (bytesRead !== h.bytes || crc32(body) !== h.crc) throw new Error(`spool file ${path}: batch ${seq} is damaged`);
    return body;
  } finally {
    await fh.close();
  }
}
