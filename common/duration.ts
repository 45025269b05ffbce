/** Parses human durations such as `90s`, `30m`, `24h`, `7d` (or plain milliseconds) into milliseconds. */
import { BadParameterError } from './errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string, field = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!m) throw new BadParameterError('ERR_BAD_DURATION', `${field}: "${text}" is not a duration; use e.g. 30m, 24h or 7d`, { field });
  const ms = Number(m[1]) * UNIT_MS[m[2] ?? 'ms'];
  if (!Number.isFinite(ms) || ms <= 0) throw new BadParameterError('ERR_BAD_DURATION', `${field}: must be positive`, { field });
  return Math.round(ms);
}
