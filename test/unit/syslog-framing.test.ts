/**
 * Syslog over TCP/TLS cut into messages (agent/engine/syslog/syslog-framing.ts, RFC 6587): newline and
 * octet-counted frames told apart per frame, messages split across chunks at every byte, oversized frames cut
 * with the stream kept in step, and a malformed octet count refused; plus the cut on a character boundary, the
 * tenant's reading of an engine's `events.batch` (agent/tunnel/events-batch.ts) and the `--syslog` listener specs
 * as the installer and agent.json take them (common/syslog-listen.ts). Pure: no I/O.
 */
import { describe, expect, it } from 'vitest';
import { SyslogFramer } from '../../agent/engine/syslog/syslog-framing.js';
import { readEventsBatch } from '../../agent/tunnel/events-batch.js';
import { MAX_SYSLOG_BATCH_RECORDS, MAX_SYSLOG_MESSAGE_BYTES, messageText } from '#common/syslog-record.js';
import { parseSyslogListens } from '#common/syslog-listen.js';
import { checkAgentConfig } from '#common/agent-dir.js';

const RFC3164 = '<34>Oct 11 22:14:15 mymachine su: su root failed for lonvick on /dev/pts/8';
const RFC5424 = '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3"] hi';

/** Every message framed from `chunks`, as text. */
function frame(chunks: (string | Buffer)[], max?: number): string[] {
  const out: string[] = [];
  const f = new SyslogFramer((raw) => out.push(raw.toString('utf8')), max);
  for (const c of chunks) f.push(typeof c === 'string' ? Buffer.from(c) : c);
  f.end();
  return out;
}
const counted = (m: string) => `${Buffer.byteLength(m)} ${m}`;

describe('framing', () => {
  it('reads newline-terminated frames, dropping a CR before the LF and skipping empty lines', () => {
    expect(frame([`${RFC3164}\n\n${RFC5424}\r\n`])).toEqual([RFC3164, RFC5424]);
  });

  it('reads octet-counted frames, whose messages may hold newlines', () => {
    const multi = `${RFC5424}\nsecond line`;
    expect(frame([counted(RFC3164) + counted(multi)])).toEqual([RFC3164, multi]);
  });

  it('tells the framings apart per frame, so a sender may mix them', () => {
    expect(frame([`${counted(RFC3164)}${RFC5424}\n${counted('<13>x')}`])).toEqual([RFC3164, RFC5424, '<13>x']);
  });

  it('gives the same messages however the stream is split, down to one byte per chunk', () => {
    const stream = Buffer.from(`${counted(RFC5424)}${RFC3164}\n${counted('<13>é ü')}<14>last\n`);
    const whole = frame([stream]);
    expect(whole).toEqual([RFC5424, RFC3164, '<13>é ü', '<14>last']);
    for (let cut = 1; cut < stream.length; cut++)
      expect(frame([stream.subarray(0, cut), stream.subarray(cut)])).toEqual(whole);
    expect(frame([...stream].map((b) => Buffer.of(b)))).toEqual(whole);
  });

  it('keeps a last newline frame without its newline when the connection ends, but not a short counted one', () => {
    expect(frame([`${RFC3164}\n<13>no newline`])).toEqual([RFC3164, '<13>no newline']);
    expect(frame([`${RFC3164}\n100 <13>short`])).toEqual([RFC3164]);
  });

  it('cuts an oversized frame at the limit and stays in step for the next one, in both framings', () => {
    const long = '<13>' + 'a'.repeat(100);
    expect(frame([`${long}\n<14>next\n`], 10)).toEqual([long.slice(0, 10), '<14>next']);
    expect(frame([`${counted(long)}${counted('<14>next')}`], 10)).toEqual([long.slice(0, 10), '<14>next']);
    const big = '<13>' + 'b'.repeat(MAX_SYSLOG_MESSAGE_BYTES * 2);
    const chunks = [Buffer.from(`${counted(big)}<14>after\n`)];
    const out = frame(chunks);
    expect(out.map((m) => m.length)).toEqual([MAX_SYSLOG_MESSAGE_BYTES, '<14>after'.length]);
  });

  it.each([
    ['a leading zero', '05 hello'],
    ['no space after the count', '12x<13>hello'],
    ['more than nine digits', '1234567890 <13>x'],
  ])('refuses a malformed octet count (%s) with ERR_SYSLOG_FRAME', (_why, text) => {
    const out: string[] = [];
    const f = new SyslogFramer((raw) => out.push(raw.toString()));
    expect(() => f.push(Buffer.from(`${RFC3164}\n${text}`))).toThrow(
      expect.objectContaining({ code: 'ERR_SYSLOG_FRAME' }),
    );
    expect(out).toEqual([RFC3164]); // what came before it was delivered
  });
});

