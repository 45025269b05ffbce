/**
 * The agent gateway: WebSocket upgrades on main's HTTPS port. `/agent/v1` admits only peers whose TLS
 * client certificate was issued by main's CA and maps to a live (not revoked) agent; `/enrol/v1` is
 * the one place a certificate-less client may speak (enrolment/endpoint.ts). Identity comes from the peer
 * certificate alone, never from what a frame claims.
 *
 * One live session per agent. A second connection with the same certificate is either a copy of the
 * certificate or the same agent back after losing its network before main noticed. Main asks the live
 * session (a WebSocket ping, DUPLICATE_PROBE_MS): if it answers, the newcomer is a copy — refused with an
 * Error frame and close code 4005, audited `agent.duplicate-session`, the live one untouched; if not, the
 * old session is dead and the newcomer takes over (audited `agent.session-takeover`).
 * Refused connections (no, unknown or revoked certificate, a copy) count against their source address in
 * the shared failure throttle (auth-throttle.ts); agents with a valid certificate are never held back by it.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Envelope, EnvelopeInit } from '#common/codec.js';
import { errorMessage, WS_CLOSE } from '#common/errors.js';
import type { ErrorCode } from '#common/error-codes.js';
import type { Logger } from '#common/logging.js';
import type { AgentRecord, AuditRecord, Registry } from '../registry.js';
import type { Enrolment } from '../enrolment/enrolment.js';
import type { AuditLog } from '../access/audit.js';
import { auditThrottled, tooManyFailures, type AuthFailureThrottle } from '../access/auth-throttle.js';
import { AgentSession, type SessionLimits, type WelcomeInit } from './session.js';
import { ENROL_PATH, EnrolEndpoint } from '../enrolment/endpoint.js';
import { refuseUpgrade, remoteOf, sendAndClose } from './ws-upgrade.js';
import { peerAgent } from './peer-agent.js';
import type { MainMetrics } from '../metrics.js';

export const AGENT_PATH = '/agent/v1';
/** Persist heartbeat system info at most this often per agent: status is served from memory. */
const SYSINFO_PERSIST_MS = 60_000;
/** Spread of the come-back-later hint at shutdown, so agents don't return in one wave. */
const SHUTDOWN_RETRY_SPREAD_MS = 5_000;
/**
 * How long a live session has to answer a ping before a newcomer with its certificate takes over. A live
 * agent answers within milliseconds (ws answers pings in its receive path, before any application work);
 * 5 s covers a pong queued behind a full send backlog (2 MiB, agent/main-connection.ts) on a slow link,
 * and is all a genuine agent back from a network cut waits.
 */
export const DUPLICATE_PROBE_MS = 5_000;
/** A refused copy may try again after this long: a copy of a certificate gains nothing by hammering. */
const DUPLICATE_RETRY_MS = 60_000;
const DUPLICATE_CODE = 'ERR_AGENT_DUPLICATE_SESSION';

export interface GatewayEvents {
  /** `hello`: what the agent said of itself (its version, its last upgrade). */
  onAgentReady(agentId: string, hello?: NonNullable<Envelope['hello']>, agent?: AgentRecord): void;
  onResult(agentId: string, env: Envelope): void;
  onEvent?(agentId: string, env: Envelope): void;
  onAgentGone?(agentId: string, agent?: AgentRecord): void;
  onTunnel?(agent: AgentRecord, env: Envelope): void;
  welcomeExtras?(agent: AgentRecord): Partial<WelcomeInit>;
}

export interface LiveStatus {
  online: boolean;
  lastSeen?: string;
  sysinfo?: Record<string, unknown>;
  connectedAt?: string;
  remote?: string;
}

export class AgentGateway {
  private readonly wss: WebSocketServer;
  private readonly sessions = new Map<string, AgentSession>();
  private readonly live = new Map<
    string,
    { lastSeen: string; sysinfo?: Record<string, unknown>; persistedAt: number }
  >();
  /** Probes of live sessions in flight, by agent id: newcomers at the same moment share one. */
  private readonly probes = new Map<string, Promise<boolean>>();
  private readonly enrol: EnrolEndpoint;
  private sweepTimer?: NodeJS.Timeout;
  private closing = false;
  events?: GatewayEvents;
  /** Told of each socket admitted as a live agent: main's connection caps no longer count it (connection-guard.ts). */
  onAuthenticated?: (socket: Socket) => void;

