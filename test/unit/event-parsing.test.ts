/**
 * The tenant's syslog parsing (agent/tenant/events/): RFC 5424 and RFC 3164 headers as util-linux `logger` sends
 * them (captured from logger 2.38 with strace), rsyslog's ISO variant, headerless lines; CEF with its escapes,
 * LEEF 1.0 (tab) and 2.0 (its own delimiter, as a character or in hex), key=value with quotes; and the mapping of
 * src/dst/spt/dpt and their aliases (CEF csN by label) to the normalised fields.
 */
import { describe, expect, it } from 'vitest';
import { MAX_PROPERTY_REGEX } from '#common/events.js';
import { headerHost, parseSyslogHeader } from '../../agent/tenant/events/syslog-header.js';
import { parseEventBody, MAX_FIELDS } from '../../agent/tenant/events/event-body.js';
import { compileProperty, propertyValue, PROPERTY_TEXT_CHARS } from '../../agent/tenant/events/event-config.js';
import { propertyMatcher } from '../../agent/tenant/events/property-matcher.js';

const RECEIVED = Date.parse('2026-12-06T23:30:00Z');

describe('syslog headers', () => {
  it('names the host ingest reads (headerHost) as the whole parse does, quick path or not', () => {
    const lines = [
      '<13>1 2026-12-06T23:26:15Z vm app - - - hello',
      '<191>1 - web-01 app 42 - - x',
      '<0>1 - - app - - - nil host',
      '<01>1 - lead-zero app - - - x',
      '<192>1 - too-high app - - - x',
      '<1234>1 - four-digits app - - - x',
      '<>1 - empty app - - - x',
      '<1a>1 - letters app - - - x',
      '<13>2 - version-2 app - - - x',
      '<13>1 - ',
      '<13>1',
      '<134>Dec  6 23:26:15 fw1 app: bsd',
      'no header at all',
      '',
    ];
    for (const raw of lines)
      expect([raw, headerHost(raw, RECEIVED)]).toEqual([raw, parseSyslogHeader(raw, RECEIVED).host]);
  });

  it('reads logger’s default RFC 5424 line, structured data included', () => {
    const raw =
      '<13>1 2026-12-06T23:26:15.536201+00:00 vm myapp - - [timeQuality tzKnown="1" isSynced="0"] hello src=10.0.0.1';
    expect(parseSyslogHeader(raw, RECEIVED)).toEqual({
      facility: 1,
      severity: 5,
      time: Date.parse('2026-12-06T23:26:15.536Z'),
      host: 'vm',
      app: 'myapp',
      structuredData: '[timeQuality tzKnown="1" isSynced="0"]',
      message: 'hello src=10.0.0.1',
    });
  });

  it('reads RFC 5424 with NIL fields, a procid and msgid, a ] escaped in SD, and a BOM', () => {
    const raw = '<165>1 2026-12-06T22:14:15.003Z mymachine.example.com evntslog 42 ID47 [ex@1 a="x\\]y"] \uFEFFhi';
    const h = parseSyslogHeader(raw, RECEIVED);
    expect(h).toMatchObject({ facility: 20, severity: 5, host: 'mymachine.example.com', app: 'evntslog' });
    expect(h).toMatchObject({ procId: '42', msgId: 'ID47', structuredData: '[ex@1 a="x\\]y"]', message: 'hi' });
    const nil = parseSyslogHeader('<13>1 - - - - - - just text', RECEIVED);
    expect(nil).toEqual({ facility: 1, severity: 5, message: 'just text' });
  });

  it('reads logger --rfc3164: BSD time in the year of receipt, host, tag', () => {
    const h = parseSyslogHeader('<36>Dec  6 23:26:15 vm myapp: hello', RECEIVED);
    expect(h).toEqual({
      facility: 4,
      severity: 4,
      time: Date.parse('2026-12-06T23:26:15Z'),
      host: 'vm',
      app: 'myapp',
      message: 'hello',
    });
    expect(parseSyslogHeader('<30>Oct 11 22:14:15 host sshd[4321]: Accepted', RECEIVED)).toMatchObject({
      app: 'sshd',
      procId: '4321',
      message: 'Accepted',
    });
  });

  it('puts a December line received in early January in the year before', () => {
    const jan = Date.parse('2027-01-01T00:00:05Z');
    expect(parseSyslogHeader('<13>Dec 31 23:59:59 h a: x', jan).time).toBe(Date.parse('2026-12-31T23:59:59Z'));
  });

  it('reads the ISO variant, a line without PRI, and leaves a CEF body whole', () => {
    const iso = parseSyslogHeader('<14>2026-12-06T20:00:00.123+01:00 fw1 kernel: drop', RECEIVED);
    expect(iso).toMatchObject({ time: Date.parse('2026-12-06T19:00:00.123Z'), host: 'fw1', app: 'kernel' });
    expect(parseSyslogHeader('no header at all', RECEIVED)).toEqual({ message: 'no header at all' });
    const cef = parseSyslogHeader('<134>Dec  6 23:26:15 fw1 CEF:0|A|B|1|2|n|3|src=1.2.3.4', RECEIVED);
    expect(cef).toMatchObject({ host: 'fw1', message: 'CEF:0|A|B|1|2|n|3|src=1.2.3.4' });
    expect(cef.app).toBeUndefined();
    expect(parseSyslogHeader('<999>x', RECEIVED)).toEqual({ message: '<999>x' });
  });
});

