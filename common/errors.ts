/**
 * The one error family of Palisade. Every error that crosses a boundary (HTTP, WebSocket, CLI) carries a
 * stable `code` from the table in error-codes.ts, which each class below accepts only for its own category;
 * edges translate by category, never by message text. Not for control flow inside a module.
 */
import type { CodeOf, ErrorCode, PeerCode } from './error-codes.js';

export type ErrorCategory =
  | 'bad-parameter'
  | 'not-found'
  | 'unauthenticated'
  | 'access-denied'
  | 'conflict'
  | 'too-large'
  | 'unavailable'
  | 'connection'
  | 'protocol'
  | 'timeout'
  | 'rate-limited'
  | 'dependency'
  | 'run-failed'
  | 'internal';

export interface ErrorOptions {
  retryable?: boolean;
  cause?: unknown;
  field?: string;
  retryAfterMs?: number;
}

export class PalisadeError extends Error {
  readonly code: ErrorCode | PeerCode;
  readonly category: ErrorCategory;
  readonly retryable: boolean;
  readonly field?: string;
  readonly retryAfterMs?: number;

  constructor(category: ErrorCategory, code: ErrorCode | PeerCode, message: string, opts: ErrorOptions = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.category = category;
    this.code = code;
    this.retryable = opts.retryable ?? false;
    this.field = opts.field;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

export class BadParameterError extends PalisadeError {
  constructor(code: CodeOf<'bad-parameter'> | PeerCode, message: string, opts: ErrorOptions = {}) {
    super('bad-parameter', code, message, opts);
  }
}
export class NotFoundError extends PalisadeError {
  constructor(code: CodeOf<'not-found'> | PeerCode, message: string, opts: ErrorOptions = {}) {
    super('not-found', code, message, opts);
  }
}
export class AccessDeniedError extends PalisadeError {
  constructor(code: CodeOf<'access-denied'> | PeerCode, message: string, opts: ErrorOptions = {}) {
    super('access-denied', code, message, opts);
  }
}
export class UnauthenticatedError extends PalisadeError {
  constructor(code: CodeOf<'unauthenticated'> | PeerCode, message: string, opts: ErrorOptions = {}) {
    super('unauthenticated', code, message, opts);
  }
}
export class ConflictError extends PalisadeError {
  constructor(code: CodeOf<'conflict'> | PeerCode, message: string, opts: ErrorOptions = {}) {
    super('conflict', code, message, opts);
  }
}
export class ConnectionError extends PalisadeError {
  constructor(code: CodeOf<'connection'> | PeerCode, message: string, opts: ErrorOptions = {}) {
    super('connection', code, message, { retryable: true, ...opts });
  }
}
export class ProtocolError extends PalisadeError {
  constructor(code: CodeOf<'protocol'> | PeerCode, message: string, opts: ErrorOptions = {}) {
    super('protocol', code, message, opts);
  }
}
export class TooLargeError extends PalisadeError {
  constructor(code: CodeOf<'too-large'> | PeerCode, message: string, opts: ErrorOptions = {}) {
    super('too-large', code, message, opts);
  }
}
export class TimeoutError extends PalisadeError {
  constructor(code: CodeOf<'timeout'> | PeerCode, message: string, opts: ErrorOptions = {}) {
    super('timeout', code, message, { retryable: true, ...opts });
  }
}
export class UnavailableError extends PalisadeError {
  constructor(code: CodeOf<'unavailable'> | PeerCode, message: string, opts: ErrorOptions = {}) {
    super('unavailable', code, message, { retryable: true, ...opts });
  }
}

/** Too many attempts from one place; `retryAfterMs` says when to try again. */
export class RateLimitedError extends PalisadeError {
  constructor(code: CodeOf<'rate-limited'> | PeerCode, message: string, opts: ErrorOptions = {}) {
    super('rate-limited', code, message, { retryable: true, ...opts });
  }
}

/**
 * A service outside Palisade (AWS, a customer's API) failed, timed out or could not be reached: Palisade did
 * its part, so the answer is 424 and the message names the service and what to check.
 */
export class DependencyError extends PalisadeError {
  constructor(code: CodeOf<'dependency'> | PeerCode, message: string, opts: ErrorOptions = {}) {
    super('dependency', code, message, { retryable: true, ...opts });
  }
}

/**
 * Code Palisade ran as asked (a script) failed in itself: it threw, ran past its time or its memory. The request
 * was fine and Palisade worked, so neither a 400 (bad input) nor a 5xx: 422, and the CLI exits 1 as for a failed run.
 */
export class RunFailedError extends PalisadeError {
  constructor(code: CodeOf<'run-failed'> | PeerCode, message: string, opts: ErrorOptions = {}) {
    super('run-failed', code, message, opts);
  }
}

/** WebSocket close codes (RFC 6455 plus ours from 4000). */
export const WS_CLOSE = Object.freeze({
  normal: 1000,
  goingAway: 1001,
  protocol: 1002,
  policy: 1008,
  tooBig: 1009,
  internal: 1011,
  revoked: 4001,
  version: 4002,
  // 4003 (a newer connection replaced this one) is retired: a second connection no longer replaces a live one.
  shutdown: 4004,
  /** Another connection holding this agent's certificate is live and answers: this one is a copy. */
  duplicate: 4005,
});

export function isPalisadeError(e: unknown): e is PalisadeError {
  return e instanceof PalisadeError;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
