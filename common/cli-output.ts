/**
 * The CLI edge: prints results as text or `--json`, and turns errors into one line + exit code.
 * User errors (bad input, not found, denied, conflict) exit 2; operational failures exit 1 with one line;
 * anything that is not a PalisadeError is a bug and prints its stack.
 */
import { isPalisadeError, type PalisadeError } from './errors.js';

export interface OutputOptions { json?: boolean }

const USER_CATEGORIES = new Set(['bad-parameter', 'not-found', 'access-denied', 'unauthenticated', 'conflict', 'too-large']);

export function exitCodeFor(e: PalisadeError): number {
  return USER_CATEGORIES.has(e.category) ? 2 : 1;
}

export function printError(e: unknown, opts: OutputOptions): number {
  if (isPalisadeError(e)) {
    if (opts.json) process.stdout.write(JSON.stringify({ error: { code: e.code, message: e.message } }) + '\n');
    else process.stderr.write(`palisade: ${e.message} (${e.code})\n`);
    return exitCodeFor(e);
  }
  if (opts.json) process.stdout.write(JSON.stringify({ error: { code: 'ERR_INTERNAL', message: String((e as Error)?.message ?? e) } }) + '\n');
  process.stderr.write(`palisade: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
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

export function printResult(value: unknown, opts: OutputOptions, text: () => string): void {
  process.stdout.write(opts.json ? JSON.stringify(value, null, 2) + '\n' : text() + '\n');
}

/** A plain fixed-width table for list commands. */
export function table(rows: Record<string, unknown>[], columns: readonly string[]): string {
  if (rows.length === 0) return '(none)';
  const cells = rows.map((r) => columns.map((c) => (r[c] === undefined || r[c] === null ? '-' : String(r[c]))));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i].length)));
  const line = (vals: readonly string[]) => vals.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join('\n');
}
