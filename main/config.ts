/**
 * Main's configuration (`DATA/main.json`), validated with a strict schema — every problem reported at
 * once — with named defaults, then frozen.
 */
import { readFile } from 'node:fs/promises';
import { configChecker } from '#common/config-check.js';
import { BadParameterError } from '#common/errors.js';
import { DEFAULT_MAX_FRAME_BYTES } from '#common/codec.js';
import { MAX_DIRECT_STATEMENT_MS } from '#common/tunnel-direct.js';
import { DEFAULT_THROTTLE } from './auth-throttle.js';

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
    ...r,
  });
}

export async function loadMainConfig(path: string): Promise<Readonly<MainConfig>> {
  let text: string;
  try { text = await readFile(path, 'utf8'); } catch {
    throw new BadParameterError('ERR_MAIN_NOT_INITIALISED', `${path} not found: run 'palisade main init --data DIR' first`, { field: 'data' });
  }
  let raw: unknown;
  try { raw = JSON.parse(text); } catch {
    throw new BadParameterError('ERR_CONFIG_INVALID', `${path} is not valid JSON`);
  }
  return checkMainConfig(raw, path);
}
