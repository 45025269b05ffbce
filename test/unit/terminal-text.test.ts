/**
 * Output escaping (common/terminal-text.ts and its use in common/cli-output.ts): every class of character
 * a terminal acts on or reorders is shown as a visible escape, JSON stays the same value, and ordinary
 * text (accents, CJK, emoji, backslashes) is left alone.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { escapeJsonText, escapeTerminalText } from '#common/terminal-text.js';
import { printError, printResult, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => String.fromCharCode(from + i));

/** Every character the issue lists, by class. */
const CLASSES: Record<string, string[]> = {
  'C0 controls': range(0x00, 0x1f),
  DEL: ['\x7f'],
  'C1 controls': range(0x80, 0x9f),
  'line and paragraph separators': ['\u2028', '\u2029'],
  'bidi embeddings and overrides': range(0x202a, 0x202e),
  'bidi isolates': range(0x2066, 0x2069),
  'bidi marks': ['\u200e', '\u200f', '\u061c'],
};
const ALL = Object.values(CLASSES).flat();
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/; // eslint-disable-line no-control-regex

describe('escapeTerminalText', () => {
  for (const [name, chars] of Object.entries(CLASSES)) {
    it(`shows every character of ${name} as a visible escape`, () => {
      for (const c of chars) {
        const out = escapeTerminalText(`a${c}b`);
        expect(out, `U+${c.charCodeAt(0).toString(16)}`).not.toMatch(UNSAFE);
        expect(out).toMatch(/^a\\(x[0-9a-f]{2}|u[0-9a-f]{4}|[nrt])b$/);
      }
    });
  }

  it('uses the forms a reader recognises', () => {
    expect(escapeTerminalText('\x1b[2J\x1b]0;pwned\x07')).toBe('\\x1b[2J\\x1b]0;pwned\\x07');
    expect(escapeTerminalText('line1\r\nline2\tend')).toBe('line1\\r\\nline2\\tend');
    expect(escapeTerminalText('\x9b31m\x7f\x00')).toBe('\\x9b31m\\x7f\\x00');
    expect(escapeTerminalText('evil\u202etxt.exe\u2028\u2066\u200f\u061c')).toBe(
      'evil\\u202etxt.exe\\u2028\\u2066\\u200f\\u061c',
    );
  });

  it('leaves ordinary text as it is, and escaping twice changes nothing', () => {
    for (const s of ['Phish — café 東京 🛡️ naïve', 'C:\\temp\\x1b is text', 'a\u00a0b\u00ff\u2030\u2070', ''])
      expect(escapeTerminalText(s)).toBe(s);
    const once = escapeTerminalText(ALL.join(''));
    expect(escapeTerminalText(once)).toBe(once);
    expect(once).not.toMatch(UNSAFE);
  });
});

describe('escapeJsonText', () => {
  it('writes what JSON.stringify leaves raw as \\u escapes, and the text parses to the same value', () => {
    const value = { name: `x${ALL.join('')}y`, nested: [{ deep: '\u202e\x9b\u2028' }] };
    const raw = JSON.stringify(value);
    expect(raw).toMatch(UNSAFE); // JSON.stringify alone leaves C1, DEL, U+2028 and bidi raw
    const out = escapeJsonText(raw);
    expect(out).not.toMatch(UNSAFE);
    expect(JSON.parse(out)).toEqual(value);
    expect(escapeJsonText('{"a":"plain é"}')).toBe('{"a":"plain é"}');
  });
});

describe('CLI output', () => {
  let out = '';
  let err = '';
  afterEach(() => {
    vi.restoreAllMocks();
    out = '';
    err = '';
  });
  const capture = () => {
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => {
      out += String(s);
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
      err += String(s);
      return true;
    });
  };
  const evil = 'Phish\x1b[31m\x9b2J\r\nadmin  auth.key  ok\u2028\u202egpj.exe';

  it('escapes each table cell to one line, so a name cannot add a row', () => {
    const lines = table(
      [
        { name: evil, type: 't\ny' },
        { name: 'b', type: 'c' },
      ],
      ['name', 'type'],
    );
    expect(lines).toHaveLength(3);
    expect(lines[1]).toContain('Phish\\x1b[31m\\x9b2J\\r\\nadmin  auth.key  ok\\u2028\\u202egpj.exe');
    expect(lines[1]).toContain('t\\ny');
    for (const l of lines) expect(l).not.toMatch(UNSAFE);
  });

  it("prints a verb's lines with its own line breaks only, and escapes a field holding one", () => {
    capture();
    printResult({}, {}, () => [`created ${evil}`, 'second line']);
    printResult({}, {}, () => `one ${evil}`);
    expect(out.split('\n')).toEqual([
      expect.stringContaining('created Phish\\x1b'),
      'second line',
      expect.stringContaining('one Phish\\x1b'),
      '',
    ]);
    expect(out.replace(/\n/g, '')).not.toMatch(UNSAFE);
  });

  it('keeps --json exact while escaping what JSON leaves raw', () => {
    capture();
    printResult({ name: evil }, { json: true }, () => 'unused');
    expect(out.replace(/\n/g, '')).not.toMatch(UNSAFE);
    expect(JSON.parse(out)).toEqual({ name: evil });
  });

  it('prints an error message from a server as one escaped line, or exact JSON', () => {
    capture();
    expect(printError(new BadParameterError('ERR_BAD_REQUEST', `bad ${evil}`), {})).toBe(2);
    expect(err.split('\n')).toHaveLength(2);
    expect(err).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028-\u202e]/); // eslint-disable-line no-control-regex
    printError(new BadParameterError('ERR_BAD_REQUEST', `bad ${evil}`), { json: true });
    expect(JSON.parse(out)).toEqual({ error: { code: 'ERR_BAD_REQUEST', message: `bad ${evil}` } });
    expect(out.replace(/\n$/, '')).not.toMatch(UNSAFE);
  });
});
