/**
 * The engine's syslog spool (agent/engine/syslog/syslog-spool.ts) on a real directory, and its forwarder
 * (syslog-forwarder.ts) over a real pair of sealed sessions: batches are sealed by count or time, written as entries
 * of spool files, bounded by bytes with the oldest dropped and counted (a file of dropped batches only removed),
 * kept across a restart of the spool's owner with sequence numbers still rising, done with only at the tenant's
 * acknowledgement (no file left once all are), and sent again on the next session when the answer never came; with
 * writes in flight over their cap (a disk slower than the senders), the newest batch is dropped and counted while the
 * older ones are still written; a batch whose spool file was removed by hand is dropped and counted. How batches lie
 * in spool files, a crash's leftovers and older engines' segments: syslog-spool-files.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { silentLogger } from '#common/logging.js';
import { BadParameterError } from '#common/errors.js';
import type { SyslogBatch, SyslogRecord } from '#common/syslog-record.js';
import { BATCH_BYTES, SyslogSpool, type SpoolOptions } from '../../agent/engine/syslog/syslog-spool.js';
import { spoolFileName } from '../../agent/engine/syslog/spool-file.js';
import { jsonOfBatch } from '../../agent/engine/syslog/syslog-batch-json.js';
import { SyslogForwarder } from '../../agent/engine/syslog/syslog-forwarder.js';
import { forwardAll, sessionPair } from '../harness/syslog-batches.js';
import { entryBytes, spoolFiles, storedBatches } from '../harness/spool-disk.js';
import { until } from '../harness/processes.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'spool-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const rec = (n: number, size = 20): SyslogRecord => ({
  receivedAt: Date.now(),
  sender: '127.0.0.1',
  transport: 'tcp',
  raw: `<13>msg ${n} ${'x'.repeat(size)}`,
});
const open = (o: Partial<SpoolOptions> = {}) =>
  SyslogSpool.open(dir, { engine: 'eng1', maxBytes: 1 << 30, log: silentLogger(), batchMs: 10_000, ...o });
type JsonBatch = SyslogBatch & { records: SyslogRecord[] };
/** A batch's bytes (binary, or JSON from an older engine) as its JSON args. */
const asJson = (b: Buffer) => JSON.parse((b[0] === 0x7b ? b : jsonOfBatch(b, 'eng1')).toString()) as JsonBatch;
const files = () => spoolFiles(dir);
/** The batches on disk (whole entries of the spool files, older segments), oldest first, as their JSON args. */
const parsedOnDisk = async () => (await storedBatches(dir)).map((s) => asJson(s.body));

