/**
 * The host ⇄ tenant IPC: every message between a host and one of its tenant processes, both ways, as
 * one typed union per direction, with the runtime check each side applies to what it receives and the
 * functions each side sends with. The channel is Node's fork IPC with `serialization: 'advanced'`
 * (structured clone): records and keys travel as bytes, never re-encoded, and an engine's direct
 * connection travels as a socket handle beside its message.
 *
 * Not protobuf, on purpose: both ends are the same agent install (the host forks the tenant-main.js
 * beside it), so there is no version skew to survive, and structured clone carries bytes and socket
 * handles that a protobuf frame could not. This module is the schema; proto/palisade.proto points here.
 *
 * The tenant runs as its own system user and is not trusted by its host: a malformed message from a
 * child is dropped and logged, never thrown at the host. Not here: what each side does with a message
 * (agent/host/tenant-process.ts, agent/tenant/tenant-main.ts) nor the tunnel bytes themselves.
 * It lives at agent/ root because host and tenant code may not import each other (eslint.config.js).
 */
import type { ChildProcess } from 'node:child_process';
import { Socket } from 'node:net';
import { DEFAULT_MAX_FRAME_BYTES } from '#common/codec.js';
import type { Logger } from '#common/logging.js';
import type { DirectPreamble } from './tunnel/tunnel-direct.js';

/**
 * Bounds on what a tenant may send its host. The host forwards a tunnel record to main in one frame, which
 * must fit main's frame limit with the tenant's and engine's names around it (an oversized record would fail
 * to encode in the host's message handler); and it reports a failure message to main in its tenant status.
 */
export const MAX_TENANT_RECORD_BYTES = DEFAULT_MAX_FRAME_BYTES - 1024;
const MAX_ENGINE_ID = 100;
const MAX_FAILURE_MESSAGE = 2000;
// As many listeners as agent/host/reserved-ports.ts takes in one report.
const MAX_LISTENERS = 4096;
const MAX_LISTEN_TEXT = 300;
/**
 * How often a tenant reports its CPU time and RSS (agent/host/tenant-usage.ts): half an agent's default
 * heartbeat interval (10 s, main's Welcome), so the figures main gets with each heartbeat are at most this old.
 */
export const USAGE_REPORT_MS = 5_000;

/** A tenant's events as it counts them (agent/tenant/events/event-rate.ts): numbers only, never an event. */
export interface EventFigures {
  /** Events its pipeline stored since the process started. */
  stored: number;
  /** Events stored per second over about the last 10 s. */
  perSecond: number;
}

/** What a tenant reports about itself every USAGE_REPORT_MS. */
export interface UsageReport {
  /** CPU time (user + system, µs) since it started `uptimeMs` ago. */
  cpuMicros: number;
  uptimeMs: number;
  rssBytes: number;
  /** Absent from a tenant without an event pipeline. */
  events?: EventFigures;
}

/** One relayed tunnel record of an engine ⇄ tenant session (empty: the session is over). */
export interface TunnelRecord {
  engineId: string;
  /** Host → tenant only: the engine's enrolled name, group, key and main's signature over them (from main's Tunnel). */
  engineName?: string;
  engineGroup?: string;
  record: Uint8Array;
  engineKey?: Uint8Array;
  engineKeySig?: Uint8Array;
}

/** Host → tenant. */
export type HostToTenant =
  /** A record from main for one engine's relayed session, bounded per engine (agent/host/tunnel-feed.ts). */
  | ({ type: 'tunnel' } & TunnelRecord)
  /**
   * An engine's direct connection (the socket is the message's handle): its preamble, checked by the host, and the
   * bytes read so far.
   */
  | { type: 'tunnel-direct'; preamble: DirectPreamble; head: Uint8Array }
  /** Ports an inbound tunnel may not lead to (the other tenants' and the host's); echoed back once held. */
  | { type: 'tunnel-foreign-ports'; ports: number[]; version: number }
  /** The tenant's new outbound listener (its report `seq`) may serve: every other tenant holds its port. */
  | { type: 'tunnel-listeners-ok'; seq: number }
  /** Main's list of this tenant's revoked engines: their sessions end, their hellos are refused. */
  | { type: 'engines-revoked'; engineIds: string[] }
  /**
   * Stop: close the store and exit 0 (as on SIGTERM). The host has no right to signal a tenant that runs as its
   * own user (an installed host holds no CAP_KILL), so this is how it stops one.
   */
  | { type: 'stop' };

/** Tenant → host. */
export type TenantToHost =
  /** Serving on its port: the host marks it running. */
  | { type: 'ready'; port: number; pid: number }
  /** Could not start (sent just before it exits); `code` EADDRINUSE makes the host pick another port. */
  | { type: 'failed'; message: string; code?: string }
  /** A record towards an engine (the host sends it on to main). */
  | { type: 'tunnel'; engineId: string; record: Uint8Array }
  /** All of the tenant's outbound tunnel listeners (ADDR:PORT), answered by tunnel-listeners-ok with `seq`. */
  | { type: 'tunnel-listeners'; listen: string[]; seq: number }
  /** The tenant holds the foreign port set of `version`. */
  | { type: 'tunnel-foreign-ports-ok'; version: number }
  /** Its CPU time, uptime, RSS and event counts (UsageReport): every USAGE_REPORT_MS. */
  | ({ type: 'usage' } & UsageReport);

