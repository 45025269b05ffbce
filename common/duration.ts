/** Parses human durations such as `90s`, `30m`, `24h`, `7d` (or plain milliseconds) into milliseconds. */
import { BadParameterError } from './errors.js';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/**
 * 100 years: beyond any deadline or TTL anyone means. Durations are offsets from now, and a larger one
 * (e.g. "9999999999999999999d") makes an invalid Date whose toISOString() throws — a 500, not a 400.
 */
export const MAX_DURATION_MS = 36_500 * 86_400_000;

/** `examples`: what the refusal of a non-duration suggests; give ones that the caller's own range takes. */
export function parseDuration(text: string, field = 'duration', examples = '30m, 24h or 7d'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(text);
  if (!m)
    throw new BadParameterError('ERR_BAD_DURATION', `${field}: "${text}" is not a duration; use e.g. ${examples}`, {
      field,
    });
  const ms = Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 'ms']);
  // Checked after rounding: "0.4" would otherwise pass as positive and come back as 0.
  if (!Number.isFinite(ms) || ms <= 0)
    throw new BadParameterError('ERR_BAD_DURATION', `${field}: must be positive`, { field });
  if (ms > MAX_DURATION_MS)
    throw new BadParameterError('ERR_BAD_DURATION', `${field}: must be at most 36500d`, { field });
  return ms;
}
