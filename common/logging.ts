/**
 * Logging setup: one pino root per process, children per component. Secrets are redacted by path and
 * never passed as message text. Not a transport layer: logs go to stdout or one file.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/** Every field name that may ever hold a secret, at any depth we log. */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  'key', 'apiKey', 'enrolKey', 'privateKey', 'secret', 'token', 'password', 'authorization', 'csr',
  '*.key', '*.apiKey', '*.enrolKey', '*.privateKey', '*.secret', '*.token', '*.password', '*.authorization',
  'req.headers.authorization', 'headers.authorization', 'req.headers.cookie',
]);

export interface LogOptions {
  level?: string;
  /** Write to this file (appending) instead of stdout. */
  file?: string;
  name?: string;
}

export function createRootLogger(opts: LogOptions = {}): Logger {
  const dest: DestinationStream = opts.file
    ? pino.destination({ dest: opts.file, mkdir: true, sync: false })
    : pino.destination({ dest: 1, sync: false });
  return pino({
    name: opts.name,
    level: opts.level ?? process.env.PALISADE_LOG_LEVEL ?? 'info',
    redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
    base: { pid: process.pid },
  }, dest);
}

/** A logger that drops everything: for library use in tests and benchmarks. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
