/**
 * The spool's batch writer (agent/engine/syslog/syslog-batch.ts): a batch written from framed bytes reads back
 * (agent/tunnel/events-batch-binary.ts) as the same messages, byte for byte, with their origins and times — ASCII,
 * control characters, UTF-8, invalid UTF-8, messages cut at the size limit, from spans at every alignment; a full
 * batch refuses the record that would take it past its limit, record count or time range, and a released buffer is
 * filled again; jsonOfBatch() writes what an older tenant reads, `raw` as messageText() decodes; the command head a
 * batch is sealed behind decodes, with the batch, as the Envelope protobufjs would. Pure: no I/O.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { BatchWriter, type SyslogOrigin } from '../../agent/engine/syslog/syslog-batch.js';
import { jsonOfBatch } from '../../agent/engine/syslog/syslog-batch-json.js';
import { readEventsBatchBinary } from '../../agent/tunnel/events-batch-binary.js';
import { readEventsBatch } from '../../agent/tunnel/events-batch.js';
import { MAX_SYSLOG_BATCH_RECORDS, MAX_SYSLOG_MESSAGE_BYTES, messageText } from '#common/syslog-record.js';
import { decodeEnvelope } from '#common/codec.js';
import { commandHead } from '../../agent/tunnel/tunnel-session.js';

const T0 = 1_765_000_000_123;
const origin = (sender = '10.1.2.3', at = T0): SyslogOrigin => ({ receivedAt: at, sender, transport: 'tcp' });

/** The batch the writer makes of `msgs` (each at an offset in a larger buffer), read back. */
function roundTrip(msgs: Buffer[], pad = 0) {
  const w = new BatchWriter(960 * 1024);
  const o = origin();
  for (const m of msgs) {
    const src = Buffer.concat([randomBytes(pad), m, randomBytes(3)]);
    expect(w.appendMessage(src, pad, pad + m.length, o)).toBe(true);
  }
  const { body } = w.finish(7, 100, 2);
  return { body, batch: readEventsBatchBinary(body, 'e') };
}

