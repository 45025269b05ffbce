/**
 * The engine's syslog spool (agent/engine/syslog/syslog-spool.ts) on a real directory, and its forwarder
 * (syslog-forwarder.ts) over a real pair of sealed sessions: batches are sealed by count or time, written as
 * segments, bounded by bytes with the oldest dropped and counted, kept across a restart of the spool's owner with
 * sequence numbers still rising, removed only by the tenant's acknowledgement, and sent again on the next session
 * when the answer never came; with segment writes in flight over their cap (a disk slower than the senders), the
 * newest batch is dropped and counted while the older ones are still written.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { silentLogger } from '#common/logging.js';
import { BadParameterError } from '#common/errors.js';
import type { SyslogBatch, SyslogRecord } from '#common/syslog-record.js';
import { BATCH_BYTES, SyslogSpool } from '../../agent/engine/syslog/syslog-spool.js';
import { jsonOfBatch } from '../../agent/engine/syslog/syslog-batch-json.js';
import { SyslogForwarder } from '../../agent/engine/syslog/syslog-forwarder.js';
import { TunnelSession } from '../../agent/tunnel/tunnel-session.js';
import { SealingKey, type SessionKeys } from '../../agent/tunnel/tunnel-crypto.js';
import { EVENTS_BATCH } from '../../agent/tunnel/events-batch.js';
import { batchOfArgs } from '../harness/syslog-batches.js';
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
const open = (maxBytes = 1 << 30, batchMs = 10_000, batchBytes?: number) =>
  SyslogSpool.open(dir, { engine: 'eng1', maxBytes, log: silentLogger(), batchMs, batchBytes });
const segments = async () => (await readdir(dir)).filter((f) => f.endsWith('.seg')).sort();
type JsonBatch = SyslogBatch & { records: SyslogRecord[] };
/** A batch's bytes (binary, or JSON from an older engine) as its JSON args. */
const asJson = (b: Buffer) => JSON.parse((b[0] === 0x7b ? b : jsonOfBatch(b, 'eng1')).toString()) as JsonBatch;
const parsed = async (file: string) => asJson(await readFile(join(dir, file)));

