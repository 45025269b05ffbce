/**
 * Bounds on main's tunnel relay (router.ts), per agent. Main relays engine ⇄ tenant records it
 * cannot read (sealed end to end), so it bounds what a peer can make it do without reading them:
 * - Sessions: an engine's records other than hellos go on only within a relayed session, which the
 *   tenant's answer to the engine's hello (seen coming from the host) opens. A new hello, an empty record
 *   from either end, the engine or the host going away close it; main tells the engine when the host's
 *   side ended it, so it starts another instead of sending into nothing.
 * - Memory: toward a host, the bytes main queued on one engine's behalf (handed to ws.send, not yet
 *   written; the host's socket is shared by its engines) stop main reading that engine past
 *   RELAY_PAUSE_BYTES, as does the host's request when its queue toward the tenant fills (Tunnel.flow): the
 *   engine's own send backlog then holds its data. Toward an engine, its own socket's queue: an engine that
 *   lets more than ENGINE_BACKLOG_BYTES pile up does not read what it asked for, and is cut off.
 * - Signatures: what an engine asks main to sign is rate-limited, as each costs main a signature and a reply:
 *   hellos (HELLOS_PER_MINUTE) and renewals of its direct-path statement (RENEWAL_BURST, then
 *   RENEWALS_PER_TTL per statement lifetime); the rest are dropped like junk, so a nonstop asker floods.
 * - Floods: an engine whose records main drops (no session, not its tenant, hellos or renewals over the
 *   rate) pass FLOOD_RECORDS or FLOOD_BYTES within FLOOD_WINDOW_MS is disconnected (ERR_TUNNEL_FLOOD) and
 *   audited.
 * Drops are counted per agent (`relay` in GET /engines and /hosts) and logged as one summary line per agent
 * at most every DROP_LOG_MS, never a line per record. It decides nothing about who may reach whom (the
 * router does) and never awaits: records must leave in the order they came.
 */
import { encodeTunnelFrame } from '#common/codec.js';
import { errorMessage, WS_CLOSE } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import { PendingBytes } from '#common/pending-bytes.js';
import { RefusalSummary } from '#common/refusal-summary.js';
import type { AgentGateway } from '../agents/gateway.js';
import type { AuditLog } from '../access/audit.js';
import type { AgentRecord } from '../registry.js';
import type { MainMetrics } from '../metrics.js';

const MiB = 1024 * 1024;
/**
 * Main stops reading an engine while this much of what it relayed waits for the host's socket; it reads
 * again below half of it, so the host's socket never runs dry in between. Twice the engine's own send
 * backlog (agent/main-connection.ts): a legit engine meets it only when its host is the slower side.
 */
export const RELAY_PAUSE_BYTES = 4 * MiB;
const RELAY_RESUME_BYTES = RELAY_PAUSE_BYTES / 2;
/**
 * What may wait in main toward one engine. Its tenant sends only on the credit the engine granted (384 KiB
 * per busy stream, agent/tunnel/stream-mux.ts), so a reading engine stays far below: 64 MiB is 170 streams
 * stalled at once. An engine past it grants credit it does not read (or reads far slower than it asks).
 */
export const ENGINE_BACKLOG_BYTES = 64 * MiB;
/**
 * Dropped records that make a flood. A legit engine drops only what was on its way when its session ended
 * (its 2 MiB send backlog and the sockets' buffers, until main's close reaches it), far below either.
 */
export const FLOOD_WINDOW_MS = 10_000;
export const FLOOD_RECORDS = 4096;
export const FLOOD_BYTES = 64 * MiB;
/** An engine sends a hello per connection and per session restart, with backoff: a few a minute. */
export const HELLOS_PER_MINUTE = 30;
/**
 * Renewals of a direct-path statement: an engine asks halfway through a statement's life (and again every
 * 5 s while no answer comes), so two per lifetime; RENEWALS_PER_TTL per lifetime after a burst of
 * RENEWAL_BURST leaves it room for a lost answer or two, and bounds what a nonstop asker gets signed.
 */
export const RENEWAL_BURST = 4;
export const RENEWALS_PER_TTL = 4;
/** A flooding engine is asked to come back no sooner (a real engine honours it; see MainConnection). */
const FLOOD_RETRY_AFTER_MS = 30_000;
const DROP_LOG_MS = 10_000;
/** At most one `engine.flood` audit entry per engine per this long; the next one counts the ones skipped. */
const FLOOD_AUDIT_MS = 60_000;

/** Why main dropped a record: fixed strings (never text from the frame), the keys of a drop summary. */
export type DropReason =
  | 'not its tenant'
  | 'tenant not running'
  | 'no relayed session'
  | 'hellos over the rate'
  | 'renewals over the rate'
  | 'host does not run the tenant'
  | 'engine not connected'
  | 'host not connected'
  /** Revoked, or enrolled for an earlier tenant of that name (router.ts refusal). */
  | 'engine refused';

export interface RelayStats {
  droppedRecords: number;
  droppedBytes: number;
  floodDisconnects: number;
}