type Of<U, T> = Extract<U, { type: T }>;

/** What the host does with each message of a tenant process. */
export interface TenantMessageHandlers {
  ready(m: Of<TenantToHost, 'ready'>): void;
  failed(m: Of<TenantToHost, 'failed'>): void;
  tunnel(m: Of<TenantToHost, 'tunnel'>): void;
  listeners(m: Of<TenantToHost, 'tunnel-listeners'>): void;
  foreignPortsHeld(m: Of<TenantToHost, 'tunnel-foreign-ports-ok'>): void;
  usage(m: Of<TenantToHost, 'usage'>): void;
}

/** What a tenant process does with each message of its host. */
export interface HostMessageHandlers {
  tunnel(m: Of<HostToTenant, 'tunnel'>): void;
  /** `socket`: the engine's connection, now this process's own. */
  tunnelDirect(m: Of<HostToTenant, 'tunnel-direct'>, socket: Socket): void;
  foreignPorts(m: Of<HostToTenant, 'tunnel-foreign-ports'>): void;
  listenersOk(m: Of<HostToTenant, 'tunnel-listeners-ok'>): void;
  enginesRevoked(m: Of<HostToTenant, 'engines-revoked'>): void;
  stop(): void;
}

type Fields = Record<string, unknown>;
/** Per message type: which handler takes it, and whether its fields have the types the union says. */
type Table<U extends { type: string }, H> = {
  readonly [T in U['type']]: { on: keyof H; valid(m: Fields, handle?: unknown): boolean };
};

const isInt = (v: unknown): v is number => Number.isSafeInteger(v);
const isBytes = (v: unknown): v is Uint8Array => v instanceof Uint8Array;
const optional = (v: unknown, check: (v: unknown) => boolean) => v === undefined || check(v);
const isString = (v: unknown): v is string => typeof v === 'string';
const listOf = (v: unknown, check: (v: unknown) => boolean) => Array.isArray(v) && v.every(check);

const shortString = (max: number) => (v: unknown) => isString(v) && v.length <= max;
const isEventFigures = (v: unknown): boolean => {
  const e = v as EventFigures | null;
  return (
    typeof e === 'object' &&
    e !== null &&
    isInt(e.stored) &&
    e.stored >= 0 &&
    Number.isFinite(e.perSecond) &&
    e.perSecond >= 0
  );
};

const FROM_TENANT: Table<TenantToHost, TenantMessageHandlers> = {
  ready: { on: 'ready', valid: (m) => isInt(m.port) && isInt(m.pid) },
  failed: {
    on: 'failed',
    valid: (m) => shortString(MAX_FAILURE_MESSAGE)(m.message) && optional(m.code, shortString(64)),
  },
  tunnel: {
    on: 'tunnel',
    valid: (m) =>
      shortString(MAX_ENGINE_ID)(m.engineId) && isBytes(m.record) && m.record.length <= MAX_TENANT_RECORD_BYTES,
  },
  'tunnel-listeners': {
    on: 'listeners',
    valid: (m) =>
      listOf(m.listen, shortString(MAX_LISTEN_TEXT)) && (m.listen as unknown[]).length <= MAX_LISTENERS && isInt(m.seq),
  },
  'tunnel-foreign-ports-ok': { on: 'foreignPortsHeld', valid: (m) => isInt(m.version) },
  usage: {
    on: 'usage',
    valid: (m) =>
      [m.cpuMicros, m.uptimeMs, m.rssBytes].every((v) => isInt(v) && v >= 0) && optional(m.events, isEventFigures),
  },
};

const FROM_HOST: Table<HostToTenant, HostMessageHandlers> = {
  tunnel: {
    on: 'tunnel',
    valid: (m) =>
      isString(m.engineId) &&
      isBytes(m.record) &&
      optional(m.engineName, isString) &&
      optional(m.engineGroup, isString) &&
      optional(m.engineKey, isBytes) &&
      optional(m.engineKeySig, isBytes),
  },
  // The preamble's own fields are the tenant's to check (it does not trust its host): here only its shape.
  'tunnel-direct': {
    on: 'tunnelDirect',
    valid: (m, handle) =>
      handle instanceof Socket && isBytes(m.head) && typeof m.preamble === 'object' && m.preamble !== null,
  },
  'tunnel-foreign-ports': { on: 'foreignPorts', valid: (m) => listOf(m.ports, isInt) && isInt(m.version) },
  'tunnel-listeners-ok': { on: 'listenersOk', valid: (m) => isInt(m.seq) },
  'engines-revoked': { on: 'enginesRevoked', valid: (m) => listOf(m.engineIds, isString) },
  stop: { on: 'stop', valid: () => true },
};

function check<U extends { type: string }, H>(table: Table<U, H>, raw: unknown, handle?: unknown): U | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const type = (raw as Fields).type;
  if (typeof type !== 'string' || !Object.hasOwn(table, type)) return undefined;
  return table[type as U['type']].valid(raw as Fields, handle) ? (raw as U) : undefined;
}