describe('batch writing', () => {
  it('keeps every message byte for byte, at every alignment, whatever its bytes', () => {
    const msgs = [
      Buffer.from('<134>1 2026-12-06T23:00:00.000Z web-01 app 42 - - login "failed"\tuser=u1 src=10.0.0.1'),
      Buffer.from('überprüfung für 用户 😀'),
      Buffer.from([0x41, 0xff, 0x42, 0xc3, 0x28, 0xe2, 0x82, 0x43, 0xed, 0xa0, 0x80, 0x00, 0x0a]),
      randomBytes(300),
    ];
    for (let pad = 0; pad < 8; pad++) {
      const { batch } = roundTrip(msgs, pad);
      expect(batch).toMatchObject({ seq: 7, spool: { received: 100, dropped: 2 } });
      expect(batch.records.length).toBe(msgs.length);
      msgs.forEach((m, i) => {
        expect(batch.records.bytes(i).equals(m)).toBe(true);
        expect(batch.records.text(i)).toBe(messageText(m));
        expect(batch.records.time(i)).toBe(T0);
        expect(batch.records.sender(i)).toBe('10.1.2.3');
        expect(batch.records.transport(i)).toBe('tcp');
      });
    }
  });

  it('cuts a message at the size limit, and the tenant decodes the cut as messageText does', () => {
    const long = Buffer.alloc(MAX_SYSLOG_MESSAGE_BYTES + 3, 'é');
    const { batch } = roundTrip([long, Buffer.from('x')]);
    expect(batch.records.bytes(0).length).toBe(MAX_SYSLOG_MESSAGE_BYTES);
    expect(batch.records.text(0)).toBe(messageText(long));
    expect(batch.records.text(1)).toBe('x');
  });

  it('keeps each origin once, times as offsets (also backwards), and refuses a time too far from the first', () => {
    const w = new BatchWriter(960 * 1024);
    const m = Buffer.from('<13>hello');
    const a = origin('10.0.0.1');
    const b: SyslogOrigin = { receivedAt: T0 - 5, sender: '2001:db8::1', transport: 'udp' };
    const a2 = origin('10.0.0.1', T0 + 1000); // the same connection a second later: a new origin object
    for (const o of [a, b, a2, a, b]) expect(w.appendMessage(m, 0, m.length, o)).toBe(true);
    expect(w.appendMessage(m, 0, m.length, origin('10.0.0.1', T0 + 2 ** 31))).toBe(false);
    const { body } = w.finish(1, 5, 0);
    expect(body.readUInt32LE(8)).toBe(2); // two origins
    const r = readEventsBatchBinary(body, 'e').records;
    expect([0, 1, 2, 3, 4].map((i) => [r.time(i), r.sender(i), r.transport(i)])).toEqual([
      [T0, '10.0.0.1', 'tcp'],
      [T0 - 5, '2001:db8::1', 'udp'],
      [T0 + 1000, '10.0.0.1', 'tcp'],
      [T0, '10.0.0.1', 'tcp'],
      [T0 - 5, '2001:db8::1', 'udp'],
    ]);
    // The next batch has a table of its own: origins cached for the last one are looked up again.
    expect(w.appendMessage(m, 0, m.length, b)).toBe(true);
    const next = readEventsBatchBinary(w.finish(2, 6, 0).body, 'e').records;
    expect([next.length, next.sender(0), next.transport(0)]).toEqual([1, '2001:db8::1', 'udp']);
  });

  it('writes a sender the tenant would refuse (an IPv6 zone of any bytes, too long) as one it reads', () => {
    const w = new BatchWriter(960 * 1024);
    const m = Buffer.from('<13>hello');
    const zoned = `fe80::1%w\u00e9 l\u0001${'x'.repeat(80)}`;
    expect(w.appendMessage(m, 0, m.length, origin(zoned))).toBe(true);
    expect(w.appendMessage(m, 0, m.length, origin('10.0.0.9'))).toBe(true);
    const r = readEventsBatchBinary(w.finish(3, 2, 0).body, 'e').records;
    expect(r.sender(0)).toBe(`fe80::1%w??l?${'x'.repeat(51)}`);
    expect(r.sender(0)).toHaveLength(64);
    expect([r.length, r.sender(1)]).toEqual([2, '10.0.0.9']);
  });

  it('refuses a record past the limit or the record count, keeps one record always, and reuses buffers', () => {
    const w = new BatchWriter(1000);
    const o = origin();
    const m = Buffer.alloc(300, 'a');
    expect(w.appendMessage(m, 0, m.length, o)).toBe(true);
    expect(w.appendMessage(m, 0, m.length, o)).toBe(true);
    expect(w.appendMessage(m, 0, m.length, o)).toBe(true);
    expect(w.appendMessage(m, 0, m.length, o)).toBe(false);
    expect(w.records).toBe(3);
    const first = w.finish(1, 3, 0);
    expect(first.body.length).toBeLessThanOrEqual(1000);
    expect(readEventsBatchBinary(first.body, 'e').records.length).toBe(3);
    // Alone, a record larger than the limit still goes.
    const huge = Buffer.alloc(MAX_SYSLOG_MESSAGE_BYTES, 'h');
    expect(w.appendMessage(huge, 0, huge.length, o)).toBe(true);
    expect(readEventsBatchBinary(w.finish(2, 4, 0).body, 'e').records.text(0)).toHaveLength(MAX_SYSLOG_MESSAGE_BYTES);
    const full = new BatchWriter(960 * 1024);
    for (let i = 0; i < MAX_SYSLOG_BATCH_RECORDS; i++) expect(full.appendMessage(m, 0, 1, o)).toBe(true);
    expect(full.appendMessage(m, 0, 1, o)).toBe(false);
    // A batch of at least an eighth of its buffer stays where it was written, to be released after.
    const big = new BatchWriter(120 * 1024);
    const k = Buffer.alloc(5000, 'k');
    for (let i = 0; i < 4; i++) big.appendMessage(k, 0, k.length, o);
    const done = big.finish(3, 4, 0);
    expect(done.pooled).toBeDefined();
    const copy = Buffer.from(done.body);
    big.release(done.pooled!);
    for (let i = 0; i < 4; i++) big.appendMessage(k, 0, k.length, o);
    const again = big.finish(4, 8, 0);
    expect(again.pooled).toBe(done.pooled);
    expect(readEventsBatchBinary(copy, 'e').records.length).toBe(4);
  });

  it('writes the JSON args an older tenant reads, as JSON.stringify would, raw as messageText decodes the bytes', () => {
    const specials = [0, 1, 9, 10, 0x1f, 0x22, 0x5c, 0x7f, 0x80, 0xc3, 0xff];
    const msgs: Buffer[] = [Buffer.from('plain'), Buffer.alloc(0x10001, 'é'), Buffer.alloc(0)];
    for (const c of specials)
      for (let at = 0; at < 9; at++) {
        const m = Buffer.from('abcdefghijklm');
        m[at] = c;
        msgs.push(m);
      }
    for (let n = 0; n < 200; n++) {
      const m = randomBytes(1 + (n % 97));
      // Mostly printable, as syslog is, with the odd special or high byte.
      for (let i = 0; i < m.length; i++) if (m[i] % 4 !== 0) m[i] = 0x20 + (m[i] % 0x5f);
      msgs.push(m);
    }
    const origins = [origin('10.0.0.1'), origin('2001:db8::1', T0 + 7), origin('10.0.0.1', T0 + 9)];
    for (let pad = 0; pad < 4; pad++) {
      const w = new BatchWriter(960 * 1024);
      msgs.forEach((m, i) => {
        const src = Buffer.concat([randomBytes(pad), m, randomBytes(3)]);
        expect(w.appendMessage(src, pad, pad + m.length, origins[i % 3])).toBe(true);
      });
      const { body } = w.finish(7, 100, 2);
      const records = msgs.map((m, i) => {
        const o = origins[i % 3];
        return { receivedAt: o.receivedAt, sender: o.sender, transport: o.transport, raw: messageText(m) };
      });
      const want = JSON.stringify({ engine: 'eng-j', seq: 7, spool: { received: 100, dropped: 2 }, records });
      expect(jsonOfBatch(body, 'eng-j').toString()).toBe(want);
      expect(readEventsBatch(JSON.parse(want), 'eng-j').records).toHaveLength(msgs.length);
    }
    const empty = jsonOfBatch(new BatchWriter(1000).finish(8, 0, 0).body, 'e').toString();
    expect(empty).toBe('{"engine":"e","seq":8,"spool":{"received":0,"dropped":0},"records":[]}');
  });
});

describe('command head', () => {
  it('with the args after it, decodes as the Envelope of that command', () => {
    for (const [id, argsLen] of [
      [1, 0],
      [127, 5],
      [300, 200_000],
      [2 ** 40, 1_000_000],
    ]) {
      const args = Buffer.alloc(argsLen, 0x61);
      const deadline = Date.now() + 30_000;
      const env = decodeEnvelope(Buffer.concat([commandHead(id, 'events.batch', deadline, argsLen), args]), Infinity);
      expect(Number(env.id)).toBe(id);
      expect(env.command?.name).toBe('events.batch');
      expect(Number(env.command?.deadlineMs)).toBe(deadline);
      expect(Buffer.from(env.command?.args ?? []).equals(args)).toBe(true);
    }
  });
});
