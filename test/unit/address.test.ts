/**
 * The one address grammar (common/address.ts): HOST:PORT to listen on and to dial, allow rules, bare
 * ports, and how each is written back. Tables of accepted values with their parts, and of refused values
 * with the reason the user is told; then the refusals every caller throws. Pure: no I/O.
 */
import { describe, expect, it } from 'vitest';
import { BadParameterError } from '#common/errors.js';
import { checkAgentConfig } from '#common/agent-dir.js';
import {
  formatHostPort,
  parseAllowRule,
  parseHostPort,
  parseListenSetting,
  parsePort,
  readAllowRule,
  readHostPort,
  type AddressForm,
  type AddressSource,
  type AllowRule,
  type HostPort,
} from '#common/address.js';

const LABEL_63 = 'a'.repeat(63);
/** The longest name: three labels of 63, one of 61 and three dots, 253 characters. */
const NAME_253 = `${LABEL_63}.${LABEL_63}.${LABEL_63}.${'b'.repeat(61)}`;

/** Accepted HOST:PORT, per form: text → host (as written, IPv6 without brackets), family, port. */
const GOOD: Record<AddressForm, [string, string, 0 | 4 | 6, number][]> = {
  listen: [
    ['127.0.0.1:0', '127.0.0.1', 4, 0],
    ['0.0.0.0:65535', '0.0.0.0', 4, 65535],
    ['10.1.2.3:1', '10.1.2.3', 4, 1],
    ['[::1]:7443', '::1', 6, 7443],
    ['[::]:0', '::', 6, 0],
    ['[fd00::1]:65535', 'fd00::1', 6, 65535],
    ['[::ffff:127.0.0.1]:80', '::ffff:127.0.0.1', 6, 80],
    ['localhost:7443', 'localhost', 0, 7443],
    ['127.0.0.1:08080', '127.0.0.1', 4, 8080],
  ],
  dial: [
    ['gw.example.net:7443', 'gw.example.net', 0, 7443],
    ['localhost:1', 'localhost', 0, 1],
    ['a-b.c:65535', 'a-b.c', 0, 65535],
    ['Mail.Corp:25', 'Mail.Corp', 0, 25],
    ['host.123:22', 'host.123', 0, 22],
    ['dc_01.corp.local:389', 'dc_01.corp.local', 0, 389],
    // An absolute name (trailing dot), as resolvers and older configs write it.
    ['mail.corp.:25', 'mail.corp.', 0, 25],
    [`${LABEL_63}.example:1`, `${LABEL_63}.example`, 0, 1],
    [`${NAME_253}:1`, NAME_253, 0, 1],
    ['203.0.113.7:443', '203.0.113.7', 4, 443],
    ['0.0.0.0:7443', '0.0.0.0', 4, 7443],
    ['[2001:db8::7]:7443', '2001:db8::7', 6, 7443],
    ['[2001:DB8::1.2.3.4]:1', '2001:DB8::1.2.3.4', 6, 1],
  ],
};