/** A message from a tenant process, if it is one of TenantToHost with fields of the right types. */
export function checkTenantMessage(raw: unknown): TenantToHost | undefined {
  return check(FROM_TENANT, raw);
}

/** A message from the host (with its handle), if it is one of HostToTenant with fields of the right types. */
export function checkHostMessage(raw: unknown, handle?: unknown): HostToTenant | undefined {
  return check(FROM_HOST, raw, handle);
}

/** What a log line may say of a dropped message: its type, if it is a short string (never its fields). */
function typeOf(raw: unknown): string | undefined {
  const t = (raw as Fields | null)?.type;
  return typeof t === 'string' ? t.slice(0, 40) : undefined;
}

/**
 * The host's side: checks every message of `child` and hands it to its handler; a malformed one is dropped and logged.
 */
export function onTenantMessages(child: ChildProcess, on: TenantMessageHandlers, log: Logger): void {
  child.on('message', (raw: unknown, handle?: unknown) => {
    // No message of a tenant carries a handle: one that comes along would stay open in the host (root).
    if (handle) closeHandle(handle);
    const m = checkTenantMessage(raw);
    if (!m) return log.warn({ type: typeOf(raw) }, 'malformed message from a tenant process dropped');
    try {
      (on[FROM_TENANT[m.type].on] as (m: TenantToHost) => void).call(on, m);
    } catch (e) {
      // What the host does with a message is its own code, but it must not end the host for every tenant.
      log.warn({ type: m.type, err: e instanceof Error ? e.message : String(e) }, 'message from a tenant failed');
    }
  });
}

function closeHandle(handle: unknown): void {
  const h = handle as { destroy?: () => void; close?: () => void };
  if (typeof h.destroy === 'function') h.destroy();
  else if (typeof h.close === 'function') h.close();
}

/**
 * The tenant's side: checks every message of its host and hands it to its handler; a malformed one is dropped (its
 * socket closed).
 */
export function onHostMessages(on: HostMessageHandlers, log: Logger): void {
  process.on('message', (raw: unknown, handle?: unknown) => {
    const m = checkHostMessage(raw, handle);
    if (!m) {
      if (handle instanceof Socket) handle.destroy();
      return log.warn({ type: typeOf(raw) }, 'malformed message from the host dropped');
    }
    (on[FROM_HOST[m.type].on] as (m: HostToTenant, socket?: Socket) => void).call(on, m, handle as Socket | undefined);
  });
}

const ignore = (): void => undefined;

/**
 * The host's sends to one tenant process. `done` runs once the channel took the message or failed: a
 * child exiting meanwhile is its exit handler's business, so a failure is not an error here.
 */
export const toTenant = {
  tunnel(child: ChildProcess, r: TunnelRecord, done: () => void = ignore): void {
    child.send({ type: 'tunnel', ...r } satisfies HostToTenant, done);
  },
  /** Node passes the socket's descriptor; the host closes its own copy once it is sent. */
  tunnelDirect(
    child: ChildProcess,
    preamble: DirectPreamble,
    head: Uint8Array,
    socket: Socket,
    done: (e: Error | null) => void,
  ): void {
    child.send({ type: 'tunnel-direct', preamble, head } satisfies HostToTenant, socket, done);
  },
  foreignPorts(child: ChildProcess, ports: number[], version: number): void {
    child.send({ type: 'tunnel-foreign-ports', ports, version } satisfies HostToTenant, ignore);
  },
  listenersOk(child: ChildProcess, seq: number): void {
    child.send({ type: 'tunnel-listeners-ok', seq } satisfies HostToTenant, ignore);
  },
  enginesRevoked(child: ChildProcess, engineIds: string[]): void {
    child.send({ type: 'engines-revoked', engineIds } satisfies HostToTenant, ignore);
  },
  stop(child: ChildProcess): void {
    if (child.connected) child.send({ type: 'stop' } satisfies HostToTenant, ignore);
  },
};

/** Sends to the host if there is one (a tenant started by hand has none); false if not sent. */
function sendToHost(m: TenantToHost): boolean {
  if (!process.connected || !process.send) return false;
  process.send(m);
  return true;
}

/** The tenant process's sends to its host. */
export const toHost = {
  ready: (port: number, pid: number) => sendToHost({ type: 'ready', port, pid }),
  /** `code` only if it is a string (a system error's EADDRINUSE…): anything else would make the message malformed. */
  failed: (message: string, code: unknown) =>
    sendToHost({ type: 'failed', message, ...(isString(code) ? { code } : {}) }),
  tunnel: (engineId: string, record: Uint8Array) => sendToHost({ type: 'tunnel', engineId, record }),
  listeners: (listen: string[], seq: number) => sendToHost({ type: 'tunnel-listeners', listen, seq }),
  foreignPortsHeld: (version: number) => sendToHost({ type: 'tunnel-foreign-ports-ok', version }),
  usage: (u: UsageReport) => sendToHost({ type: 'usage', ...u }),
};
