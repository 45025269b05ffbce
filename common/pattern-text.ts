/**
 * A schema `pattern` said in words, for the 400 that names the field (common/http-errors.ts): `params.id must be a
 * content id ("cnt_" followed by 12 hex digits 0-9 a-f)` where AJV would quote the regex back. Not a regex engine:
 * it reads the one shape our schemas use — `^`, then literals and character classes each with an optional
 * quantifier, then `$` — and says "in the expected form" for anything else (groups, alternation).
 *
 * A pattern whose shape needs a group (names that may not end in '-', lists, `engine:NAME`) or whose shape alone
 * does not say what the value is (an id) is described where it is defined: `describedPattern(source, what)` keeps
 * the words next to the constant, so every schema that uses the constant gets them, on main and in each tenant.
 * The words are found by the regex's text (AJV's error carries only that), so they must fit every field with that
 * regex: a shape shared by unrelated names (group, profile, obfuscation) is left to the derived shape, and a second,
 * different description of one regex is refused at start-up.
 */

/** What to say when a pattern is neither described nor of the simple shape. */
export const UNDESCRIBED = 'in the expected form';

const described = new Map<string, { what: string; shape: boolean }>();

/**
 * Registers the words for `source` and returns `source` (for `export const X = describedPattern('^…$', 'a …')`).
 * `shape: false` leaves the derived shape out (where `what` already says it, or it would only repeat the regex).
 */
export function describedPattern(source: string, what: string, opts: { shape?: boolean } = {}): string {
  const had = described.get(source);
  if (had && had.what !== what) throw new Error(`pattern ${source} described twice: ${had.what} / ${what}`);
  described.set(source, { what, shape: opts.shape ?? true });
  return source;
}

/** `source` in words: its registered description (with the derived shape when there is one), else the shape. */
export function describePattern(source: string): string {
  const known = described.get(source);
  const shape = shapeOf(source);
  if (known) return known.shape && shape ? `${known.what} (${shape})` : known.what;
  return shape ?? UNDESCRIBED;
}

type Atom = { kind: 'literal'; text: string } | { kind: 'class'; one: string; many: string };
type Part = { atom: Atom; min: number; max: number };

/** The simple shape in words, or undefined for a pattern outside it. */
export function shapeOf(source: string): string | undefined {
  if (!source.startsWith('^') || !source.endsWith('$') || source.endsWith('\\$')) return undefined;
  const parts = parseParts(source.slice(1, -1));
  if (!parts || parts.length === 0) return undefined;
  const merged = mergeLiterals(parts);
  const said = merged.map(sayPart);
  if (merged[0].atom.kind === 'literal' && merged[0].min === 1 && merged[0].max === 1 && said.length > 1)
    return `${said[0]} followed by ${said.slice(1).join(', then ')}`;
  return said.join(', then ');
}

function parseParts(body: string): Part[] | undefined {
  const parts: Part[] = [];
  let i = 0;
  while (i < body.length) {
    let atom: Atom | undefined;
    const c = body[i];
    if (c === '[') {
      const end = classEnd(body, i);
      if (end < 0) return undefined;
      atom = classAtom(body.slice(i + 1, end));
      i = end + 1;
    } else if (c === '\\') {
      const e = escapeAt(body, i);
      if (!e || e.cls) return undefined;
      atom = { kind: 'literal', text: e.char };
      i += e.length;
    } else if ('()|.?*+{}^$'.includes(c)) {
      return undefined;
    } else {
      atom = { kind: 'literal', text: c };
      i++;
    }
    if (!atom) return undefined;
    const q = quantifierAt(body, i);
    if (!q) return undefined;
    i += q.length;
    parts.push({ atom, min: q.min, max: q.max });
  }
  return parts;
}

function classEnd(body: string, start: number): number {
  for (let i = start + 1; i < body.length; i++) {
    if (body[i] === '\\') i++;
    else if (body[i] === ']') return i;
  }
  return -1;
}

/** An escape at `i`: one character, or a class shorthand (\d \w \s). */
function escapeAt(s: string, i: number): { char: string; length: number; cls?: string } | undefined {
  const n = s[i + 1];
  if (n === undefined) return undefined;
  if (n === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4)))
    return { char: String.fromCharCode(parseInt(s.slice(i + 2, i + 4), 16)), length: 4 };
  if (n === 'u' && /^[0-9a-fA-F]{4}$/.test(s.slice(i + 2, i + 6)))
    return { char: String.fromCharCode(parseInt(s.slice(i + 2, i + 6), 16)), length: 6 };
  if ('dws'.includes(n)) return { char: '', length: 2, cls: n };
  if (/[A-Za-z0-9]/.test(n)) return undefined;
  return { char: n, length: 2 };
}