describe('message bodies', () => {
  it('reads CEF with escaped pipes in the header and escaped = and \\ in the extension', () => {
    const b = parseEventBody(
      'CEF:0|Acme|FW|1.0|100|Blocked \\| pipe|5|src=10.1.1.1 dst=2001:db8::1 spt=1234 dpt=443 ' +
        'msg=a b\\=c \\\\ d cs2=lab cs2Label=flowSource cn1=12 cn1Label=vlan',
    );
    expect(b.format).toBe('cef');
    expect(b.fields).toMatchObject({
      deviceVendor: 'Acme',
      name: 'Blocked | pipe',
      cefSeverity: '5',
      msg: 'a b=c \\ d',
    });
    expect(b).toMatchObject({ sourceAddress: '10.1.1.1', destinationAddress: '2001:db8::1' });
    expect(b).toMatchObject({ sourcePort: 1234, destinationPort: 443, vlan: 12, flowSource: 'lab' });
  });

  it('reads LEEF 1.0 with tabs, and 1.0 with spaces as senders often send it', () => {
    const t = parseEventBody('LEEF:1.0|Microsoft|MSExchange|4.0 SP1|15345|src=192.0.2.1\tdst=172.50.123.1\tsrcPort=81');
    expect(t).toMatchObject({ format: 'leef', sourceAddress: '192.0.2.1', destinationAddress: '172.50.123.1' });
    expect(t.fields).toMatchObject({ vendor: 'Microsoft', version: '4.0 SP1', eventId: '15345' });
    const s = parseEventBody('LEEF:1.0|V|P|1|E|src=192.0.2.1 dstPort=22 usrName=joe black');
    expect(s).toMatchObject({ sourceAddress: '192.0.2.1', destinationPort: 22 });
    expect(s.fields.usrName).toBe('joe black');
  });

  it('reads LEEF 2.0 with a character delimiter, a hex one, and none', () => {
    const caret = parseEventBody('LEEF:2.0|Lancope|StealthWatch|1.0|41|^|src=10.0.1.8^dst=10.0.0.5^dstPort=21');
    expect(caret).toMatchObject({ sourceAddress: '10.0.1.8', destinationAddress: '10.0.0.5', destinationPort: 21 });
    const hex = parseEventBody('LEEF:2.0|V|P|1|E|0x7C|src=10.0.0.1|dst=10.0.0.2');
    expect(hex).toMatchObject({ sourceAddress: '10.0.0.1', destinationAddress: '10.0.0.2' });
    const x = parseEventBody('LEEF:2.0|V|P|1|E|x5E|src=10.0.0.3^spt=9');
    expect(x).toMatchObject({ sourceAddress: '10.0.0.3', sourcePort: 9 });
    const none = parseEventBody('LEEF:2.0|V|P|1|E||src=10.0.0.4\tdst=10.0.0.5');
    expect(none).toMatchObject({ sourceAddress: '10.0.0.4', destinationAddress: '10.0.0.5' });
  });

  it('reads key=value with double and single quotes, escapes, and trailing commas', () => {
    const b = parseEventBody('login user="bob \\"the\\" smith" src_ip=192.168.1.5, action=\'ok now\' dport=8080;');
    expect(b.format).toBe('kv');
    expect(b.fields).toEqual({ user: 'bob "the" smith', src_ip: '192.168.1.5', action: 'ok now', dport: '8080' });
    expect(b).toMatchObject({ sourceAddress: '192.168.1.5', destinationPort: 8080 });
  });

  it('keeps what is not an address or a port out of the normalised fields; plain text stays text', () => {
    const b = parseEventBody('src=not-an-ip dst=10.0.0.300 spt=70000 dpt=-1 vlan=5000');
    expect(b.sourceAddress ?? b.destinationAddress ?? b.sourcePort ?? b.destinationPort ?? b.vlan).toBeUndefined();
    expect(parseEventBody('just a sentence.')).toEqual({ format: 'text', fields: {} });
  });

  it('keeps at most MAX_FIELDS fields, the first of a repeated key', () => {
    const many = Array.from({ length: 200 }, (_, i) => `k${i}=${i}`).join(' ');
    expect(Object.keys(parseEventBody(`src=10.0.0.1 src=10.0.0.2 ${many}`).fields)).toHaveLength(MAX_FIELDS);
    expect(parseEventBody('src=10.0.0.1 src=10.0.0.2').sourceAddress).toBe('10.0.0.1');
  });
});