/** Refused HOST:PORT, per form: text → a piece of the reason. */
const BAD: Record<AddressForm, [string, string][]> = {
  listen: [
    ['', 'empty'],
    [' 127.0.0.1:1', 'whitespace'],
    ['127.0.0.1:1 ', 'whitespace'],
    ['127.0.0.1 :1', 'whitespace'],
    ['127.0.0.1', 'no ":PORT"'],
    ['7443', 'no ":PORT"'],
    ['127.0.0.1:', 'no port'],
    ['127.0.0.1:65536', 'out of range (0-65535)'],
    ['127.0.0.1:000080', 'out of range'],
    ['127.0.0.1:-1', 'not a number'],
    ['127.0.0.1:80x', 'not a number'],
    ['127.0.0.1:1:2', 'more than one ":"'],
    [':80', 'no host'],
    ['gw.example.net:7443', 'not an IP address'],
    ['LOCALHOST:80', 'not an IP address'],
    ['300.1.1.1:7443', 'not an IP address'],
    ['::1:7443', 'brackets'],
    ['[::1:7443', 'closing "]"'],
    ['[::1]7443', 'no ":PORT" after "[::1]"'],
    ['[::1]:', 'no port'],
    ['[1.2.3.4]:7443', 'not an IPv6 address'],
    ['[]:7443', 'not an IPv6 address'],
    ['[fe80::1%eth0]:7443', 'zone id'],
    ['fe80::1%eth0:7443', 'brackets'],
  ],
  dial: [
    ['gw.example.net', 'no ":PORT"'],
    ['gw.example.net:0', 'out of range (1-65535)'],
    ['gw.example.net:65536', 'out of range (1-65535)'],
    ['gw.example.net:70000', 'out of range'],
    ['-gw.example:7443', 'neither an IP address nor a DNS name'],
    ['gw-.example:7443', 'neither'],
    ['gw..example:7443', 'neither'],
    ['.gw.example:7443', 'neither'],
    ['a b:1', 'whitespace'],
    [`${'a'.repeat(64)}.example:1`, 'neither'],
    [`${NAME_253}c:1`, 'neither'],
    ['1.2.3.999:7443', 'neither'],
    ['01.2.3.4:7443', 'neither'],
    ['off', 'no ":PORT"'],
    ['[gw]:7443', 'not an IPv6 address'],
    ['[fe80::1%25eth0]:22', 'zone id'],
    ['2001:db8::7:7443', 'brackets'],
    ['', 'empty'],
  ],
};

describe('HOST:PORT', () => {
  for (const form of ['listen', 'dial'] as const) {
    it(`accepts every ${form} form in the table, in parts, and writes each back as it was given`, () => {
      for (const [text, host, family, port] of GOOD[form]) {
        expect(readHostPort(text, form), text).toEqual({ host, family, port });
        if (!/:0\d/.test(text)) expect(formatHostPort(host, port), text).toBe(text);
      }
    });

    it(`refuses every bad ${form} value in the table and says why`, () => {
      for (const [text, why] of BAD[form]) {
        const r = readHostPort(text, form);
        expect(r, text).toHaveProperty('problem');
        expect((r as { problem: string }).problem, text).toContain(why);
      }
    });
  }

  it('tells listen from dial: a name only dials, port 0 only listens', () => {
    expect(readHostPort('gw.example.net:7443', 'listen')).toHaveProperty('problem');
    expect(readHostPort('127.0.0.1:0', 'dial')).toHaveProperty('problem');
    expect(readHostPort('127.0.0.1:0', 'listen')).toEqual({ host: '127.0.0.1', family: 4, port: 0 });
  });

  it('writes an IPv6 host in brackets and anything else as it is', () => {
    expect(formatHostPort('::1', 80)).toBe('[::1]:80');
    expect(formatHostPort('2001:db8::1', 7443)).toBe('[2001:db8::1]:7443');
    expect(formatHostPort('127.0.0.1', 0)).toBe('127.0.0.1:0');
    expect(formatHostPort('gw.example.net', 7443)).toBe('gw.example.net:7443');
  });
});

/** Accepted allow rules: text → the rule's parts (text as written, trimmed). */
const GOOD_RULES: [string, Omit<AllowRule, 'text'>][] = [
  ['10.0.0.0/24:389', { cidr: { addr: '10.0.0.0', bits: 24, family: 'ipv4' }, from: 389, to: 389 }],
  ['192.168.1.5:1000-2000', { cidr: { addr: '192.168.1.5', bits: 32, family: 'ipv4' }, from: 1000, to: 2000 }],
  ['10.1.2.3', { cidr: { addr: '10.1.2.3', bits: 32, family: 'ipv4' }, from: 1, to: 65535 }],
  ['0.0.0.0/0', { cidr: { addr: '0.0.0.0', bits: 0, family: 'ipv4' }, from: 1, to: 65535 }],
  ['10.0.0.1:65535', { cidr: { addr: '10.0.0.1', bits: 32, family: 'ipv4' }, from: 65535, to: 65535 }],
  ['10.0.0.0/8:1-1', { cidr: { addr: '10.0.0.0', bits: 8, family: 'ipv4' }, from: 1, to: 1 }],
  ['[fd00::1]:22', { cidr: { addr: 'fd00::1', bits: 128, family: 'ipv6' }, from: 22, to: 22 }],
  ['[fd00::]/64:443', { cidr: { addr: 'fd00::', bits: 64, family: 'ipv6' }, from: 443, to: 443 }],
  ['[::]/0', { cidr: { addr: '::', bits: 0, family: 'ipv6' }, from: 1, to: 65535 }],
  ['[::ffff:10.0.0.5]/128:80-81', { cidr: { addr: '::ffff:10.0.0.5', bits: 128, family: 'ipv6' }, from: 80, to: 81 }],
  ['mail.corp:25', { host: 'mail.corp', from: 25, to: 25 }],
  ['ad.corp', { host: 'ad.corp', from: 1, to: 65535 }],
  ['localhost:5432', { host: 'localhost', from: 5432, to: 5432 }],
];

