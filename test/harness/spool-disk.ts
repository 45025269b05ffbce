/**
 * What an engine's syslog spool directory holds, read as a test checks it: the spool files (`FIRSTSEQ.spool`, many
 * batches each) through the spool's own reader (agent/engine/syslog/spool-file.ts: their whole entries, each read
 * back with its CRC checked), and the one-batch segments an older engine left (`SEQ-RECORDS.seg`, read whole). Not
 * the spool's bookkeeping (which batches are pending): only the bytes on disk; and the bytes a batch takes there.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SyslogRecord } from '#common/syslog-record.js';
import { HEAD_BYTES, SPOOL_FILE, readEntry, scanSpoolFile } from '../../agent/engine/syslog/spool-file.js';
import { BATCH_BYTES } from '../../agent/engine/syslog/syslog-spool.js';
import { BatchWriter } from '../../agent/engine/syslog/syslog-batch.js';

const SEGMENT = /^(\d{1,16})-(\d{1,5})\.seg$/;

/** The spool files in `dir`, by name (their first batch's seq). */
export const spoolFiles = async (dir: string): Promise<string[]> =>
  (await readdir(dir)).filter((f) => SPOOL_FILE.test(f)).sort();

/** The one-batch segments an older engine left in `dir`, by name. */
export const segmentFiles = async (dir: string): Promise<string[]> =>
  (await readdir(dir)).filter((f) => SEGMENT.test(f)).sort();

export interface StoredBatch {
  /** The file it is in, and its entry's offset there (0 for a segment). */
  file: string;
  offset: number;
  seq: number;
  records: number;
  /** The batch's bytes as they are sent (binary, or JSON from an older engine). */
  body: Buffer;
}

/** Every batch on disk in `dir`, oldest (lowest seq) first; throws if a whole entry's body fails its CRC. */
export async function storedBatches(dir: string): Promise<StoredBatch[]> {
  const out: StoredBatch[] = [];
  for (const file of await spoolFiles(dir)) {
    const path = join(dir, file);
    for (const e of (await scanSpoolFile(path)).entries)
      out.push({
        file,
        offset: e.offset,
        seq: e.seq,
        records: e.records,
        body: await readEntry(path, e.offset, e.seq),
      });
  }
  for (const file of await segmentFiles(dir)) {
    const [, seq, records] = SEGMENT.exec(file)!;
    out.push({ file, offset: 0, seq: Number(seq), records: Number(records), body: await readFile(join(dir, file)) });
  }
  return out.sort((a, b) => a.seq - b.seq);
}

/** The bytes a batch of these records takes in a spool file: its entry's head and the batch as a spool encodes it. */
export function entryBytes(records: SyslogRecord[]): number {
  const w = new BatchWriter(BATCH_BYTES);
  for (const r of records) w.appendRecord(r);
  return HEAD_BYTES + w.finish(1, 0, 0).body.length;
}
