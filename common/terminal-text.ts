/**
 * Text that reaches a terminal or a log file with every character a terminal acts on, or that reorders
 * what is shown, made visible: C0 controls (ESC, CR, LF, BEL…), DEL, C1 controls (U+0080–U+009F: U+009B
 * is a one-byte CSI to many terminals), the line and paragraph separators U+2028/2029, and the bidi
 * controls (embeddings and overrides U+202A–202E, isolates U+2066–2069, marks U+200E/200F and U+061C).
 * Incident names, audit targets, host system info… come from other people: printed raw, they could
 * rewrite the screen, forge an audit row or reverse a name.
 *
 * Two forms: visible escapes for people (`\x1b`, `\n`, `\u202e`), and JSON `\uXXXX` escapes for JSON
 * text (the same value to a parser, harmless to a viewer). Not an HTML or shell escaper; backslashes stay
 * as they are, so escaping twice changes nothing (the output has no character left to escape).
 */

/** One class for every character above; `u` flag not needed: all are in the BMP and not surrogates. */
// eslint-disable-next-line no-control-regex -- control characters are what this matches
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;
const UNSAFE_ALL = new RegExp(UNSAFE.source, 'g');
/** What JSON.stringify leaves raw of the class (it already writes C0 as \n, \u001b…). */
const RAW_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;
const RAW_IN_JSON_ALL = new RegExp(RAW_IN_JSON.source, 'g');

const SHORT: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function visible(c: string): string {
  const code = c.charCodeAt(0);
  return (
    SHORT[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`)
  );
}

const jsonEscape = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** One line for a person: every such character, LF included, as a visible escape (one regex test first). */
export function escapeTerminalText(s: string): string {
  return UNSAFE.test(s) ? s.replace(UNSAFE_ALL, visible) : s;
}

/**
 * JSON text with the characters JSON.stringify leaves raw written as `\uXXXX`: the same value for any
 * parser. Every such character of JSON text is inside a string literal (the syntax is ASCII), so the
 * text is rewritten without parsing it (a log line's final newline is left alone).
 */
export function escapeJsonText(json: string): string {
  return RAW_IN_JSON.test(json) ? json.replace(RAW_IN_JSON_ALL, jsonEscape) : json;
}