function quantifierAt(s: string, i: number): { min: number; max: number; length: number } | undefined {
  const c = s[i];
  if (c === '+') return { min: 1, max: Infinity, length: 1 };
  if (c === '*') return { min: 0, max: Infinity, length: 1 };
  if (c === '?') return { min: 0, max: 1, length: 1 };
  if (c !== '{') return { min: 1, max: 1, length: 0 };
  const m = /^\{(\d+)(,(\d*))?\}/.exec(s.slice(i));
  if (!m) return undefined;
  const min = Number(m[1]);
  const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
  return { min, max, length: m[0].length };
}

const CONTROL = (code: number) => code < 0x20 || code === 0x7f;

/** A character class in words (singular and plural), or undefined for one it cannot say. */
function classAtom(inner: string): Atom | undefined {
  const negated = inner.startsWith('^');
  const ranges: [string, string][] = [];
  const shorthands: string[] = [];
  for (let i = negated ? 1 : 0; i < inner.length;) {
    let lo: string;
    if (inner[i] === '\\') {
      const e = escapeAt(inner, i);
      if (!e) return undefined;
      i += e.length;
      if (e.cls) {
        shorthands.push(e.cls);
        continue;
      }
      lo = e.char;
    } else lo = inner[i++];
    let hi = lo;
    if (inner[i] === '-' && i + 1 < inner.length) {
      if (inner[i + 1] === '\\') {
        const e = escapeAt(inner, i + 1);
        if (!e || e.cls) return undefined;
        hi = e.char;
        i += 1 + e.length;
      } else {
        hi = inner[i + 1];
        i += 2;
      }
    }
    ranges.push([lo, hi]);
  }
  const words = classWords(ranges, shorthands);
  if (!negated) return { kind: 'class', one: `a ${orList(words.one)}`, many: orList(words.many) };
  const all = ranges.every(([lo, hi]) => CONTROL(lo.charCodeAt(0)) && CONTROL(hi.charCodeAt(0)));
  const what = all && !shorthands.length ? 'control characters' : orList(words.many);
  return { kind: 'class', one: `a character other than ${what}`, many: `characters other than ${what}` };
}

/** The words for a class's members: known runs by name, the rest as themselves. */
function classWords(ranges: [string, string][], shorthands: string[]): { one: string[]; many: string[] } {
  const take = (lo: string, hi: string): boolean => {
    const at = ranges.findIndex(([a, b]) => a === lo && b === hi);
    if (at >= 0) ranges.splice(at, 1);
    return at >= 0;
  };
  const one: string[] = [];
  const many: string[] = [];
  const add = (o: string, m: string) => {
    one.push(o);
    many.push(m);
  };
  if (shorthands.includes('w')) add('letter, digit or _', 'letters, digits, _');
  const upper = take('A', 'Z');
  const lower = take('a', 'z');
  if (upper && lower) add('letter', 'letters');
  else if (lower) add('lowercase letter', 'lowercase letters');
  else if (upper) add('capital letter', 'capital letters');
  const hex = !upper && !lower && ranges.some(([a, b]) => a === 'a' && b === 'f');
  if (hex && take('0', '9') && take('a', 'f')) add('hex digit 0-9 a-f', 'hex digits 0-9 a-f');
  if (take('0', '9') || shorthands.includes('d')) add('digit', 'digits');
  if (shorthands.includes('s')) add('whitespace', 'whitespace');
  const say = (c: string) => (c === ' ' ? 'space' : CONTROL(c.charCodeAt(0)) ? 'control character' : c);
  for (const [lo, hi] of ranges) {
    if (lo === hi) add(say(lo), say(lo));
    else if (/[0-9]/.test(lo) && /[0-9]/.test(hi)) add(`digit ${lo}-${hi}`, `digits ${lo}-${hi}`);
    else add(`character ${say(lo)} to ${say(hi)}`, `characters ${say(lo)} to ${say(hi)}`);
  }
  return { one, many };
}

function orList(words: string[]): string {
  return words.length < 2 ? (words[0] ?? '') : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

function mergeLiterals(parts: Part[]): Part[] {
  const out: Part[] = [];
  for (const p of parts) {
    const last = out[out.length - 1];
    const single = (x: Part) => x.atom.kind === 'literal' && x.min === 1 && x.max === 1;
    if (last && single(last) && single(p) && last.atom.kind === 'literal' && p.atom.kind === 'literal')
      last.atom = { kind: 'literal', text: last.atom.text + p.atom.text };
    else out.push({ ...p });
  }
  return out;
}

function sayPart({ atom, min, max }: Part): string {
  const one = atom.kind === 'literal' ? JSON.stringify(atom.text) : atom.one;
  const many = atom.kind === 'literal' ? `times ${JSON.stringify(atom.text)}` : atom.many;
  if (min === 1 && max === 1) return one;
  if (min === 0 && max === 1) return `optionally ${one}`;
  if (max === Infinity)
    return min === 0 ? `any number of ${many}` : min === 1 ? `one or more ${many}` : `${min} or more ${many}`;
  if (min === max) return `${min} ${many}`;
  return min === 0 ? `up to ${max} ${many}` : `${min} to ${max} ${many}`;
}