const matcher = (src: string) => propertyMatcher(src, compileProperty(src));
/** The same pattern on re2js alone (a pattern the native path would not take). */
const onRe2 = (src: string) => propertyMatcher('[:', compileProperty(src));

describe('custom property regexes', () => {
  it('refuses what RE2 does not support, naming regex; reads a capture group, else the match', () => {
    for (const re of ['(a)\\1', 'a(?=b)', '(?<!x)a', '(unclosed', 'x'.repeat(MAX_PROPERTY_REGEX + 1)])
      expect(() => compileProperty(re)).toThrow(
        expect.objectContaining({ code: 'ERR_PROPERTY_REGEX', field: 'regex' }),
      );
    expect(() => compileProperty('a(?=b)')).toThrow(/RE2 syntax/);
    expect(propertyValue(matcher('cust=(\\w+)'), 'x cust=acme y')).toBe('acme');
    expect(propertyValue(matcher('acme|globex'), 'for globex')).toBe('globex');
    expect(propertyValue(matcher('cust=(\\w+)'), `${'x'.repeat(PROPERTY_TEXT_CHARS)} cust=late`)).toBe(undefined);
  });

  it('runs a pattern that backtracks for seconds in a JS engine in linear time (100 crafted 4 KiB messages)', () => {
    const re = matcher('user=(.*) src=(.*) dst=(.*) act=(\\w+)');
    const crafted = 'user= src= dst= '.repeat(256);
    expect(crafted).toHaveLength(PROPERTY_TEXT_CHARS);
    for (let i = 0; i < 100; i++) expect(propertyValue(re, crafted)).toBeUndefined();
    expect(propertyValue(re, 'user=bob src=1.2.3.4 dst=5.6.7.8 act=deny')).toBe('bob');
  });

  it('answers the same on V8 and on re2js, and leaves RE2-only syntax to re2js', () => {
    const texts = [
      'user=bob src=10.0.0.1',
      'a login by Alice at 10:42',
      'cust="acme corp" x',
      'CEF:0|v|p|1|sig|n|5|',
      '',
    ];
    const patterns = ['user=(\\w+)', 'src=([\\d.]+)', '(?:alice|bob)', 'cust="([^"]*)"', '^CEF:0\\|([^|]+)', 'x*?'];
    for (const p of patterns)
      for (const t of texts) expect([p, t, propertyValue(matcher(p), t)]).toEqual([p, t, propertyValue(onRe2(p), t)]);
    // Where the engines' syntax or text handling differ (found in review): `\s`/`\S`/`.` on non-ASCII or `\r`, classes
    // opening with `]`, astral characters, captures in repeated groups.
    const tricky: [string, string][] = [
      ['user=(\\S+)', 'user=bob\u00a0x y'],
      ['\\s(\\w+)', '\u3000word'],
      ['a(.)b', 'a\rb'],
      ['user=(.*)', 'user=bob\u2028tail'],
      ['[^]a]+', 'xa]'],
      ['x([]a])', 'xa'],
      ['id=(.{2})', 'id=\u{1F600}z'],
      ['(?:(a)|b)+', 'ab'],
      ['k=(\\s?\\S+)', 'k=\vv'],
      ['id=(.)', 'id=\ud800z'],
      ['x(.)', 'x\u0080'],
    ];
    for (const [p, t] of tricky)
      expect([p, t, propertyValue(matcher(p), t)]).toEqual([p, t, propertyValue(onRe2(p), t)]);
    // A POSIX class means digits to RE2 and a set of characters to JavaScript: it must run on re2js.
    expect(propertyValue(matcher('[[:digit:]]+'), 'abc 123')).toBe('123');
    expect(propertyValue(matcher('(?i)ALICE'), 'by alice')).toBe('alice');
  });
});
