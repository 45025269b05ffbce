/**
 * The engine's syslog spool and forwarder (agent/engine/syslog/) the way the engine runs them: messages taken as
 * spans of the bytes read (SyslogSpool.message), batches in pooled buffers sent on the direct path, where the
 * native AEAD seals a batch where it lies. Over a pair of sessions joined back to back in memory: every record arrives
 * intact and in order, a batch is on disk before it is sent (whole, in its spool file), the batches a lost session
 * took (sealed in place) are sent again from their spool file, and the buffers reused after the tenant's answers
 * never corrupt a later batch; once every batch is acknowledged no spool file is left.
 * The tenant says protocol 1.11: batches travel in the binary form, read by the tenant's reader.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '#common/logging.js';
import { SyslogSpool } from '../../agent/engine/syslog/syslog-spool.js';
import { SyslogForwarder } from '../../agent/engine/syslog/syslog-forwarder.js';
import type { SyslogOrigin } from '../../agent/engine/syslog/syslog-batch.js';
import { TunnelSession } from '../../agent/tunnel/tunnel-session.js';
import { SealingKey } from '../../agent/tunnel/tunnel-crypto.js';
import { aeadBackend } from '../../agent/tunnel/native-aead.js';
import { EVENTS_BATCH } from '../../agent/tunnel/events-batch.js';
import { MINOR_BINARY_EVENTS } from '#common/protocol-version.js';
import { batchOfArgs, type RecordsBatch } from '../harness/syslog-batches.js';
import { spoolFiles, storedBatches } from '../harness/spool-disk.js';
import { until } from '../harness/processes.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'spool-direct-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/**
 * Engine (direct path: length-prefixed records, gathered writes) and tenant sessions back to back; what the engine
 * sends is copied as a socket would, before it goes on. `onBatch` answers for the tenant (never, to lose a session).
 */
function directPair(onBatch: (b: RecordsBatch) => Promise<unknown>) {
  const key = Buffer.alloc(32, 7);
  const back = Buffer.alloc(32, 8);
  let deliver = true;
  // Read later, as a socket's queued write is: a buffer reused too soon would show as a record that fails to open.
  const toTenant = (parts: Uint8Array[]) =>
    setImmediate(() => deliver && tenant.onSealed(Buffer.concat(parts).subarray(5))); // [u32 length][type] first
  const engine: TunnelSession = new TunnelSession({
    keys: { send: new SealingKey(key), receive: new SealingKey(back) },
    initiator: false,
    lengthPrefixed: true,
    sendRecordv: toTenant,
    sendRecord: (r) => toTenant([r]),
    peerMinor: MINOR_BINARY_EVENTS,
  });
  const tenant: TunnelSession = new TunnelSession({
    keys: { send: new SealingKey(back), receive: new SealingKey(key) },
    initiator: true,
    sendRecord: (r) => {
      const copy = Buffer.from(r.subarray(1));
      if (deliver) setImmediate(() => deliver && engine.onSealed(copy));
    },
    rawCommands: new Set([EVENTS_BATCH]),
    onCommand: async (name, args) => {
      expect(name).toBe(EVENTS_BATCH);
      const b = batchOfArgs(args, 'eng1');
      expect(b.form).toBe('binary');
      return onBatch(b);
    },
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

/** Message `i`: long enough that a full batch stays in its pooled buffer; a quote and a tab for JSON's escapes. */
const message = (i: number) => `<134>1 2026-12-06T23:00:00.000Z web-01 app 42 - - "login" failed\tuser=u${i} seq=${i}`;

/** Sends messages [from, to) as one chunk of newline-framed bytes would arrive: spans of one buffer. */
function feed(spool: SyslogSpool, from: number, to: number): void {
  const origin: SyslogOrigin = { receivedAt: Date.now(), sender: '10.0.0.9', transport: 'tcp' };
  const lines = [];
  for (let i = from; i < to; i++) lines.push(message(i));
  const chunk = Buffer.from(lines.join('\n') + '\n');
  let start = 0;
  for (let lf = chunk.indexOf(10); lf !== -1; lf = chunk.indexOf(10, start)) {
    spool.message(chunk, start, lf, origin);
    start = lf + 1;
  }
}

describe('spool and forwarder on the direct path', () => {
  it('sends every record intact, again from the spool file after a lost session, and reuses buffers safely', async () => {
    expect(['native', 'node']).toContain(aeadBackend());
    const spool = await SyslogSpool.open(dir, {
      engine: 'eng1',
      maxBytes: 1 << 30,
      log: silentLogger(),
      batchBytes: 960 * 1024, // batches of 2 000: sealed by count
    });
    const fwd = new SyslogForwarder(spool, silentLogger());
    const seen = new Map<number, string[]>();
    let answer = false;
    const onBatch = async (b: RecordsBatch) => {
      seen.set(
        b.seq,
        b.records.map((r) => r.raw),
      );
      if (!answer) await new Promise(() => undefined); // the tenant is lost before it answers
      return { accepted: b.records.length, duplicate: false };
    };
    const first = directPair(onBatch);
    fwd.setSession(first.engine);
    feed(spool, 0, 4000); // two full batches, sealed by count
    const firstSeqs = [...spool.pending()].map((b) => b.seq);
    expect(firstSeqs).toHaveLength(2);
    await until('both batches reached the first tenant', async () => firstSeqs.every((s) => seen.has(s)));
    // Sent only once on disk: both batches are entries of the spool file, whole (their CRC checked) though the
    // bytes sent were sealed where they lay.
    const onDisk = await storedBatches(dir);
    expect(onDisk.map((s) => [s.seq, s.records])).toEqual(firstSeqs.map((s) => [s, 2000]));
    expect(onDisk.map((s) => batchOfArgs(s.body, 'eng1').records.at(-1)!.raw)).toEqual([message(1999), message(3999)]);
    first.cut();
    fwd.setSession(undefined);
    seen.clear();
    answer = true;
    const second = directPair(onBatch);
    fwd.setSession(second.engine);
    await until('the lost batches acknowledged', async () => spool.stats.pendingRecords === 0, 10_000);
    // More batches, in the buffers the answered ones gave back, each filled while the one before is on its way.
    for (let b = 2; b < 6; b++) {
      feed(spool, b * 2000, (b + 1) * 2000);
      await new Promise((r) => setImmediate(r));
    }
    feed(spool, 12_000, 12_010);
    spool.seal();
    await until('every batch acknowledged', async () => spool.stats.forwarded === 12_010, 10_000);
    const raws = [...seen.entries()].sort((a, b) => a[0] - b[0]).flatMap(([, r]) => r);
    expect(raws).toEqual(Array.from({ length: 12_010 }, (_, i) => message(i)));
    expect(await spoolFiles(dir)).toEqual([]);
    expect(spool.stats).toMatchObject({ received: 12_010, forwarded: 12_010, dropped: 0, pendingRecords: 0 });
    fwd.close();
    second.cut();
    await spool.close();
  });
});
