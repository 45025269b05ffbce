/**
 * How a custom property's regex runs on each event, fast and still in linear time. Every pattern is first checked
 * by RE2 (re2js, event-config.ts compileProperty): no backreferences or lookaround. A pattern written in the part of
 * the syntax that JavaScript and RE2 read alike (forV8), and that V8's linear-time engine accepts, runs on ASCII
 * messages on V8's own engine, which this module sets (once, for the whole tenant process) to fall back to that
 * linear-time engine after BACKTRACK_LIMIT backtracks: an ordinary message costs a native match (about 5× less than
 * re2js, measured on the syslog benchmark's messages), a crafted one at worst linear time, and the pattern then moves
 * to re2js, which is faster on such messages. Any other pattern, or message, runs on re2js.
 */
import { setFlagsFromString } from 'node:v8';
import type { RE2JS } from 're2js';

/** Backtracks V8 allows a match before it restarts it on its linear-time engine. */
const BACKTRACK_LIMIT = 10_000;
/** A match on V8 that takes this long moves its pattern to re2js (a native match of a 4 KiB message takes µs). */
export const SLOW_ON_V8_MS = 2;
setFlagsFromString('--enable-experimental-regexp-engine'); // the `l` flag, used below only to ask V8
setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
setFlagsFromString(`--regexp-backtracks-before-fallback=${BACKTRACK_LIMIT}`);

/**
 * Patterns built only of what RE2 and JavaScript (without flags) read alike on ASCII text: printable ASCII, the
 * escapes below, groups only as `(` or `(?:`, and no `[:` (RE2's POSIX classes, which JavaScript reads as characters).
 */
const SAME_IN_BOTH = /^(?:[ -'*-Z\]-~]|\\[wWdDsSbB.\-\\/[\]()|{}*+?^$=:"'<>@#%&!,;~`tnr ]|\[(?!:)|\((?!\?)|\(\?:|\))*$/;
/**
 * Text a V8 match may run on: ASCII (on other text `\s`, `.` and astral characters differ between the engines). Every
 * other UTF-16 unit, a lone surrogate too, takes two or three bytes in UTF-8, so equal lengths mean ASCII: a native
 * count, a third faster than a regex test on the benchmark's messages.
 */
const isAscii = (text: string) => Buffer.byteLength(text, 'utf8') === text.length;

/**
 * The pattern rewritten so V8 means what RE2 means on ASCII text, or undefined where they differ in ways not
 * rewritten here. `.` becomes `[^\n]` (V8's dot also stops at `\r`), `\s` and `\S` RE2's ASCII set (V8's has `\v`).
 * Refused: `\s`/`\S` inside a class, a class opening with `]` or `^]` (a `]` in RE2, an empty class in V8), and a
 * repeated group that captures or holds a capture (the engines keep different iterations' captures).
 */
function forV8(src: string): string | undefined {
  if (!SAME_IN_BOTH.test(src)) return undefined;
  let out = '';
  let inClass = false;
  const groups: { capturing: boolean; holdsCapture: boolean }[] = [];
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '\\') {
      const e = src[++i];
      if (e === 's' || e === 'S') {
        if (inClass) return undefined;
        out += e === 's' ? '[\\t\\n\\f\\r ]' : '[^\\t\\n\\f\\r ]';
      } else out += `\\${e}`;
    } else if (inClass) {
      if (c === ']') inClass = false;
      out += c;
    } else if (c === '[') {
      if (src[i + 1] === ']' || (src[i + 1] === '^' && src[i + 2] === ']')) return undefined;
      inClass = true;
      out += c;
    } else if (c === '.') out += '[^\\n]';
    else if (c === '(') {
      groups.push({ capturing: src[i + 1] !== '?', holdsCapture: false });
      out += c;
    } else if (c === ')') {
      const g = groups.pop();
      if (!g) return undefined;
      const captures = g.capturing || g.holdsCapture;
      const next = src[i + 1];
      if (captures && next !== undefined && '*+?{'.includes(next)) return undefined;
      if (captures && groups.length) groups[groups.length - 1].holdsCapture = true;
      out += c;
    } else out += c;
  }
  return out;
}

/**
 * Whether V8 falls back as set: a pattern that backtracks 2^20 times natively must come back within milliseconds.
 * If a Node release ignored the flags, every pattern runs on re2js.
 */
function fallbackWorks(): boolean {
  const started = performance.now();
  new RegExp('(a|a)*b').exec('a'.repeat(20));
  return performance.now() - started < 5;
}
const ON_V8 = fallbackWorks();

export interface PropertyMatcher {
  /** The first match's first capture group (else the whole match), or undefined; `ascii`: the caller knows it is. */
  first(text: string, ascii?: boolean): string | undefined;
  /** The caller timed `first(text)` at SLOW_ON_V8_MS or more; true when the pattern moved to re2js for that. */
  tookLong?(text: string): boolean;
}

/** The matcher for a pattern RE2 accepted (`re2` is its compiled form). */
export function propertyMatcher(source: string, re2: RE2JS): PropertyMatcher {
  const v8 = ON_V8 ? forV8(source) : undefined;
  if (v8 !== undefined) {
    let native: RegExp | undefined;
    try {
      // eslint-disable-next-line no-invalid-regexp -- V8's `l` flag (enabled above): throws unless linear time
      new RegExp(v8, 'l');
      native = new RegExp(v8);
    } catch {
      native = undefined;
    }
    if (native) {
      const re = native;
      let onV8 = true;
      return {
        first(text, ascii) {
          if (!onV8 || !(ascii || isAscii(text))) return onRe2(re2, text);
          const m = re.exec(text);
          return m ? (m.length > 1 ? m[1] : m[0]) : undefined;
        },
        tookLong(text) {
          // V8's linear-time engine is slower than re2js on what made it fall back: a pattern that met such a
          // message (an attacker can send many) runs on re2js from then on. A second try tells that from a pause
          // of the process (a garbage collection) that happened to fall inside the first.
          if (!onV8) return false;
          const again = performance.now();
          re.exec(text);
          if (performance.now() - again >= SLOW_ON_V8_MS) onV8 = false;
          return !onV8;
        },
      };
    }
  }
  return { first: (text) => onRe2(re2, text) };
}

function onRe2(re2: RE2JS, text: string): string | undefined {
  const m = re2.matcher(text);
  if (!m.find()) return undefined;
  return (m.groupCount() > 0 ? m.group(1) : m.group(0)) ?? undefined;
}
