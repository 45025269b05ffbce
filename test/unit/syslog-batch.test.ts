/**
 * The spool's batch encoder (agent/engine/syslog/syslog-batch.ts): records written from framed bytes are exactly what
 * JSON.stringify writes for the record with messageText() of those bytes — ASCII, escapes at every alignment, UTF-8,
 * invalid UTF-8 and messages cut at the size limit — a batch's head lands before its records, a full batch refuses
 * the record that would take it past its limit, and a released buffer is filled again; the command head a batch is
 * sealed behind decodes, with the batch, as the Envelope protobufjs would. Pure: no I/O.
 */
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { BatchWriter, type SyslogOrigin } from '../../agent/engine/syslog/syslog-batch.js';
import { messageText } from '../../agent/engine/syslog/syslog-framing.js';
import { MAX_SYSLOG_MESSAGE_BYTES } from '#common/syslog-record.js';
import { decodeEnvelope } from '#common/codec.js';
import { commandHead } from '../../agent/tunnel/tunnel-session.js';

const origin = (): SyslogOrigin => ({ receivedAt: 1_765_000_000_123, sender: '10.1.2.3', transport: 'tcp' });
const HEAD = '{"engine":"e","seq":7,"records":[';

/** The batch the writer makes of `msgs` (each at a given offset in a larger buffer), and the one expected. */
function both(msgs: Buffer[], pad = 0): { got: string; want: string } {
  const w = new BatchWriter(960 * 1024);
  const o = origin();
  for (const m of msgs) {
    const src = Buffer.concat([randomBytes(pad), m, randomBytes(3)]);
    expect(w.appendMessage(src, pad, pad + m.length, o)).toBe(true);
  }
  const got = w.finish(HEAD).body.toString('utf8');
  const records = msgs.map((m) => ({ ...origin(), raw: messageText(m) }));
  return { got, want: `${HEAD}${records.map((r) => JSON.stringify(r)).join(',')}]}` };
}

describe('batch encoding', () => {
  it('writes ASCII messages as JSON.stringify would, at every alignment', () => {
    const m = Buffer.from('<134>1 2026-12-06T23:00:00.000Z web-01 app 42 - - login failed user=u1 src=10.0.0.1');
    for (let pad = 0; pad < 8; pad++) {
      const { got, want } = both([m, m.subarray(0, 5), m.subarray(3)], pad);
      expect(got).toBe(want);
    }
  });

  it('escapes control characters, quotes and backslashes wherever they are', () => {
    const specials = [0, 1, 8, 9, 10, 12, 13, 0x1f, 0x22, 0x5c, 0x7f];
    for (const c of specials)
      for (let at = 0; at < 12; at++) {
        const m = Buffer.from('abcdefghijklmnop');
        m[at] = c;
        for (let pad = 0; pad < 4; pad++) {
          const { got, want } = both([m], pad);
          expect(got).toBe(want);
          expect(JSON.parse(got).records[0].raw).toBe(messageText(m));
        }
      }
  });

  it('keeps valid UTF-8 as it is and decodes invalid UTF-8 as messageText does', () => {
    const msgs = [
      Buffer.from('überprüfung "fehlgeschlagen" für 用户 😀\tende'),
      Buffer.from([0x41, 0xff, 0x42, 0xc3, 0x28, 0xe2, 0x82, 0x43, 0xed, 0xa0, 0x80, 0x44]),
      Buffer.from([0xef, 0xbb, 0xbf, 0x3c, 0x31, 0x3e, 0x22]), // a BOM first
    ];
    for (let pad = 0; pad < 4; pad++) {
      const { got, want } = both(msgs, pad);
      expect(got).toBe(want);
    }
  });

  it('matches JSON.stringify on random bytes, and cuts messages at the size limit on a character boundary', () => {
    for (let n = 0; n < 200; n++) {
      const len = 1 + Math.floor(Math.random() * 300);
      const m = randomBytes(len);
      // Mostly printable, as syslog is, with the odd special or high byte.
      for (let i = 0; i < len; i++) if (m[i] % 4 !== 0) m[i] = 0x20 + (m[i] % 0x5f);
      const { got, want } = both([m], n % 5);
      expect(got).toBe(want);
    }
    const long = Buffer.alloc(MAX_SYSLOG_MESSAGE_BYTES + 3, 'é');
    const { got, want } = both([long, Buffer.from('x')]);
    expect(got).toBe(want);
    expect(Buffer.byteLength(JSON.parse(got).records[0].raw)).toBeLessThanOrEqual(MAX_SYSLOG_MESSAGE_BYTES);
  });

  it('refuses a record past the limit, keeps one record always, and fills a released buffer again', () => {
    const w = new BatchWriter(1000);
    const o = origin();
    const m = Buffer.alloc(300, 'a');
    expect(w.appendMessage(m, 0, m.length, o)).toBe(true);
    expect(w.appendMessage(m, 0, m.length, o)).toBe(true);
    expect(w.appendMessage(m, 0, m.length, o)).toBe(false);
    expect(w.records).toBe(2);
    const first = w.finish(HEAD);
    expect(JSON.parse(first.body.toString()).records).toHaveLength(2);
    const huge = JSON.stringify({ ...o, raw: 'x'.repeat(5000) });
    expect(w.appendJson(huge)).toBe(true); // alone, a record longer than the limit still goes
    expect(JSON.parse(w.finish(HEAD).body.toString()).records[0].raw).toHaveLength(5000);
    // A batch of at least an eighth of its buffer stays where it was written, to be released after.
    const big = new BatchWriter(4000);
    for (let i = 0; i < 3; i++) big.appendMessage(m, 0, m.length, o);
    const done = big.finish(HEAD);
    expect(done.pooled).toBeDefined();
    const text = done.body.toString();
    big.release(done.pooled!);
    for (let i = 0; i < 3; i++) big.appendMessage(Buffer.from(`next ${i}`.repeat(40)), 0, 240, o);
    const again = big.finish(HEAD);
    expect(again.pooled).toBe(done.pooled);
    expect(JSON.parse(text).records).toHaveLength(3);
    expect(JSON.parse(again.body.toString()).records).toHaveLength(3);
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