  constructor(
    private readonly registry: Registry,
    enrolment: Enrolment,
    private readonly audit: AuditLog,
    private readonly throttle: AuthFailureThrottle,
    private readonly limits: SessionLimits,
    private readonly log: Logger,
    metrics?: MainMetrics,
  ) {
    // The ws hard limit sits above the codec's, so a slightly oversized frame still gets an Error frame.
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: limits.maxFrameBytes + 64 * 1024,
      perMessageDeflate: false,
      clientTracking: false,
    });
    const enrolLog = log.child({ component: 'enrol' });
    this.enrol = new EnrolEndpoint(this.wss, enrolment, audit, throttle, limits, enrolLog, metrics);
  }

  start(): void {
    const every = Math.max(100, Math.min(1000, this.limits.deadPeerTimeoutMs / 4));
    this.sweepTimer = setInterval(() => this.sweepDeadPeers(), every);
    this.sweepTimer.unref();
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '').split('?')[0];
    socket.on('error', () => socket.destroy());
    if (this.closing) return refuseUpgrade(socket, 'ERR_SHUTTING_DOWN', 'main is shutting down; retry shortly');
    if (path === ENROL_PATH) return this.enrol.handleUpgrade(req, socket, head);
    if (path !== AGENT_PATH) return refuseUpgrade(socket, 'ERR_NOT_FOUND', 'no WebSocket endpoint at this path');
    void this.admit(req, socket, head).catch((e: unknown) => {
      this.log.error({ err: errorMessage(e) }, 'agent admission failed');
      refuseUpgrade(socket, 'ERR_INTERNAL', 'internal error');
    });
  }

  private async admit(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const tls = req.socket as TLSSocket;
    const address = req.socket.remoteAddress ?? '?';
    const remote = remoteOf(req);
    const { serial, record, agent } = await peerAgent(this.registry, tls);
    if (!serial) {
      return this.refuse(
        socket,
        address,
        'ERR_AGENT_CERT_REQUIRED',
        'a client certificate issued by this main is required',
        {
          actor: 'anonymous',
          action: 'agent.connect',
          outcome: 'denied',
          remote,
          detail: { code: 'ERR_AGENT_CERT_REQUIRED', tlsError: String(tls.authorizationError ?? 'no certificate') },
        },
      );
    }
    if (!agent) {
      return this.refuse(
        socket,
        address,
        'ERR_AGENT_REVOKED',
        'this agent certificate is revoked or unknown; re-install the agent with a new bundle',
        {
          actor: `cert:${serial}`,
          action: 'agent.connect',
          target: record ? `${record.kind}:${record.name}` : undefined,
          outcome: 'denied',
          remote,
          detail: { code: 'ERR_AGENT_REVOKED' },
        },
      );
    }
    const live = this.sessions.get(agent.id);
    if (live && (await this.answers(live))) return this.refuseDuplicate(req, socket, head, address, agent, live.remote);
    if (live) {
      live.close(WS_CLOSE.goingAway, 'ERR_DEAD_PEER', 'did not answer while a new connection of this agent came in');
      await this.audit.record({
        actor: `agent:${agent.id}`,
        action: 'agent.session-takeover',
        target: `${agent.kind}:${agent.name}`,
        outcome: 'ok',
        remote,
        detail: { previousRemote: live.remote },
      });
    }
    this.onAuthenticated?.(req.socket);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.attach(ws, agent, remote));
  }

  /** A refused upgrade: counted against the address; audited unless the address is already blocked. */
  private async refuse(
    socket: Duplex,
    address: string,
    code: ErrorCode,
    message: string,
    entry: Omit<AuditRecord, 'at'>,
  ): Promise<void> {
    const blockedMs = this.throttle.blockedFor(address);
    if (blockedMs) {
      const e = tooManyFailures(blockedMs);
      return refuseUpgrade(socket, e.code, e.message, blockedMs);
    }
    if (this.throttle.fail(address, 'agent')) await auditThrottled(this.audit, address, AGENT_PATH);
    await this.audit.record(entry);
    refuseUpgrade(socket, code, message);
  }

  /** Whether a live session answers a ping in time; concurrent newcomers share one probe. */
  private answers(live: AgentSession): Promise<boolean> {
    let p = this.probes.get(live.agent.id);
    if (!p) {
      p = live.answersPing(DUPLICATE_PROBE_MS).finally(() => this.probes.delete(live.agent.id));
      this.probes.set(live.agent.id, p);
    }
    return p;
  }

  /**
   * A copy of a live agent's certificate: an Error frame and close 4005 after the upgrade, so any agent build can read
   * why.
   */
  private async refuseDuplicate(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    address: string,
    agent: AgentRecord,
    liveRemote: string,
  ): Promise<void> {
    const remote = remoteOf(req);
    // A copy that keeps trying is answered, not audited, once its address is over the failure limit.
    const blockedMs = this.throttle.blockedFor(address);
    if (blockedMs) {
      const e = tooManyFailures(blockedMs);
      return refuseUpgrade(socket, e.code, e.message, blockedMs);
    }
    if (this.throttle.fail(address, 'agent')) await auditThrottled(this.audit, address, AGENT_PATH);
    await this.auditDuplicate(agent, remote, liveRemote);
    this.wss.handleUpgrade(req, socket, head, (ws) =>
      sendAndClose(ws, { error: duplicateError() }, WS_CLOSE.duplicate),
    );
  }

  private auditDuplicate(agent: AgentRecord, remote: string, liveRemote: string): Promise<void> {
    this.log.warn({ agentId: agent.id, remote, liveRemote }, 'duplicate agent session refused');
    return this.audit.record({
      actor: `agent:${agent.id}`,
      action: 'agent.duplicate-session',
      target: `${agent.kind}:${agent.name}`,
      outcome: 'denied',
      remote,
      detail: { code: DUPLICATE_CODE, liveRemote },
    });
  }

  private attach(ws: WebSocket, agent: AgentRecord, remote: string): void {
    const log = this.log.child({ agentId: agent.id, agent: agent.name, kind: agent.kind });
    // The session registers itself with the socket's events; the gateway tracks it once it is ready.
    new AgentSession(
      ws,
      agent,
      remote,
      this.limits,
      {
        welcomeExtras: () => this.events?.welcomeExtras?.(agent) ?? {},
        onReady: (s) => {
          const previous = this.sessions.get(agent.id);
          if (previous && previous !== s) {
            // Both passed admission before either was ready: the first one ready stays.
            const e = duplicateError();
            s.close(WS_CLOSE.duplicate, e.code, e.message, e.retryAfterMs);
            void this.auditDuplicate(agent, remote, previous.remote).catch((err: unknown) =>
              log.error({ err: errorMessage(err) }, 'audit write failed'),
            );
            return;
          }
          this.sessions.set(agent.id, s);
          this.touch(agent.id);
          log.info({ remote }, 'agent connected');
          this.events?.onAgentReady(agent.id, s.hello, agent);
        },
        onFrame: (s, env) => this.onFrame(s, env),
        onClosed: (s) => {
          if (this.sessions.get(agent.id) === s) {
            this.sessions.delete(agent.id);
            log.info('agent disconnected');
            this.events?.onAgentGone?.(agent.id, agent);
            void this.persistLive(agent.id);
          }
        },
      },
      log,
    );
  }

  private onFrame(s: AgentSession, env: Envelope): void {
    if (env.heartbeat) {
      this.touch(
        s.agent.id,
        env.heartbeat.sysinfo ? ({ ...env.heartbeat.sysinfo } as Record<string, unknown>) : undefined,
      );
      s.send({ replyTo: env.id, heartbeat: { sentAtMs: Date.now() } });
    } else if (env.result) {
      this.touch(s.agent.id);
      this.events?.onResult(s.agent.id, env);
    } else if (env.tunnel) {
      this.events?.onTunnel?.(s.agent, env);
    } else if (env.event) {
      this.events?.onEvent?.(s.agent.id, env);
    } else if (env.error) {
      this.log.warn({ agentId: s.agent.id, code: env.error.code }, 'agent reported an error');
    }
  }

  private touch(agentId: string, sysinfo?: Record<string, unknown>): void {
    const prev = this.live.get(agentId);
    const entry = {
      lastSeen: new Date().toISOString(),
      sysinfo: sysinfo ?? prev?.sysinfo,
      persistedAt: prev?.persistedAt ?? 0,
    };
    this.live.set(agentId, entry);
    if (sysinfo && Date.now() - entry.persistedAt > SYSINFO_PERSIST_MS) void this.persistLive(agentId);
  }

  private async persistLive(agentId: string): Promise<void> {
    const entry = this.live.get(agentId);
    if (!entry) return;
    entry.persistedAt = Date.now();
    try {
      const rec = await this.registry.agents.get(agentId);
      if (rec)
        await this.registry.agents.put(agentId, {
          ...rec,
          lastSeen: entry.lastSeen,
          sysinfo: entry.sysinfo ?? rec.sysinfo,
        });
    } catch (e) {
      this.log.warn({ err: errorMessage(e), agentId }, 'could not persist agent status');
    }
  }

  private sweepDeadPeers(): void {
    const cutoff = Date.now() - this.limits.deadPeerTimeoutMs;
    for (const s of this.sessions.values()) {
      if (s.lastFrameAt < cutoff && !s.readingPaused)
        s.close(WS_CLOSE.goingAway, 'ERR_DEAD_PEER', `no frame for ${this.limits.deadPeerTimeoutMs} ms`);
    }
  }

  send(agentId: string, env: EnvelopeInit): boolean {
    return this.sessions.get(agentId)?.send(env) ?? false;
  }

  /** Sends an already encoded frame (see encodeTunnelFrame); `done` as AgentSession.sendEncoded. */
  sendEncoded(agentId: string, frame: Uint8Array, done?: () => void): boolean {
    return this.sessions.get(agentId)?.sendEncoded(frame, done) ?? false;
  }

  /** Bytes main holds for a connected agent, not yet written to its socket (0 when not connected). */
  queuedBytes(agentId: string): number {
    return this.sessions.get(agentId)?.queuedBytes ?? 0;
  }

  /**
   * Stops or resumes reading a connected agent's frames (backpressure for the tunnel relay); false if not connected.
   */
  pauseReading(agentId: string, paused: boolean): boolean {
    const s = this.sessions.get(agentId);
    s?.pauseReading(paused);
    return s !== undefined;
  }

  /** The record of a connected agent, as it was when its session was admitted. */
  connectedAgent(agentId: string): AgentRecord | undefined {
    const s = this.sessions.get(agentId);
    return s?.state === 'ready' ? s.agent : undefined;
  }

  /** Where engines may dial this (connected) host directly, if it announced a place. */
  engineEndpoint(agentId: string): string | undefined {
    const s = this.sessions.get(agentId);
    return s?.state === 'ready' ? s.engineEndpoint : undefined;
  }

  isOnline(agentId: string): boolean {
    return this.sessions.get(agentId)?.state === 'ready';
  }

  status(agentId: string): LiveStatus {
    const s = this.sessions.get(agentId);
    const l = this.live.get(agentId);
    return {
      online: s?.state === 'ready',
      lastSeen: l?.lastSeen,
      sysinfo: l?.sysinfo,
      connectedAt: s?.connectedAt.toISOString(),
      remote: s?.remote,
    };
  }

  disconnect(agentId: string, closeCode: number, code: string, message: string, retryAfterMs?: number): void {
    this.sessions.get(agentId)?.close(closeCode, code, message, retryAfterMs);
  }

  get connectedCount(): number {
    return this.sessions.size;
  }

  /** Agents with a ready session, by kind (metrics.ts). */
  connectedByKind(): Record<string, number> {
    const by: Record<string, number> = {};
    for (const s of this.sessions.values()) if (s.state === 'ready') by[s.agent.kind] = (by[s.agent.kind] ?? 0) + 1;
    return by;
  }

  /** Whether it admits agents: started and not closing (/readyz). */
  get accepting(): boolean {
    return this.sweepTimer !== undefined && !this.closing;
  }

  /** Tells every agent to come back later (spread over a few seconds), then closes. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.sweepTimer);
    for (const s of [...this.sessions.values()]) {
      s.close(
        WS_CLOSE.shutdown,
        'ERR_SHUTTING_DOWN',
        'main is restarting',
        1000 + Math.floor(Math.random() * SHUTDOWN_RETRY_SPREAD_MS),
      );
    }
    await Promise.all([...this.live.keys()].map((id) => this.persistLive(id)));
    this.wss.close();
  }
}

function duplicateError(): { code: string; message: string; retryable: boolean; retryAfterMs: number } {
  return {
    code: DUPLICATE_CODE,
    retryable: true,
    retryAfterMs: DUPLICATE_RETRY_MS,
    message:
      "another connection with this agent's certificate is live and answering; this one is refused as a copy (audited)",
  };
}
