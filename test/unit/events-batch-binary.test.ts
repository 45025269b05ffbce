/**
 * The binary events.batch (agent/tunnel/events-batch-binary.ts): golden bytes derived by hand from the layout in the
 * module's header; round trips of non-UTF-8 bytes, a message of exactly 64 KiB and an empty batch; and every field
 * of a malformed batch refused with ERR_EVENTS_BATCH naming it, before anything is read from the batch. Pure.
 */
import { describe, expect, it } from 'vitest';
import { BatchWriter, type SyslogOrigin } from '../../agent/engine/syslog/syslog-batch.js';
import { readEventsBatchBinary } from '../../agent/tunnel/events-batch-binary.js';
import { MAX_SYSLOG_BATCH_RECORDS, MAX_SYSLOG_MESSAGE_BYTES, messageText } from '#common/syslog-record.js';

const f64 = (v: number) => {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(v);
  return b.toString('hex');
};

function write(msgs: Buffer[], origins: SyslogOrigin[], seq = 5): Buffer {
  const w = new BatchWriter(960 * 1024);
  msgs.forEach((m, i) => expect(w.appendMessage(m, 0, m.length, origins[i % origins.length])).toBe(true));
  return Buffer.from(w.finish(seq, 9, 1).body);
}

const A: SyslogOrigin = { receivedAt: 1000, sender: '10.0.0.1', transport: 'tcp' };
const B: SyslogOrigin = { receivedAt: 1003, sender: '::1', transport: 'udp' };

describe('binary batch bytes', () => {
  it('are the layout of the header, field by field', () => {
    const hex = write([Buffer.from('hi'), Buffer.from('yo!')], [A, B]).toString('hex');
    expect(hex).toBe(
      '50534201' + // 'PSB', version 1
        '02000000' + // 2 records
        '02000000' + // 2 origins
        '05000000' + // 5 message bytes
        f64(5) + // seq
        f64(9) + // spool received
        f64(1) + // spool dropped
        f64(1000) + // base time: the first record's
        '6869' + // 'hi'
        '796f21' + // 'yo!'
        '0208' +
        Buffer.from('10.0.0.1').toString('hex') + // tcp, 8 bytes
        '0103' +
        Buffer.from('::1').toString('hex') + // udp, 3 bytes
        '00000000' +
        '03000000' + // time offsets 0, +3
        '0000' +
        '0100' + // origin indexes
        '02000000' +
        '03000000', // lengths
    );
  });

  it('round-trip non-UTF-8 bytes, a message of exactly 64 KiB, and an empty batch', () => {
    const bytes = [Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x22]), Buffer.alloc(MAX_SYSLOG_MESSAGE_BYTES, 0x61)];
    const b = readEventsBatchBinary(write(bytes, [A]), 'eng1');
    expect(b).toMatchObject({ engine: 'eng1', seq: 5, spool: { received: 9, dropped: 1 } });
    expect(b.records.bytes(0).equals(bytes[0])).toBe(true);
    expect(b.records.text(0)).toBe(messageText(bytes[0]));
    expect(b.records.bytes(1).length).toBe(MAX_SYSLOG_MESSAGE_BYTES);
    expect(b.records.text(1)).toBe('a'.repeat(MAX_SYSLOG_MESSAGE_BYTES));
    const empty = readEventsBatchBinary(new BatchWriter(1000).finish(6, 0, 0).body, 'eng1');
    expect([empty.seq, empty.records.length]).toEqual([6, 0]);
  });
});

describe('a malformed binary batch', () => {
  const good = () => write([Buffer.from('<13>one'), Buffer.from('<13>two'), Buffer.from('<13>three')], [A, B]);
  // Offsets in good(): messages 48..71 (23 bytes), origins 71..86, columns 86: times, +12 origins, +18 lengths.
  const M = 48 + 23;
  const COLS = M + 2 + 8 + 2 + 3;
  const cases: [string, (b: Buffer) => Buffer][] = [
    ['head', (b) => b.subarray(0, 47)],
    ['magic', (b) => ((b[0] = 0x7a), b)],
    ['version', (b) => ((b[3] = 2), b)],
    ['records', (b) => (b.writeUInt32LE(MAX_SYSLOG_BATCH_RECORDS + 1, 4), b)],
    ['origins', (b) => (b.writeUInt32LE(0, 8), b)],
    ['origins', (b) => (b.writeUInt32LE(4, 8), b)],
    ['messageBytes', (b) => (b.writeUInt32LE(b.length, 12), b)],
    ['seq', (b) => (b.writeDoubleLE(1.5, 16), b)],
    ['seq', (b) => (b.writeDoubleLE(NaN, 16), b)],
    ['spool.received', (b) => (b.writeDoubleLE(-1, 24), b)],
    ['spool.dropped', (b) => (b.writeDoubleLE(2 ** 60, 32), b)],
    ['baseTime', (b) => (b.writeDoubleLE(8.64e15 + 1, 40), b)],
    ['origins[0].transport', (b) => ((b[M] = 9), b)],
    ['origins[0].sender', (b) => ((b[M + 1] = 65), b)],
    ['origins[0].sender', (b) => ((b[M + 2] = 0x20), b)],
    ['origins[1].sender', (b) => ((b[M + 11] = 200), b)],
    ['columns', (b) => b.subarray(0, b.length - 1)],
    ['columns', (b) => Buffer.concat([b, Buffer.of(0)])],
    ['records[0].receivedAt', (b) => (b.writeInt32LE(-1001, COLS), b)],
    ['records[1].origin', (b) => (b.writeUInt16LE(2, COLS + 12 + 2), b)],
    ['records[0].length', (b) => (b.writeUInt32LE(MAX_SYSLOG_MESSAGE_BYTES + 1, COLS + 18), b)],
    ['records[1].length', (b) => (b.writeUInt32LE(17, COLS + 18 + 4), b)],
    ['messageBytes', (b) => (b.writeUInt32LE(8, COLS + 18 + 8), b)],
  ];
  it('is as the offsets above say', () => {
    const b = good();
    expect(b.toString('latin1', M + 2, M + 10)).toBe('10.0.0.1');
    expect(b.readUInt32LE(COLS + 18 + 8)).toBe(9);
    expect(COLS + 30).toBe(b.length);
  });
  it.each(cases)('is refused whole, naming %s', (field, spoil) => {
    expect(() => readEventsBatchBinary(spoil(good()), 'eng1')).toThrow(
      expect.objectContaining({ code: 'ERR_EVENTS_BATCH', field }),
    );
  });
});
