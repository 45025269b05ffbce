/**
 * The structured lines of a process's log: reads a pino log file (missing file: no lines) and returns the
 * JSON objects whose fields equal every given one, so a test checks what a process said by its fields
 * (`msg`, `code`, `engineId`…) rather than by text. Lines that are not JSON (a crash's stack) are skipped.
 */
import { readLog } from './processes.js';

/** Pino lines of the log file at `path` that match every field of `match`. */
export async function logLines(path: string, match: Record<string, unknown>): Promise<Record<string, unknown>[]> {
  return (await readLog(path))
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return {};
      }
    })
    .filter((o) => Object.entries(match).every(([k, v]) => o[k] === v));
}