interface AgentRelay {
  /** Engines: the host and tenant of the open relayed session, if any. */
  host?: string;
  tenant?: string;
  /** Engines: bytes relayed toward the host, not yet written to its socket. */
  toHost?: PendingBytes;
  paused: boolean;
  /** Engines: the host that asked main to stop reading this engine (Tunnel.flow), until it resumes. */
  heldBy?: string;
  helloMinute: number;
  hellos: number;
  /** Engines: renewals it may ask for now (a token bucket: RENEWAL_BURST at most), as of renewalsAt. */
  renewals: number;
  renewalsAt: number;
  stats: RelayStats;
  windowAt: number;
  windowRecords: number;
  windowBytes: number;
  drops?: RefusalSummary;
  auditedAt: number;
  unaudited: number;
}

export class RelayLimits {
  private readonly agents = new Map<string, AgentRelay>();

  constructor(
    private readonly gateway: AgentGateway,
    private readonly audit: AuditLog,
    private readonly log: Logger,
    /** Lifetime of main's direct-path statements: how often an engine may renew one. */
    private readonly statementTtlMs: number,
    private readonly maxFrameBytes?: number,
    private readonly metrics?: MainMetrics,
  ) {}

  private of(agentId: string): AgentRelay {
    let r = this.agents.get(agentId);
    if (!r) {
      r = {
        paused: false,
        helloMinute: 0,
        hellos: 0,
        renewals: RENEWAL_BURST,
        renewalsAt: 0,
        stats: { droppedRecords: 0, droppedBytes: 0, floodDisconnects: 0 },
        windowAt: 0,
        windowRecords: 0,
        windowBytes: 0,
        auditedAt: 0,
        unaudited: 0,
      };
      this.agents.set(agentId, r);
    }
    return r;
  }

  /** An engine's hello: closes its relayed session (it starts another); false if over HELLOS_PER_MINUTE. */
  hello(engineId: string): boolean {
    const r = this.of(engineId);
    r.host = undefined;
    const minute = Math.floor(Date.now() / 60_000);
    if (r.helloMinute !== minute) {
      r.helloMinute = minute;
      r.hellos = 0;
    }
    return ++r.hellos <= HELLOS_PER_MINUTE;
  }

  /**
   * An engine asks for a fresh direct-path statement: false if over RENEWAL_BURST and RENEWALS_PER_TTL per statement
   * lifetime.
   */
  renewal(engineId: string): boolean {
    const r = this.of(engineId);
    const now = Date.now();
    r.renewals = Math.min(RENEWAL_BURST, r.renewals + ((now - r.renewalsAt) * RENEWALS_PER_TTL) / this.statementTtlMs);
    r.renewalsAt = now;
    if (r.renewals < 1) return false;
    r.renewals--;
    return true;
  }

  /** The tenant answered the engine's hello (through `hostId`): its relayed session is open. */
  open(engineId: string, hostId: string, tenant: string): void {
    const r = this.of(engineId);
    r.host = hostId;
    r.tenant = tenant;
  }

  /** An end closed the engine's relayed session (an empty record). */
  close(engineId: string): void {
    const r = this.agents.get(engineId);
    if (r) r.host = undefined;
  }

  /** Whether the engine's record may go to `hostId`: its relayed session is open, with that host. Hot path. */
  admits(engineId: string, hostId: string): boolean {
    return this.agents.get(engineId)?.host === hostId;
  }

  /**
   * Relays an engine's encoded record to its host (after admits()); main stops reading the engine while it is ahead.
   */
  toHost(engineId: string, hostId: string, frame: Uint8Array): boolean {
    const r = this.of(engineId);
    const q = (r.toHost ??= new PendingBytes(() => this.maybeResume(engineId, r)));
    if (!this.gateway.sendEncoded(hostId, frame, q.done)) return false;
    q.add(frame.length);
    if (!r.paused && (q.bytes >= RELAY_PAUSE_BYTES || r.heldBy)) this.setPaused(engineId, r, true);
    return true;
  }

  /**
   * The host asks main to stop reading one of its tenant's (connected) engines: its queue toward the tenant is full.
   */
  hold(engineId: string, hostId: string): void {
    const r = this.of(engineId);
    r.heldBy = hostId;
    if (!r.paused) this.setPaused(engineId, r, true);
  }

  /** The host's queue for the engine drained: main may read it again (unless its own queue is still full). */
  resume(engineId: string, hostId: string): void {
    const r = this.agents.get(engineId);
    if (r?.heldBy !== hostId) return;
    r.heldBy = undefined;
    this.maybeResume(engineId, r);
  }

  /**
   * Whether a record of `bytes` toward the engine would put more than ENGINE_BACKLOG_BYTES in its queue;
   * if so the engine is cut off (the caller drops the record).
   */
  engineBacklogFull(engine: AgentRecord, bytes: number): boolean {
    const queued = this.gateway.queuedBytes(engine.id);
    if (queued + bytes <= ENGINE_BACKLOG_BYTES) return false;
    this.cutOff(
      engine,
      'ERR_TUNNEL_BACKLOG',
      `more than ${ENGINE_BACKLOG_BYTES / MiB} MiB of tunnel records wait for this engine, which does not read them`,
      { queuedBytes: queued },
    );
    return true;
  }

