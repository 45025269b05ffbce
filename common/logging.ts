/**
 * Logging setup: one pino root per process, children per component. Secrets are redacted by path and
 * never passed as message text. Not a transport layer: logs go to stdout (a service's choice: journald keeps
 * them) or to one file rotated by size (common/log-rotation.ts).
 * Log lines carry names other people chose (incidents, hosts, audit targets): each finished line is
 * escaped (common/terminal-text.ts) so that no control, separator or bidi character reaches a viewer raw.
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import { escapeJsonText } from './terminal-text.js';
import { RotatingFile, type RotationLimits } from './log-rotation.js';

export type { Logger };

/** Every field name that may ever hold a secret, at any depth we log. */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  'key',
  'apiKey',
  'enrolKey',
  'privateKey',
  'secret',
  'token',
  'password',
  'authorization',
  'csr',
  '*.key',
  '*.apiKey',
  '*.enrolKey',
  '*.privateKey',
  '*.secret',
  '*.token',
  '*.password',
  '*.authorization',
  'req.headers.authorization',
  'headers.authorization',
  'req.headers.cookie',
  'headers.cookie',
  'totp',
  '*.totp',
  'csrfToken',
  '*.csrfToken',
]);

/** Where a process logs: its data directory's logs/ (the default; tests read it) or stdout (under systemd). */
export type LogDestination = 'stdout' | 'file';
export const LOG_DESTINATIONS: readonly LogDestination[] = ['stdout', 'file'];

export interface LogOptions {
  level?: string;
  /** Write to this file (appending, rotated by size) instead of stdout. */
  file?: string;
  /** Rotation of `file`; default LOG_ROTATE_BYTES and LOG_KEEP_FILES. */
  rotation?: RotationLimits;
  name?: string;
}

export function createRootLogger(opts: LogOptions = {}): Logger {
  const dest: DestinationStream = opts.file
    ? new RotatingFile(opts.file, opts.rotation)
    : pino.destination({ dest: 1, sync: false });
  return pino(
    {
      name: opts.name,
      level: opts.level ?? process.env.PALISADE_LOG_LEVEL ?? 'info',
      redact: { paths: [...REDACT_PATHS], censor: '[redacted]' },
      base: { pid: process.pid },
      // On the finished JSON line, so every field at any depth, the message, child bindings and serialised
      // errors are covered alike. pino's JSON already writes C0 (ESC, CR, LF) as \u escapes; this adds DEL,
      // C1, U+2028/2029 and the bidi controls. One regex test per line when there is nothing to escape.
      hooks: { streamWrite: escapeJsonText },
    },
    dest,
  );
}

/** A logger that drops everything: for library use in tests and benchmarks. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
