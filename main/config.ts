/**
 * Main's configuration (`DATA/main.json`), validated with a strict schema — every problem reported at
 * once — with named defaults, then frozen.
 */
import { readFile } from 'node:fs/promises';
import { configChecker } from '#common/config-check.js';
import { BadParameterError } from '#common/errors.js';
import { DEFAULT_MAX_FRAME_BYTES } from '#common/codec.js';
import { MAX_DIRECT_STATEMENT_MS } from '#common/tunnel-statements.js';
import { DEFAULT_THROTTLE } from './access/auth-throttle.js';

/** 10 s: frequent enough to show an agent offline within half a minute, cheap for 1 000 agents (100 frames/s). */
export const HEARTBEAT_INTERVAL_MS = 10_000;
/** Three missed heartbeats and a peer is dead. */
export const DEAD_PEER_TIMEOUT_MS = 30_000;
/** An agent that never says Hello is holding a socket for nothing. */
export const HELLO_TIMEOUT_MS = 10_000;
export const MAX_PENDING_COMMANDS = 10_000;
/** One hour: a queued command older than that is stale for an operator; it expires instead of running late. */
export const DEFAULT_COMMAND_DEADLINE_MS = 3_600_000;
export const DEFAULT_ENROL_TTL_MS = 24 * 3_600_000;
export const DEFAULT_PORT = 8443;
/**
 * How long main's word for a direct engine ⇄ host session stays good. The engine renews it halfway (one
 * small frame per engine every 30 s) and the tenant ends a session whose statement expired: an engine
 * main no longer admits (revoked, or cut off from main) keeps a direct session at most this long.
 */
export const DIRECT_STATEMENT_TTL_MS = 60_000;

// Connection limits (connection-guard.ts explains the design). Timeouts have hard maxima in the schema:
// a configured main never waits longer than these bounds on a stranger. There is no idle keep-alive for
// strangers to bound: a response to a request that authenticated nothing closes its socket (http/app.ts).
/**
 * A TLS handshake takes one or two round trips: 10 s covers a bad mobile link; a socket still silent holds a slot for
 * nothing.
 */
export const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
export const MAX_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Request line and headers within this of the TLS handshake (an idle socket that never sends a request too). */
export const HEADERS_TIMEOUT_MS = 10_000;
export const MAX_HEADERS_TIMEOUT_MS = 10_000;
/**
 * Sockets one address may hold before it authenticates (a handshake or request in progress). Agents hold
 * one only for their handshake (ms), so 256 lets a few hundred agents behind one NAT reconnect at once;
 * the benchmark's storm keeps 50 in flight.
 */
export const MAX_UNAUTHENTICATED_PER_ADDRESS = 256;
/**
 * Unauthenticated sockets in all; past it the oldest is dropped for the newcomer. ~2 k sockets ≈ 20 MiB of TLS state.
 */
export const MAX_UNAUTHENTICATED = 2_048;

/** How often main looks at its server certificate's expiry (and renews its own from its CA). */
export const SERVER_CERT_CHECK_MS = 3_600_000;
/** TLS session-ticket key lifetime: a stolen key opens at most a day of resumed sessions (ticket-keys.ts). */
export const TICKET_KEY_ROTATION_MS = 86_400_000;

export interface MainConfig {
  format: 1;
  hostname: string;
  port: number;
  bind: string;
  publicUrl?: string;
  maxFrameBytes: number;
  heartbeatIntervalMs: number;
  deadPeerTimeoutMs: number;
  maxPendingCommands: number;
  bodyLimitBytes: number;
  /** Failed authentications one address may make per minute before the rest of the minute is refused (429). */
  authFailuresPerMinute: number;
  /** Lifetime of main's statements for the direct tunnel path (DIRECT_STATEMENT_TTL_MS). */
  directStatementTtlMs: number;
  tlsHandshakeTimeoutMs: number;
  headersTimeoutMs: number;
  maxUnauthenticatedPerAddress: number;
  maxUnauthenticated: number;
  serverCertCheckMs: number;
  ticketKeyRotationMs: number;
}

export const MAIN_CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['format', 'hostname', 'port'],
  properties: {
    format: { const: 1 },
    hostname: { type: 'string', minLength: 1, maxLength: 253 },
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    bind: { type: 'string', minLength: 1 },
    publicUrl: { type: 'string', pattern: '^https://' },
    maxFrameBytes: { type: 'integer', minimum: 4096, maximum: 64 * 1024 * 1024 },
    heartbeatIntervalMs: { type: 'integer', minimum: 100, maximum: 600_000 },
    deadPeerTimeoutMs: { type: 'integer', minimum: 300, maximum: 3_600_000 },
    maxPendingCommands: { type: 'integer', minimum: 1 },
    bodyLimitBytes: { type: 'integer', minimum: 1024, maximum: 64 * 1024 * 1024 },
    authFailuresPerMinute: { type: 'integer', minimum: 1, maximum: 1_000_000 },
    directStatementTtlMs: { type: 'integer', minimum: 2_000, maximum: MAX_DIRECT_STATEMENT_MS },
    tlsHandshakeTimeoutMs: { type: 'integer', minimum: 1000, maximum: MAX_TLS_HANDSHAKE_TIMEOUT_MS },
    headersTimeoutMs: { type: 'integer', minimum: 1000, maximum: MAX_HEADERS_TIMEOUT_MS },
    maxUnauthenticatedPerAddress: { type: 'integer', minimum: 1, maximum: 1_000_000 },
    maxUnauthenticated: { type: 'integer', minimum: 1, maximum: 1_000_000 },
    serverCertCheckMs: { type: 'integer', minimum: 1000, maximum: 86_400_000 },
    ticketKeyRotationMs: { type: 'integer', minimum: 5000, maximum: 7 * 86_400_000 },
  },
} as const;

const check = configChecker<Partial<MainConfig> & Pick<MainConfig, 'format' | 'hostname' | 'port'>>(MAIN_CONFIG_SCHEMA);

export function checkMainConfig(raw: unknown, source: string): Readonly<MainConfig> {
  const r = check(raw, source);
  return Object.freeze({
    bind: '::',
    maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
    heartbeatIntervalMs: HEARTBEAT_INTERVAL_MS,
    deadPeerTimeoutMs: DEAD_PEER_TIMEOUT_MS,
    maxPendingCommands: MAX_PENDING_COMMANDS,
    bodyLimitBytes: 1024 * 1024,
    authFailuresPerMinute: DEFAULT_THROTTLE.maxFailures,
    directStatementTtlMs: DIRECT_STATEMENT_TTL_MS,
    tlsHandshakeTimeoutMs: TLS_HANDSHAKE_TIMEOUT_MS,
    headersTimeoutMs: HEADERS_TIMEOUT_MS,
    maxUnauthenticatedPerAddress: MAX_UNAUTHENTICATED_PER_ADDRESS,
    maxUnauthenticated: MAX_UNAUTHENTICATED,
    serverCertCheckMs: SERVER_CERT_CHECK_MS,
    ticketKeyRotationMs: TICKET_KEY_ROTATION_MS,
    ...r,
  });
}

export async function loadMainConfig(path: string): Promise<Readonly<MainConfig>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new BadParameterError(
      'ERR_MAIN_NOT_INITIALISED',
      `${path} not found: run 'palisade main init --data DIR' first`,
      { field: 'data' },
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new BadParameterError('ERR_CONFIG_INVALID', `${path} is not valid JSON`);
  }
  return checkMainConfig(raw, path);
}
