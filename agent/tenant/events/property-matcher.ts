/**
 * How a custom property's regex runs on each event, fast and still in linear time. Every pattern is first checked
 * by RE2 (re2js, event-config.ts compileProperty): no backreferences or lookaround. A pattern written in the part
 * of the syntax that JavaScript and RE2 read alike, and that V8's linear-time engine accepts, runs on V8's own
 * engine, which this module sets (once, for the whole tenant process) to fall back to that linear-time engine
 * after BACKTRACK_LIMIT backtracks: an ordinary message costs a native match (about 5× less than re2js, measured on
 * the syslog benchmark's messages), a crafted one at worst linear time, and the pattern then moves to re2js, which
 * is faster on such messages. Any other pattern runs on re2js.
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
 * Patterns whose meaning is the same in RE2 and JavaScript (without flags): plain characters, the escapes below,
 * groups only as `(` or `(?:`, and no `[:` (RE2's POSIX classes, which JavaScript reads as characters).
 */
const SAME_IN_BOTH = /^(?:[^\\[(]|\\[wWdDsSbB.\-\\/[\]()|{}*+?^$=:"'<>@#%&!,;~`tnr ]|\[(?!:)|\((?!\?)|\(\?:)*$/;

export interface PropertyMatcher {
  /** The first match's first capture group (else the whole match), or undefined. */
  first(text: string): string | undefined;
  /** The caller timed `first(text)` at SLOW_ON_V8_MS or more; true when the pattern moved to re2js for that. */
  tookLong?(text: string): boolean;
}

/** The matcher for a pattern RE2 accepted (`re2` is its compiled form). */
export function propertyMatcher(source: string, re2: RE2JS): PropertyMatcher {
  if (SAME_IN_BOTH.test(source)) {
    let native: RegExp | undefined;
    try {
      // eslint-disable-next-line no-invalid-regexp -- V8's `l` flag (enabled above): throws unless linear time
      new RegExp(source, 'l');
      native = new RegExp(source);
    } catch {
      native = undefined;
    }
    if (native) {
      const re = native;
      let onV8 = true;
      return {
        first(text) {
          if (!onV8) return onRe2(re2, text);
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
