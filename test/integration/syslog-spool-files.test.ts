/**
 * The engine's syslog spool files (agent/engine/syslog/spool-file.ts, kept by syslog-spool.ts) on a real directory:
 * the batches sealed in a row are entries of one file, named for its first batch, and a new file starts past its
 * size; a file stays while any of its batches is pending and goes with the last one, and an idle spool holds none;
 * after a crash, the whole entries of a file cut short, followed by garbage or zeros, or holed, are sent, what
 * follows the first entry that is not whole is not, a file with no whole entry is removed, and new batches go to a
 * new file with seqs still rising; an entry whose bytes are damaged is refused when read and, through the forwarder
 * (syslog-forwarder.ts) over a pair of sealed sessions, dropped and counted while the others are stored; the segments
 * an older engine left (one batch each) are sent with the spool files, in seq order; writes in the thread pool leave
 * the same files; acknowledged batches that a pending one keeps on disk are not sent again after a restart (the
 * file's ack log names them), and the log goes with the file. The rest of the spool: syslog-spool.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { appendFile, open as openFile, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { silentLogger } from '#common/logging.js';
import type { SyslogRecord } from '#common/syslog-record.js';
import { SyslogSpool, type SpoolOptions } from '../../agent/engine/syslog/syslog-spool.js';
import {
  HEAD_BYTES,
  ackLogName,
  readEntry,
  scanSpoolFile,
  spoolFileName,
} from '../../agent/engine/syslog/spool-file.js';
import { batchOfArgs, forwardAll } from '../harness/syslog-batches.js';
import { entryBytes, segmentFiles, spoolFiles, storedBatches } from '../harness/spool-disk.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'spool-files-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const open = (o: Partial<SpoolOptions> = {}) =>
  SyslogSpool.open(dir, { engine: 'eng1', maxBytes: 1 << 30, log: silentLogger(), batchMs: 10_000, ...o });
const files = () => spoolFiles(dir);
/** Batch `k` of these tests: four records, every message as long as any other batch's. */
const recordsOf = (k: number): SyslogRecord[] =>
  [0, 1, 2, 3].map((i) => ({
    receivedAt: Date.now(),
    sender: '127.0.0.1',
    transport: 'tcp',
    raw: `<13>msg ${1000 + 10 * k + i} ${'x'.repeat(20)}`,
  }));
const rawsOf = (k: number) => recordsOf(k).map((r) => r.raw);
/** The messages of a batch's bytes (binary, or JSON from an older engine), as the tenant reads them. */
const raws = (b: Buffer) => batchOfArgs(b, 'eng1').records.map((r) => r.raw);

/** The bytes each batch of recordsOf() takes in a spool file. */
const ENTRY = entryBytes(recordsOf(0));
/** Seals batch k for each of `ks`, in this loop turn (their entries are written together), and waits for them. */
async function sealed(spool: SyslogSpool, ks: number[]) {
  for (const k of ks) {
    for (const r of recordsOf(k)) spool.add(r);
    spool.seal();
  }
  const batches = [...spool.pending()].slice(-ks.length);
  await Promise.all(batches.map((b) => b.written));
  return batches;
}
/** A logger that keeps the messages of its warnings. */
function warnings() {
  const seen: string[] = [];
  const log = pino({ level: 'warn' }, { write: (l: string) => void seen.push((JSON.parse(l) as { msg: string }).msg) });
  return { log, seen };
}