describe('spool', () => {
  it('seals a batch after its time, writes it to a spool file holding the batch, and removes it on ack', async () => {
    const spool = await open({ batchMs: 20 });
    for (let i = 0; i < 3; i++) spool.add(rec(i));
    const [batch] = await until('a sealed batch', async () => [...spool.pending()][0] && [...spool.pending()], 5_000);
    await batch.written;
    expect(await files()).toEqual([spoolFileName(batch.seq)]);
    const onDisk = await parsedOnDisk();
    expect(onDisk).toHaveLength(1);
    expect(onDisk[0]).toMatchObject({ engine: 'eng1', seq: batch.seq });
    expect(onDisk[0].records.map((r) => r.raw)).toEqual([0, 1, 2].map((i) => rec(i).raw));
    expect(spool.stats).toMatchObject({ received: 3, pendingRecords: 3, forwarded: 0, dropped: 0 });
    await spool.ack(batch.seq);
    expect(await files()).toEqual([]);
    expect(spool.stats).toMatchObject({ pendingRecords: 0, forwarded: 3, spooledBytes: 0 });
    await spool.close();
  });

  it('is bounded: past its bytes the oldest batches go, counted, and the newest stay', async () => {
    // About three batches to a file: a file whose batches were all dropped goes.
    const perBatch = entryBytes(Array.from({ length: 10 }, (_, i) => rec(100 + i, 200)));
    const spool = await open({ maxBytes: 20_000, fileBytes: 3 * perBatch });
    let firstSeq = 0;
    for (let b = 0; b < 20; b++) {
      for (let i = 0; i < 10; i++) spool.add(rec(b * 10 + i, 200));
      spool.seal();
      firstSeq ||= [...spool.pending()][0].seq;
    }
    await Promise.all([...spool.pending()].map((p) => p.written));
    const st = spool.stats;
    expect(st.received).toBe(200);
    expect(st.dropped).toBeGreaterThan(0);
    expect(st.dropped % 10).toBe(0); // whole batches
    expect(st.pendingRecords + st.dropped).toBe(200);
    expect(st.spooledBytes).toBeLessThanOrEqual(20_000);
    const filesOfPending = () => [...new Set([...spool.pending()].map((p) => p.file.name))];
    await until('files of dropped batches removed', async () => (await files()).join() === filesOfPending().join());
    expect(await files()).not.toContain(spoolFileName(firstSeq));
    const kept = (await storedBatches(dir)).filter((s) => spool.has(s.seq)).map((s) => asJson(s.body));
    expect(kept.map((k) => k.seq)).toEqual([...spool.pending()].map((p) => p.seq));
    // The newest batch is kept; what is kept is a run of the latest batches, in order.
    expect(kept.at(-1)!.records.at(-1)!.raw).toBe(rec(199, 200).raw);
    const firstKept = Number(/msg (\d+)/.exec(kept[0].records[0].raw)![1]);
    expect(firstKept).toBe(st.dropped);
    await spool.close();
  });

  it('drops the newest batch, counted, while the writes in flight are over their cap, and takes batches again after', async () => {
    // A cap below one batch: the first batch is written (nothing else in flight); those sealed before it lands go.
    const spool = await open({ maxWritingBytes: 100 });
    for (let b = 0; b < 3; b++) {
      for (let i = 0; i < 5; i++) spool.add(rec(b * 10 + i));
      spool.seal();
    }
    expect(spool.stats).toMatchObject({ received: 15, dropped: 10, pendingRecords: 5 });
    const [first] = [...spool.pending()];
    await first.written;
    for (let i = 0; i < 5; i++) spool.add(rec(100 + i));
    spool.seal();
    await Promise.all([...spool.pending()].map((p) => p.written));
    expect(spool.stats).toMatchObject({ received: 20, dropped: 10, pendingRecords: 10 });
    const kept = await parsedOnDisk();
    expect(kept.map((k) => k.records.map((r) => r.raw))).toEqual([
      [0, 1, 2, 3, 4].map((i) => rec(i).raw),
      [100, 101, 102, 103, 104].map((i) => rec(i).raw),
    ]);
    // The tenant sees the drop in the next batch's counts.
    expect((kept[1] as unknown as { spool: object }).spool).toMatchObject({ dropped: 10 });
    await spool.close();
  });

  it('keeps unacknowledged batches across a restart of its owner, and seqs keep rising', async () => {
    const first = await open();
    for (let i = 0; i < 5; i++) first.add(rec(i));
    first.seal();
    first.add(rec(5));
    const seqs1 = [...first.pending()].map((b) => b.seq);
    await first.close(); // seals the open batch too
    const seqsClosed = [...first.pending()].map((b) => b.seq);
    expect(seqsClosed.length).toBe(2);
    // A segment an older engine's crash left half written never got its name: it is removed, not sent.
    await writeFile(join(dir, '9999999999999999-3.seg.tmp'), randomBytes(40));

    const second = await open();
    const pending = [...second.pending()];
    expect(pending.map((b) => [b.seq, b.records])).toEqual([
      [seqs1[0], 5],
      [seqsClosed[1], 1],
    ]);
    expect((await readdir(dir)).some((f) => f.endsWith('.tmp'))).toBe(false);
    const body = asJson(await second.body(pending[0]));
    expect(body.records.map((r) => r.raw)).toEqual([0, 1, 2, 3, 4].map((i) => rec(i).raw));
    second.add(rec(6));
    second.seal();
    const newest = [...second.pending()].at(-1)!;
    expect(newest.seq).toBeGreaterThan(seqsClosed[1]);
    await second.close();
  });

  it('writes spool files in the thread pool once a write on the loop was slow, and removes them there too', async () => {
    // Any write is "slow" here: the first is written on the loop, the rest go to the thread pool.
    const spool = await open({ syncWriteMs: -1 });
    for (let b = 0; b < 3; b++) {
      for (let i = 0; i < 4; i++) spool.add(rec(b * 10 + i));
      spool.seal();
      await Promise.all([...spool.pending()].map((p) => p.written));
    }
    const kept = await parsedOnDisk();
    expect(kept.map((k) => k.records.map((r) => r.raw))).toEqual(
      [0, 10, 20].map((b) => [0, 1, 2, 3].map((i) => rec(b + i).raw)),
    );
    for (const b of [...spool.pending()]) {
      const taken = await spool.take(b);
      expect(asJson(taken.body).seq).toBe(b.seq);
      await spool.ack(b.seq);
    }
    expect(await files()).toEqual([]);
    expect(spool.stats).toMatchObject({ forwarded: 12, pendingRecords: 0 });
    await spool.close();
  });

  it('cuts a batch at MAX_SYSLOG_BATCH_RECORDS and keeps each batch within one sealed command', async () => {
    const spool = await open({ batchBytes: 960 * 1024 });
    for (let i = 0; i < 2500; i++) spool.add(rec(i));
    expect([...spool.pending()].map((b) => b.records)).toEqual([2000]);
    for (let i = 0; i < 40; i++) spool.add(rec(i, 60_000));
    spool.seal();
    for (const b of spool.pending()) expect(b.bytes).toBeLessThan(1024 * 1024 - 1024);
    await spool.close();
  });

  it('keeps a batch under BATCH_BYTES by default, and its JSON for an older tenant within one command', async () => {
    const spool = await open();
    for (let i = 0; i < 2500; i++) spool.add(rec(i));
    // Messages at the engine's bound whose every byte JSON escapes (six bytes each as `\u0001`).
    spool.add({ ...rec(2500), raw: '\u0001'.repeat(65_536) });
    spool.add({ ...rec(2501), raw: '"'.repeat(60_000) });
    spool.seal();
    const batches = [...spool.pending()];
    expect(batches.reduce((a, b) => a + b.records, 0)).toBe(2502);
    for (const b of batches) {
      expect(b.bytes).toBeLessThanOrEqual(BATCH_BYTES);
      expect(jsonOfBatch(await spool.body(b), 'eng1').length).toBeLessThan(1024 * 1024 - 1024 - 100);
    }
    await spool.close();
  });
});