/** Refused allow rules: text → a piece of the reason. */
const BAD_RULES: [string, string][] = [
  ['', 'empty'],
  ['   ', 'empty'],
  ['a b', 'whitespace'],
  ['10.0.0.0/33', 'prefix length "/33" is not 0-32'],
  ['[fd00::1]/129', 'prefix length "/129" is not 0-128'],
  ['10.0.0.0/', 'prefix length "/" is not'],
  ['10.0.0.0/-1', 'prefix length'],
  ['ad.corp/24', 'follows an IP address'],
  ['x:70000', 'out of range (1-65535)'],
  ['host:0', 'out of range (1-65535)'],
  ['1.2.3.4:1-65536', 'out of range'],
  ['1.2.3.4:20-10', 'reversed (write 10-20)'],
  ['1.2.3.4:1-', 'neither PORT nor PORT-PORT'],
  ['1.2.3.4:-5', 'neither PORT nor PORT-PORT'],
  ['1.2.3.4:http', 'neither PORT nor PORT-PORT'],
  ['x:', 'no port'],
  ['a:1:2', 'more than one ":"'],
  ['fd00::1', 'more than one ":"'],
  ['[fd00::1', 'closing "]"'],
  ['[fd00::/64]', 'not an IPv6 address'],
  ['[fe80::1%eth0]:22', 'zone id'],
  ['[10.0.0.1]:22', 'not an IPv6 address'],
  ['300.0.0.0/8', 'follows an IP address'],
  [':22', 'no address or name'],
];

describe('allow rules (CIDR[:PORT|PORT-PORT] or HOST[:PORT|PORT-PORT])', () => {
  it('reads every rule in the table into its network or name and its ports', () => {
    for (const [text, parts] of GOOD_RULES) expect(readAllowRule(text), text).toEqual({ text, ...parts });
  });

  it('ignores whitespace around a rule, and keeps the rule as written', () => {
    expect(readAllowRule('  10.0.0.0/8:22 ')).toMatchObject({ text: '10.0.0.0/8:22', from: 22 });
    expect(readAllowRule('Mail.Corp')).toMatchObject({ text: 'Mail.Corp', host: 'Mail.Corp' });
  });

  it('refuses every bad rule in the table and says why', () => {
    for (const [text, why] of BAD_RULES) {
      const r = readAllowRule(text);
      expect(r, text).toHaveProperty('problem');
      expect((r as { problem: string }).problem, text).toContain(why);
    }
  });
});

describe('a bare port', () => {
  it('takes decimal digits in range: 0 to listen, 1 to dial', () => {
    const at: AddressSource = { code: 'ERR_BAD_PORT', field: 'port', label: '--port' };
    for (const [text, port] of [
      ['0', 0],
      ['8443', 8443],
      ['65535', 65535],
      ['080', 80],
    ] as const)
      expect(parsePort(text, 'listen', at), text).toBe(port);
    for (const bad of ['', ' 80', '80 ', '65536', '-1', '0x50', '1e3', '80.0', '000080']) {
      expect(() => parsePort(bad, 'listen', at), bad).toThrow(BadParameterError);
    }
    expect(() => parsePort('0', 'dial', at)).toThrow(/out of range \(1-65535\)/);
  });
});