describe('messageText', () => {
  it('cuts at the limit on a character boundary', () => {
    const raw = Buffer.from('ab€'); // € is 3 bytes: a cut at 4 would split it
    expect(messageText(raw, 3)).toBe('ab');
    expect(messageText(raw, 4)).toBe('ab');
    expect(messageText(raw, 5)).toBe('ab€');
    expect(messageText(Buffer.from('abcdef'), 4)).toBe('abcd');
  });
});

describe('events.batch as the tenant reads it', () => {
  const rec = { receivedAt: 1_700_000_000_000, sender: '10.0.0.1', transport: 'tcp', raw: RFC3164 };

  it("files the batch under the session's engine, not the name the batch claims; unknown fields are not checked", () => {
    const b = readEventsBatch({ engine: 'someone-else', seq: 7, records: [{ ...rec, extra: 1 }] }, 'eng1');
    // The pipeline reads only the four fields (what it stores is built from them alone).
    expect(b).toMatchObject({ engine: 'eng1', seq: 7, records: [rec] });
  });

  it.each([
    ['seq', { seq: -1, records: [] }],
    ['seq', { seq: 1.5, records: [] }],
    ['records', { seq: 1, records: 'x' }],
    ['records', { seq: 1, records: new Array(MAX_SYSLOG_BATCH_RECORDS + 1).fill(rec) }],
    ['records[0].transport', { seq: 1, records: [{ ...rec, transport: 'smtp' }] }],
    ['records[0].raw', { seq: 1, records: [{ ...rec, raw: 'x'.repeat(MAX_SYSLOG_MESSAGE_BYTES + 1) }] }],
    ['records[0].sender', { seq: 1, records: [{ ...rec, sender: 'x'.repeat(65) }] }],
    ['records[0].receivedAt', { seq: 1, records: [{ ...rec, receivedAt: 'now' }] }],
    // Past the largest Date: toISOString would throw in the tenant and the batch would be retried forever.
    ['records[0].receivedAt', { seq: 1, records: [{ ...rec, receivedAt: 8.64e15 + 1 }] }],
  ])('refuses a malformed batch, naming %s', (field, args) => {
    expect(() => readEventsBatch(args, 'eng1')).toThrow(expect.objectContaining({ code: 'ERR_EVENTS_BATCH', field }));
  });
});

describe('--syslog listener specs', () => {
  it('reads udp:, tcp: and tls: with an IP address or localhost, IPv6 in brackets, port 0 for any', () => {
    expect(parseSyslogListens(['udp:0.0.0.0:514', ' tcp:[::1]:6514 ', 'tls:localhost:0'])).toEqual([
      { transport: 'udp', host: '0.0.0.0', port: 514 },
      { transport: 'tcp', host: '::1', port: 6514 },
      { transport: 'tls', host: 'localhost', port: 0 },
    ]);
    // UDP and TCP ports are apart: the same number may serve both.
    expect(parseSyslogListens(['udp:127.0.0.1:514', 'tcp:127.0.0.1:514'])).toHaveLength(2);
  });

  it.each(['smtp:1.2.3.4:25', 'udp:1.2.3.4', 'tcp:syslog.example.com:514', 'tls:1.2.3.4:70000', 'udp'])(
    'refuses %s with ERR_BAD_SYSLOG naming the flag',
    (bad) => {
      expect(() => parseSyslogListens([bad])).toThrow(
        expect.objectContaining({
          code: 'ERR_BAD_SYSLOG',
          field: 'syslog',
          message: expect.stringContaining(`--syslog "${bad}"`),
        }),
      );
    },
  );

  it('refuses a port given twice for the same kind of socket', () => {
    expect(() => parseSyslogListens(['tcp:127.0.0.1:514', 'tls:127.0.0.1:514'])).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_SYSLOG' }),
    );
  });

  it("agent.json's syslog items are checked like the flag", () => {
    const base = { format: 1, kind: 'engine', name: 'e1', mainUrls: ['https://main.example:8443'] };
    expect(
      checkAgentConfig({ ...base, syslog: [{ transport: 'udp', host: '::', port: 514 }] }, 'f').syslog,
    ).toHaveLength(1);
    for (const syslog of [
      [{ transport: 'smtp', host: '::', port: 1 }],
      [{ transport: 'udp', host: 'a.example', port: 1 }],
    ])
      expect(() => checkAgentConfig({ ...base, syslog }, 'f')).toThrow(
        expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }),
      );
  });
});