describe('forwarder', () => {
  it('removes a batch only once the tenant acknowledged it, and re-sends on the next session what was lost', async () => {
    const spool = await open();
    const fwd = new SyslogForwarder(spool, silentLogger());
    const stored = new Map<number, number>();
    let answer = false;
    const first = sessionPair(async (b) => {
      stored.set(b.seq, b.records.length);
      if (!answer) await new Promise(() => undefined); // the tenant dies before answering
      return { accepted: b.records.length };
    });
    fwd.setSession(first.engine);
    for (let i = 0; i < 7; i++) spool.add(rec(i));
    spool.seal();
    const seq = [...spool.pending()][0].seq;
    await until('batch received by the first tenant', async () => stored.has(seq));
    expect(spool.has(seq)).toBe(true); // no answer: still spooled
    first.cut();
    fwd.setSession(undefined);
    answer = true;
    // The tenant came back upgraded: the same batch goes binary.
    const second = sessionPair(async (b) => {
      stored.set(b.seq, b.records.length);
      return { accepted: b.records.length };
    }, 11);
    fwd.setSession(second.engine);
    await until('batch acknowledged on the second session', async () => !spool.has(seq));
    expect(await files()).toEqual([]);
    expect(spool.stats).toMatchObject({ forwarded: 7, pendingRecords: 0 });
    fwd.close();
    await spool.close();
  });

  it('drops a batch the tenant refuses as malformed, counted, and goes on with the next', async () => {
    const spool = await open();
    const fwd = new SyslogForwarder(spool, silentLogger());
    const stored: number[] = [];
    const pair = sessionPair(async (b) => {
      if (b.records.some((r) => r.raw.includes('poison')))
        throw new BadParameterError('ERR_EVENTS_BATCH', 'records[0].raw: refused by a stricter tenant');
      stored.push(...b.records.map((r) => Number(/msg (\d+)/.exec(r.raw)![1])));
      return { accepted: b.records.length };
    });
    fwd.setSession(pair.engine);
    spool.add({ ...rec(1), raw: '<13>poison' });
    spool.seal();
    spool.add(rec(2));
    spool.seal();
    await until('the batch after the refused one stored', async () => stored.includes(2), 5_000);
    await until('nothing pending', async () => spool.stats.pendingRecords === 0, 5_000);
    expect(spool.stats).toMatchObject({ dropped: 1, forwarded: 1 });
    expect(await files()).toEqual([]);
    fwd.close();
    pair.cut();
    await spool.close();
  });

  it('drops a batch it cannot read (its spool file removed by hand), counted, and goes on with the next', async () => {
    const first = await open({ fileBytes: 1 }); // a file to each batch
    first.add(rec(1));
    first.seal();
    first.add(rec(2));
    await first.close();
    const spool = await open();
    const onDisk = await files();
    expect(onDisk).toHaveLength(2);
    await rm(join(dir, onDisk[0])); // after the spool listed it
    const stored = await forwardAll(spool);
    expect(stored).toEqual([rec(2).raw]);
    expect(spool.stats.dropped).toBe(1);
    expect(await files()).toEqual([]);
    await spool.close();
  });

  it('retries a batch the tenant refused for now, without losing it', async () => {
    const spool = await open();
    const fwd = new SyslogForwarder(spool, silentLogger());
    let refusals = 2;
    const pair = sessionPair(async (b) => {
      if (refusals-- > 0) throw Object.assign(new Error('not ready'), { code: 'ERR_EVENTS_UNAVAILABLE' });
      return { accepted: b.records.length };
    });
    fwd.setSession(pair.engine);
    spool.add(rec(1));
    spool.seal();
    await until('acknowledged after two refusals', async () => spool.stats.forwarded === 1, 15_000);
    expect(refusals).toBe(-1);
    fwd.close();
    pair.cut();
    await spool.close();
  });
});