  private maybeResume(engineId: string, r: AgentRelay): void {
    if (r.paused && !r.heldBy && (r.toHost?.bytes ?? 0) < RELAY_RESUME_BYTES) this.setPaused(engineId, r, false);
  }

  private setPaused(engineId: string, r: AgentRelay, paused: boolean): void {
    // An engine not connected now starts its next connection unpaused: nothing to remember.
    r.paused = this.gateway.pauseReading(engineId, paused) && paused;
  }

  /** A record main will not relay: counted, summarised in the log, and an engine past the flood limits is cut off. */
  drop(from: AgentRecord, why: DropReason, bytes: number): void {
    const r = this.of(from.id);
    r.stats.droppedRecords++;
    r.stats.droppedBytes += bytes;
    this.metrics?.tunnelDropped.inc({ reason: why });
    r.drops ??= new RefusalSummary(DROP_LOG_MS, (reasons) =>
      this.log.warn(
        { agentId: from.id, agent: from.name, kind: from.kind, reasons, ...r.stats },
        'tunnel records dropped',
      ),
    );
    r.drops.count(why);
    const now = Date.now();
    if (now - r.windowAt >= FLOOD_WINDOW_MS) {
      r.windowAt = now;
      r.windowRecords = 0;
      r.windowBytes = 0;
    }
    r.windowRecords++;
    r.windowBytes += bytes;
    if (from.kind === 'engine' && (r.windowRecords > FLOOD_RECORDS || r.windowBytes > FLOOD_BYTES)) {
      this.cutOff(
        from,
        'ERR_TUNNEL_FLOOD',
        `more than ${FLOOD_RECORDS} tunnel records or ${FLOOD_BYTES / MiB} MiB within ${FLOOD_WINDOW_MS / 1000} s that main could not relay (no session, not this engine's tenant, or hellos or renewals over the rate)`,
        { windowRecords: r.windowRecords, windowBytes: r.windowBytes },
      );
      r.windowAt = 0;
    }
  }

  /**
   * Disconnects an engine that floods main's relay, with the reason in an Error frame; audited at most every
   * FLOOD_AUDIT_MS.
   */
  private cutOff(engine: AgentRecord, code: string, message: string, detail: Record<string, number>): void {
    const r = this.of(engine.id);
    r.stats.floodDisconnects++;
    const remote = this.gateway.status(engine.id).remote;
    this.log.warn(
      { agentId: engine.id, agent: engine.name, remote, code, ...detail },
      'engine disconnected for flooding the tunnel relay',
    );
    this.gateway.disconnect(engine.id, WS_CLOSE.policy, code, message, FLOOD_RETRY_AFTER_MS);
    const now = Date.now();
    if (now - r.auditedAt < FLOOD_AUDIT_MS) {
      r.unaudited++;
      return;
    }
    const repeats = r.unaudited;
    r.auditedAt = now;
    r.unaudited = 0;
    this.audit
      .record({
        actor: `engine:${engine.name}`,
        action: 'engine.flood',
        target: `engine:${engine.name}`,
        outcome: 'denied',
        remote,
        detail: {
          tenant: engine.tenant,
          code,
          reason: message,
          ...detail,
          ...(repeats ? { repeats } : {}),
          droppedRecords: r.stats.droppedRecords,
        },
      })
      .catch((e: unknown) => this.log.warn({ err: errorMessage(e) }, 'audit write failed'));
  }

  /**
   * An agent disconnected. An engine's relayed session ends with it (main reads its next connection from the
   * start). A host takes its engines' relayed sessions along: each engine is told (an empty record), and what
   * the host held back is released.
   */
  agentGone(agentId: string, agent: AgentRecord | undefined): void {
    if (agent?.kind === 'engine') {
      const r = this.agents.get(agentId);
      if (r) {
        r.host = undefined;
        r.paused = false;
      }
      return;
    }
    for (const [engineId, r] of this.agents) {
      if (r.host === agentId) {
        r.host = undefined;
        this.gateway.sendEncoded(
          engineId,
          encodeTunnelFrame(r.tenant ?? '', engineId, new Uint8Array(0), this.maxFrameBytes),
        );
      }
      if (r.heldBy === agentId) {
        r.heldBy = undefined;
        this.maybeResume(engineId, r);
      }
    }
  }

  /** Relayed sessions open now (metrics.ts). */
  openSessions(): number {
    let n = 0;
    for (const r of this.agents.values()) if (r.host !== undefined) n++;
    return n;
  }

  stats(agentId: string): RelayStats {
    return { ...(this.agents.get(agentId)?.stats ?? { droppedRecords: 0, droppedBytes: 0, floodDisconnects: 0 }) };
  }
}
