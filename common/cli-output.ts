/**
 * The CLI edge: prints results as text or `--json`, and turns errors into one line + exit code.
 * User errors (bad input, not found, denied, conflict) exit 2; operational failures exit 1 with one line;
 * anything that is not a PalisadeError is a bug and prints its stack.
 * Everything the CLI prints goes through here and is escaped here (common/terminal-text.ts), so no verb
 * can print a name someone else chose raw. Text is given as lines (`Text`) and each line is escaped
 * whole, LF included: the only line breaks printed are the ones between lines, so a name holding "\n"
 * cannot forge a row, and a verb that forgets to split its text shows a visible `\n`, never a raw one.
 * `--json` is exact JSON with `\uXXXX` also for what JSON.stringify leaves raw (C1, U+2028/2029, bidi).
 */
import { Option } from 'commander';
import { isPalisadeError, type PalisadeError } from './errors.js';
import { LOG_DESTINATIONS } from './logging.js';
import { escapeJsonText, escapeTerminalText } from './terminal-text.js';

export interface OutputOptions {
  json?: boolean;
}

/** What a verb prints in text mode: one line, or its lines in order. */
export type Text = string | readonly string[];

const USER_CATEGORIES = new Set([
  'bad-parameter',
  'not-found',
  'access-denied',
  'unauthenticated',
  'conflict',
  'too-large',
]);

export function exitCodeFor(e: PalisadeError): number {
  return USER_CATEGORIES.has(e.category) ? 2 : 1;
}

const jsonLine = (value: unknown, indent?: number) => `${escapeJsonText(JSON.stringify(value, null, indent))}\n`;
const textLines = (text: Text) =>
  (typeof text === 'string' ? [text] : text).map((l) => `${escapeTerminalText(l)}\n`).join('');

export function printError(e: unknown, opts: OutputOptions): number {
  if (isPalisadeError(e)) {
    // The message may quote what a server or a file said: one line, whatever it holds.
    if (opts.json) process.stdout.write(jsonLine({ error: { code: e.code, message: e.message } }));
    else process.stderr.write(`palisade: ${escapeTerminalText(`${e.message} (${e.code})`)}\n`);
    return exitCodeFor(e);
  }
  if (opts.json)
    process.stdout.write(jsonLine({ error: { code: 'ERR_INTERNAL', message: String((e as Error)?.message ?? e) } }));
  process.stderr.write(textLines(`palisade: internal error: ${(e as Error)?.stack ?? String(e)}`.split('\n')));
  return 1;
}

/** Runs a CLI action; on error prints and exits with the right code. */
export async function runAction(opts: OutputOptions, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    process.exitCode = printError(e, opts);
  }
}

/** A verb's result: `value` as indented JSON, or the lines of `text()`. */
export function printResult(value: unknown, opts: OutputOptions, text: () => Text): void {
  process.stdout.write(opts.json ? jsonLine(value, 2) : textLines(text()));
}

/** An event of a long-running verb (`main start`, `agent start`, `demo`): one line of JSON, or `text`. */
export function printEvent(value: unknown, opts: OutputOptions, text: Text): void {
  process.stdout.write(opts.json ? jsonLine(value) : textLines(text));
}

/** A value shown as indented JSON in text mode (`show` verbs), as lines: JSON has no raw LF inside strings. */
export function jsonLines(value: unknown): string[] {
  return escapeJsonText(JSON.stringify(value, null, 2) ?? 'null').split('\n');
}

/** A plain fixed-width table for list commands, as lines; each cell is escaped to one line of its own. */
export function table(rows: Record<string, unknown>[], columns: readonly string[]): string[] {
  if (rows.length === 0) return ['(none)'];
  const cells = rows.map((r) =>
    columns.map((c) => (r[c] === undefined || r[c] === null ? '-' : escapeTerminalText(String(r[c])))),
  );
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i].length)));
  const line = (vals: readonly string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)];
}

/** `--log stdout|file` of `main start` and `agent start`: file by default, stdout in the service units. */
export function logOption(): Option {
  return new Option('--log <to>', 'where the JSON log goes: file (logs/ in the data directory) or stdout')
    .choices(LOG_DESTINATIONS)
    .default('file');
}