describe('spool', () => {
  it('seals a batch after its time, writes it as a segment holding the batch, and removes it on ack', async () => {
    const spool = await SyslogSpool.open(dir, { engine: 'eng1', maxBytes: 1 << 30, log: silentLogger(), batchMs: 20 });
    for (let i = 0; i < 3; i++) spool.add(rec(i));
    const [batch] = await until('a sealed batch', async () => [...spool.pending()][0] && [...spool.pending()], 5_000);
    await batch.written;
    const files = await segments();
    expect(files).toHaveLength(1);
    const onDisk = await parsed(files[0]);
    expect(onDisk).toMatchObject({ engine: 'eng1', seq: batch.seq });
    expect(onDisk.records.map((r) => r.raw)).toEqual([0, 1, 2].map((i) => rec(i).raw));
    expect(spool.stats).toMatchObject({ received: 3, pendingRecords: 3, forwarded: 0, dropped: 0 });
    await spool.ack(batch.seq);
    expect(await segments()).toEqual([]);
    expect(spool.stats).toMatchObject({ pendingRecords: 0, forwarded: 3, spooledBytes: 0 });
    await spool.close();
  });

  it('is bounded: past its bytes the oldest batches go, counted, and the newest stay', async () => {
    const spool = await open(20_000);
    for (let b = 0; b < 20; b++) {
      for (let i = 0; i < 10; i++) spool.add(rec(b * 10 + i, 200));
      spool.seal();
    }
    await Promise.all([...spool.pending()].map((p) => p.written));
    const st = spool.stats;
    expect(st.received).toBe(200);
    expect(st.dropped).toBeGreaterThan(0);
    expect(st.dropped % 10).toBe(0); // whole batches
    expect(st.pendingRecords + st.dropped).toBe(200);
    expect(st.spooledBytes).toBeLessThanOrEqual(20_000);
    await until('dropped segments removed', async () => (await segments()).length === [...spool.pending()].length);
    const kept = await Promise.all((await segments()).map(parsed));
    // The newest batch is kept; what is kept is a run of the latest batches, in order.
    expect(kept.at(-1)!.records.at(-1)!.raw).toBe(rec(199, 200).raw);
    const firstKept = Number(/msg (\d+)/.exec(kept[0].records[0].raw)![1]);
    expect(firstKept).toBe(st.dropped);
    await spool.close();
  });

  it('drops the newest batch, counted, while the writes in flight are over their cap, and takes batches again after', async () => {
    // A cap below one batch: the first batch is written (nothing else in flight); those sealed before it lands go.
    const spool = await SyslogSpool.open(dir, {
      engine: 'eng1',
      maxBytes: 1 << 30,
      log: silentLogger(),
      batchMs: 10_000,
      maxWritingBytes: 100,
    });
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
    const kept = await Promise.all((await segments()).map(parsed));
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
    // A segment half written by a crash never got its name: it is removed, not sent.
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

  it('writes segments in the thread pool once a write on the loop was slow, and removes them there too', async () => {
    // Any write is "slow" here: the first is written on the loop, the rest go to the thread pool.
    const spool = await SyslogSpool.open(dir, {
      engine: 'eng1',
      maxBytes: 1 << 30,
      log: silentLogger(),
      syncWriteMs: -1,
    });
    for (let b = 0; b < 3; b++) {
      for (let i = 0; i < 4; i++) spool.add(rec(b * 10 + i));
      spool.seal();
      await Promise.all([...spool.pending()].map((p) => p.written));
    }
    const kept = await Promise.all((await segments()).map(parsed));
    expect(kept.map((k) => k.records.map((r) => r.raw))).toEqual(
      [0, 10, 20].map((b) => [0, 1, 2, 3].map((i) => rec(b + i).raw)),
    );
    for (const b of [...spool.pending()]) {
      const taken = await spool.take(b);
      expect(asJson(taken.body).seq).toBe(b.seq);
      await spool.ack(b.seq);
    }
    expect(await segments()).toEqual([]);
    expect(spool.stats).toMatchObject({ forwarded: 12, pendingRecords: 0 });
    await spool.close();
  });

  it('cuts a batch at MAX_SYSLOG_BATCH_RECORDS and keeps each batch within one sealed command', async () => {
    const spool = await open(1 << 30, 10_000, 960 * 1024);
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

/**
 * A tenant/engine pair of sessions joined back to back in memory; `cut()` loses what is in flight. The tenant says
 * protocol minor `tenantMinor`: from 11 it takes the batch's bytes (binary or JSON), before it JSON args only.
 */
function sessionPair(onBatch: (b: JsonBatch) => Promise<unknown>, tenantMinor = 0) {
  const key = Buffer.alloc(32, 9);
  const keys = (): SessionKeys => ({ send: new SealingKey(key, null), receive: new SealingKey(key, null) });
  let deliver = true;
  const pass = (to: () => TunnelSession) => (r: Buffer) => {
    const body = Buffer.from(r.subarray(1));
    if (deliver) setImmediate(() => deliver && to().onSealed(body));
  };
  const tenant: TunnelSession = new TunnelSession({
    keys: keys(),
    initiator: true,
    sendRecord: pass(() => engine),
    ...(tenantMinor >= 11 ? { rawCommands: new Set([EVENTS_BATCH]) } : {}),
    onCommand: async (name, args) => {
      expect(name).toBe(EVENTS_BATCH);
      return onBatch(batchOfArgs(args, 'eng1'));
    },
  });
  const engine: TunnelSession = new TunnelSession({
    keys: keys(),
    initiator: false,
    sendRecord: pass(() => tenant),
    peerMinor: tenantMinor,
  });
  return {
    engine,
    cut: () => {
      deliver = false;
      engine.close('cut');
      tenant.close('cut');
    },
  };
}

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
    expect(await segments()).toEqual([]);
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
    expect(await segments()).toEqual([]);
    fwd.close();
    pair.cut();
    await spool.close();
  });

  it('drops a segment it cannot read (removed by hand), counted, and goes on with the next', async () => {
    const first = await open();
    first.add(rec(1));
    first.seal();
    first.add(rec(2));
    await first.close();
    const spool = await open();
    await rm(join(dir, (await segments())[0])); // after the spool listed it
    const fwd = new SyslogForwarder(spool, silentLogger());
    const stored: string[] = [];
    const pair = sessionPair(async (b) => {
      stored.push(...b.records.map((r) => r.raw));
      return { accepted: b.records.length };
    });
    fwd.setSession(pair.engine);
    await until('the readable batch stored', async () => spool.stats.pendingRecords === 0, 5_000);
    expect(stored).toEqual([rec(2).raw]);
    expect(spool.stats.dropped).toBe(1);
    fwd.close();
    pair.cut();
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