describe('refusals', () => {
  /** Runs `fn`, expecting a BadParameterError; returns it. */
  const refusal = (fn: () => unknown): BadParameterError => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(BadParameterError);
      return e as BadParameterError;
    }
    throw new Error('no refusal');
  };

  it("carry the caller's code and field, quote the value, say what is wrong and show a good value", () => {
    const e = refusal(() =>
      parseHostPort('gw.example.net:0', 'dial', {
        code: 'ERR_BAD_ENGINE_ADVERTISE',
        field: 'engineAdvertise',
        label: '--engine-advertise',
        example: 'gw.example.net:7443',
      }),
    );
    expect(e).toMatchObject({ code: 'ERR_BAD_ENGINE_ADVERTISE', field: 'engineAdvertise', category: 'bad-parameter' });
    expect(e.message).toBe(
      '--engine-advertise "gw.example.net:0": port 0 is out of range (1-65535); expected HOST:PORT with an IP address or DNS name and a port 1-65535, e.g. gw.example.net:7443',
    );
  });

  it('name the field itself when the caller gives no label, with a default example per form', () => {
    const e = refusal(() => parseHostPort('0.0.0.0:99999', 'listen', { code: 'ERR_BAD_LISTEN', field: 'listen' }));
    expect(e.message).toBe(
      'listen "0.0.0.0:99999": port 99999 is out of range (0-65535); expected ADDR:PORT with an IP address or localhost (port 0 = any free one), e.g. 127.0.0.1:7443',
    );
    expect(e.field).toBe('listen');
  });

  it('for a listen setting, accept "off" and mention it', () => {
    const at: AddressSource = { code: 'ERR_BAD_ENGINE_LISTEN', field: 'engineListen', label: '--engine-listen' };
    expect(parseListenSetting('off', at)).toBe('off');
    expect(parseListenSetting('[::]:7443', at)).toEqual({ host: '::', family: 6, port: 7443 } satisfies HostPort);
    for (const bad of ['OFF', 'on', ''])
      expect(refusal(() => parseListenSetting(bad, at)).message, bad).toContain('or "off"');
  });

  it('for an allow rule, show the two shapes a rule takes', () => {
    const e = refusal(() =>
      parseAllowRule(' 10.0.0.0/33 ', { code: 'ERR_BAD_ALLOW', field: 'allow', label: '--allow' }),
    );
    expect(e).toMatchObject({ code: 'ERR_BAD_ALLOW', field: 'allow' });
    expect(e.message).toMatch(
      /^--allow "10\.0\.0\.0\/33": prefix length "\/33" is not 0-32; expected CIDR\[:PORT\|PORT-PORT\] or HOST\[:PORT\|PORT-PORT\], e\.g\. /,
    );
  });

  it('in agent.json, every bad address at once, each naming its key and the form expected', () => {
    const raw = {
      format: 1,
      kind: 'host',
      name: 'h1',
      mainUrl: 'https://main:8443',
      engineListen: 'gw.example.net:7443',
      engineAdvertise: 'gw.example.net:0',
      allow: ['10.0.0.0/8', '10.0.0.0/33'],
    };
    let e: BadParameterError | undefined;
    try {
      checkAgentConfig(raw, 'agent.json');
    } catch (x) {
      e = x as BadParameterError;
    }
    expect(e).toMatchObject({ code: 'ERR_CONFIG_INVALID' });
    expect(e!.message).toContain(
      '/engineListen must be ADDR:PORT with an IP address or localhost (port 0 = any free one) or "off"',
    );
    expect(e!.message).toContain('/engineAdvertise must be HOST:PORT with an IP address or DNS name');
    expect(e!.message).toContain('/allow/1 must be CIDR[:PORT|PORT-PORT] or HOST[:PORT|PORT-PORT]');
    expect(e!.message).not.toContain('/allow/0');
    expect(
      checkAgentConfig(
        { ...raw, engineListen: 'off', engineAdvertise: '[2001:db8::7]:7443', allow: ['10.0.0.0/8'] },
        'agent.json',
      ),
    ).toMatchObject({ engineListen: 'off' });
  });
});