describe('spool files', () => {
  it('appends the batches sealed in a row to one spool file, named for the first, in seq order', async () => {
    const spool = await open();
    const batches = await sealed(spool, [0, 1, 2, 3, 4]);
    const name = spoolFileName(batches[0].seq);
    expect(await files()).toEqual([name]);
    const scan = await scanSpoolFile(join(dir, name));
    expect(scan.entries.map((e) => [e.seq, e.records, e.offset])).toEqual(batches.map((b, i) => [b.seq, 4, i * ENTRY]));
    expect([scan.size, scan.torn]).toEqual([5 * ENTRY, 0]);
    // A batch sealed later goes to the same file while it has room.
    const [later] = await sealed(spool, [5]);
    expect(await files()).toEqual([name]);
    const onDisk = await storedBatches(dir);
    expect(onDisk.map((s) => [s.file, s.seq])).toEqual([...batches, later].map((b) => [name, b.seq]));
    expect(onDisk.map((s) => raws(s.body))).toEqual([0, 1, 2, 3, 4, 5].map(rawsOf));
    await spool.close();
  });

  it('starts a new spool file once the current one is past fileBytes, each named for its first batch', async () => {
    const spool = await open({ fileBytes: 2 * ENTRY });
    const b = await sealed(spool, [0, 1, 2, 3, 4]);
    expect(await files()).toEqual([b[0], b[2], b[4]].map((x) => spoolFileName(x.seq)));
    const onDisk = await storedBatches(dir);
    expect(onDisk.map((s) => [s.file, s.seq, s.offset])).toEqual(
      b.map((x, i) => [spoolFileName(b[i - (i % 2)].seq), x.seq, (i % 2) * ENTRY]),
    );
    expect(onDisk.map((s) => raws(s.body))).toEqual([0, 1, 2, 3, 4].map(rawsOf));
    await spool.close();
  });

  it('keeps a spool file while any of its batches is pending, removes it with the last, and holds none idle', async () => {
    const spool = await open({ fileBytes: 2 * ENTRY });
    const [b0, b1, b2, b3] = await sealed(spool, [0, 1, 2, 3]);
    const [fileA, fileB] = [spoolFileName(b0.seq), spoolFileName(b2.seq)];
    expect(await files()).toEqual([fileA, fileB]);
    await spool.ack(b1.seq);
    expect(await files()).toEqual([fileA, fileB]);
    await spool.discard(b0.seq); // refused by the tenant: done with too
    expect(await files()).toEqual([fileB]);
    await spool.ack(b3.seq);
    expect(await files()).toEqual([fileB]); // the current file, its first batch still pending
    await spool.ack(b2.seq);
    expect(await files()).toEqual([]);
    // The next batch starts a new file, which goes with it.
    const [b4] = await sealed(spool, [4]);
    expect((await storedBatches(dir)).map((s) => [s.file, s.seq])).toEqual([[spoolFileName(b4.seq), b4.seq]]);
    await spool.ack(b4.seq);
    expect(await files()).toEqual([]);
    await spool.close();
    expect(await readdir(dir)).toEqual(['last-seq']);
  });

  /** Writes `bytes` over the file's from `at` on. */
  const overwrite = async (path: string, at: number, bytes: Buffer) => {
    const fh = await openFile(path, 'r+');
    await fh.write(bytes, 0, bytes.length, at);
    await fh.close();
  };
  it.each([
    ['cut short in its third entry', 2, (path: string, at: number[]) => truncate(path, at[2] + HEAD_BYTES + 10)],
    ['followed by garbage', 3, (path: string) => appendFile(path, Buffer.from('not an entry, '.repeat(9)))],
    ['followed by zeros (writes that never landed)', 3, (path: string) => appendFile(path, Buffer.alloc(4096))],
    [
      'with zeros over its second entry',
      1,
      (path: string, at: number[]) => overwrite(path, at[1], Buffer.alloc(ENTRY)),
    ],
  ])(
    'after a crash left a spool file %s, sends its whole entries, and new batches go to a new file',
    async (_, whole, damage) => {
      const first = await open();
      const seqs = (await sealed(first, [0, 1, 2])).map((b) => b.seq);
      await first.close();
      const path = join(dir, spoolFileName(seqs[0]));
      const offsets = (await scanSpoolFile(path)).entries.map((e) => e.offset);
      await damage(path, offsets);
      const damaged = await readFile(path);
      const { log, seen } = warnings();
      const spool = await open({ log });
      expect(seen).toEqual(['syslog spool file cut short by a crash: its end skipped']);
      const pending = [...spool.pending()];
      expect(pending.map((b) => [b.seq, b.records])).toEqual(seqs.slice(0, whole).map((s) => [s, 4]));
      for (const [k, b] of pending.entries()) expect(raws(await spool.body(b))).toEqual(rawsOf(k));
      // Where the scan stopped (cut short, or a hole) the entry is not whole; garbage or zeros follow whole ones.
      if (whole < seqs.length) await expect(readEntry(path, offsets[whole], seqs[whole])).rejects.toThrow();
      const [next] = await sealed(spool, [3]);
      expect(next.seq).toBeGreaterThan(seqs[2]);
      expect(await files()).toEqual([spoolFileName(seqs[0]), spoolFileName(next.seq)]);
      expect(await readFile(path)).toEqual(damaged); // never written to again
      for (const b of [...spool.pending()]) await spool.ack(b.seq);
      expect(await files()).toEqual([]);
      await spool.close();
    },
  );

  it('removes at open a spool file that holds no whole entry', async () => {
    const first = await open();
    const [b] = await sealed(first, [0]);
    await first.close();
    const whole = await readFile(join(dir, spoolFileName(b.seq)));
    await writeFile(join(dir, spoolFileName(b.seq)), whole.subarray(0, ENTRY - 1)); // its one entry cut short
    await writeFile(join(dir, spoolFileName(b.seq + 1)), Buffer.alloc(100)); // zeros: nothing written there
    await writeFile(join(dir, spoolFileName(b.seq + 2)), ''); // made, nothing written yet
    const spool = await open();
    expect([...spool.pending()]).toEqual([]);
    expect(await files()).toEqual([]);
    const [next] = await sealed(spool, [1]);
    expect(next.seq).toBeGreaterThan(b.seq);
    await spool.close();
  });

  it('drops a batch whose entry is damaged on disk, counted, and sends the others', async () => {
    const first = await open();
    const seqs = (await sealed(first, [0, 1, 2])).map((b) => b.seq);
    await first.close();
    // One byte of the second batch's first message changed: its entry is whole, its CRC fails.
    const path = join(dir, spoolFileName(seqs[0]));
    const bytes = await readFile(path);
    bytes[bytes.indexOf(rawsOf(1)[0]) + 4] ^= 0x20; // `msg` → `Msg`: a batch the tenant would take
    await writeFile(path, bytes);
    const spool = await open(); // the batches are read back from disk
    const [, b1, b2] = [...spool.pending()];
    await expect(spool.body(b1)).rejects.toThrow(/damaged/);
    expect(raws(await spool.body(b2))).toEqual(rawsOf(2));
    const stored = await forwardAll(spool);
    expect(stored.sort()).toEqual([...rawsOf(0), ...rawsOf(2)]);
    expect(spool.stats).toMatchObject({ dropped: 4, forwarded: 8 });
    expect(await files()).toEqual([]);
    await spool.close();
  });

  it('sends the segments an older engine left with the spool files, in seq order, and removes each once acked', async () => {
    // A spool file with a batch left pending.
    const first = await open();
    const [s1] = (await sealed(first, [1])).map((b) => b.seq);
    await first.close();
    // Segments of one batch each: a JSON one from long ago, and a binary one (as a spool writes it) after s1.
    const json = { engine: 'eng1', seq: 1000, spool: { received: 4, dropped: 0 }, records: recordsOf(0) };
    await writeFile(join(dir, `${String(1000).padStart(16, '0')}-4.seg`), JSON.stringify(json));
    const other = await mkdtemp(join(tmpdir(), 'spool-old-'));
    await writeFile(join(other, 'last-seq'), `${s1}\n`); // its seqs above s1, even within the same ms
    const old = await SyslogSpool.open(other, { engine: 'eng1', maxBytes: 1 << 30, log: silentLogger() });
    const [legacy] = await sealed(old, [2]);
    await writeFile(join(dir, `${String(legacy.seq).padStart(16, '0')}-4.seg`), await old.body(legacy));
    await old.close();
    await rm(other, { recursive: true, force: true });

    const spool = await open();
    const [s3] = (await sealed(spool, [3])).map((b) => b.seq);
    const order = [1000, s1, legacy.seq, s3];
    expect([...spool.pending()].map((b) => b.seq)).toEqual(order);
    for (const [k, b] of [...spool.pending()].entries()) expect(raws(await spool.body(b))).toEqual(rawsOf(k));
    expect((await storedBatches(dir)).map((s) => s.seq)).toEqual(order);
    for (const seq of order) {
      await spool.ack(seq);
      expect((await storedBatches(dir)).map((s) => s.seq)).toEqual(order.slice(order.indexOf(seq) + 1));
    }
    expect([...(await files()), ...(await segmentFiles(dir))]).toEqual([]);
    await spool.close();
  });

  it('writes in the thread pool the same spool files as on the loop, and removes them after the acks', async () => {
    const spool = await open({ syncWriteMs: -1, fileBytes: 3 * ENTRY });
    const batches = [...(await sealed(spool, [0])), ...(await sealed(spool, [1, 2, 3, 4]))]; // the first on the loop
    expect(await files()).toEqual([spoolFileName(batches[0].seq), spoolFileName(batches[3].seq)]);
    const onDisk = await storedBatches(dir);
    expect(onDisk.map((s) => [s.seq, s.offset])).toEqual(batches.map((b, i) => [b.seq, (i % 3) * ENTRY]));
    // The bytes on disk are those the spool holds in memory (and sends).
    for (const [i, b] of batches.entries()) expect(onDisk[i].body.equals(await spool.body(b))).toBe(true);
    expect(onDisk.map((s) => raws(s.body))).toEqual([0, 1, 2, 3, 4].map(rawsOf));
    for (const b of batches) await spool.ack(b.seq);
    expect(await files()).toEqual([]);
    await spool.close();
  });

  it('does not send again after a restart the acknowledged batches a pending one keeps on disk', async () => {
    const first = await open({ fileBytes: 2 * ENTRY });
    const [b0, b1, b2, b3] = await sealed(first, [0, 1, 2, 3]);
    for (const b of [b0, b1, b2]) await first.ack(b.seq);
    await first.close();
    // b0 and b1's file went with them; b2's entry stays in b3's file, named as done with in that file's ack log.
    const file = spoolFileName(b2.seq);
    expect((await readdir(dir)).sort()).toEqual([ackLogName(file), 'last-seq', file].sort());
    expect((await storedBatches(dir)).map((s) => s.seq)).toEqual([b2.seq, b3.seq]);
    const second = await open();
    const pending = [...second.pending()];
    expect(pending.map((b) => b.seq)).toEqual([b3.seq]);
    expect(raws(await second.body(pending[0]))).toEqual(rawsOf(3));
    await second.ack(b3.seq);
    expect(await readdir(dir)).toEqual(['last-seq']); // the file and its ack log went with its last batch
    await second.close();
  });

  it('puts the batches after a failed write in a new file, so a restart finds them', async () => {
    const spool = await open();
    for (const r of recordsOf(0)) spool.add(r);
    spool.seal();
    const [b0] = [...spool.pending()];
    // The write (at the end of this loop turn) finds a directory where its file goes, as an open that fails would.
    // Made at once: an mkdir in the thread pool could finish after the write, which then makes the file first.
    mkdirSync(join(dir, spoolFileName(b0.seq)));
    await b0.written;
    expect(b0.onDisk).toBe(false);
    await rm(join(dir, spoolFileName(b0.seq)), { recursive: true });
    const [b1] = await sealed(spool, [1]);
    expect(b1.onDisk).toBe(true);
    expect(b1.file.name).toBe(spoolFileName(b1.seq));
    await spool.close();
    const again = await open();
    expect([...again.pending()].map((b) => b.seq)).toEqual([b1.seq]);
    expect(raws(await again.body([...again.pending()][0]))).toEqual(rawsOf(1));
    await again.close();
  });
});
