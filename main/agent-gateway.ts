/**
 * The agent gateway: WebSocket upgrades on main's HTTPS port. `/agent/v1` admits only peers whose TLS
 * client certificate was issued by main's CA and maps to a live (not revoked) agent; `/enrol/v1` is
 * the one place a certificate-less client may speak (enrol-endpoint.ts). Identity comes from the peer
 * certificate alone, never from what a frame claims.
 *
 * Refused connections (no, unknown or revoked certificate) count against their source address in
 * the shared failure throttle (auth-throttle.ts); agents with a valid certificate are never held back by it.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Envelope, EnvelopeInit } from '#common/codec.js';
import { errorMessage, WS_CLOSE } from '#common/errors.js';
import { normaliseSerial } from '#common/pki.js';
import type { Logger } from '#common/logging.js';
import type { AgentRecord, AuditRecord, Registry } from './registry.js';
import type { Enrolment } from './enrolment.js';
import type { AuditLog } from './audit.js';
import { auditThrottled, tooManyFailures, type AuthFailureThrottle } from './auth-throttle.js';
import { AgentSession, type SessionLimits } from './agent-session.js';
import { ENROL_PATH, EnrolEndpoint } from './enrol-endpoint.js';
import { refuseUpgrade, remoteOf } from './ws-upgrade.js';

export const AGENT_PATH = '/agent/v1';
/** Persist heartbeat system info at most this often per agent: status is served from memory. */
const SYSINFO_PERSIST_MS = 60_000;
/** Spread of the come-back-later hint at shutdown, so agents don't return in one wave. */
const SHUTDOWN_RETRY_SPREAD_MS = 5_000;

export interface GatewayEvents {
  onAgentReady(agentId: string): void;
  onResult(agentId: string, env: Envelope): void;
  onEvent?(agentId: string, env: Envelope): void;
  onAgentGone?(agentId: string, agent?: AgentRecord): void;
  onTunnel?(agent: AgentRecord, env: Envelope): void;
}

export interface LiveStatus { online: boolean; lastSeen?: string; sysinfo?: Record<string, unknown>; connectedAt?: string; remote?: string }

export class AgentGateway {
  private readonly wss: WebSocketServer;
  private readonly sessions = new Map<string, AgentSession>();
  private readonly live = new Map<string, { lastSeen: string; sysinfo?: Record<string, unknown>; persistedAt: number }>();
  private readonly enrol: EnrolEndpoint;
  private sweepTimer?: NodeJS.Timeout;
  private closing = false;
  events?: GatewayEvents;

  constructor(
    private readonly registry: Registry,
    enrolment: Enrolment,
    private readonly audit: AuditLog,
    private readonly throttle: AuthFailureThrottle,
    private readonly limits: SessionLimits,
    private readonly log: Logger,
  ) {
    // The ws hard limit sits above the codec's, so a slightly oversized frame still gets an Error frame.
    this.wss = new WebSocketServer({ noServer: true, maxPayload: limits.maxFrameBytes + 64 * 1024, perMessageDeflate: false, clientTracking: false });
    this.enrol = new EnrolEndpoint(this.wss, enrolment, audit, throttle, limits, log.child({ component: 'enrol' }));
  }

  start(): void {
    const every = Math.max(100, Math.min(1000, this.limits.deadPeerTimeoutMs / 4));
    this.sweepTimer = setInterval(() => this.sweepDeadPeers(), every);
    this.sweepTimer.unref();
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '').split('?')[0];
    socket.on('error', () => socket.destroy());
    if (this.closing) return refuseUpgrade(socket, 503, 'ERR_SHUTTING_DOWN', 'main is shutting down; retry shortly');
    if (path === ENROL_PATH) return this.enrol.handleUpgrade(req, socket, head);
    if (path !== AGENT_PATH) return refuseUpgrade(socket, 404, 'ERR_NOT_FOUND', 'no WebSocket endpoint at this path');
    void this.admit(req, socket, head).catch((e: unknown) => {
      this.log.error({ err: errorMessage(e) }, 'agent admission failed');
      refuseUpgrade(socket, 500, 'ERR_INTERNAL', 'internal error');
    });
  }

  private async admit(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const tls = req.socket as TLSSocket;
    const address = req.socket.remoteAddress ?? '?';
    const remote = remoteOf(req);
    const cert = tls.authorized ? tls.getPeerCertificate() : undefined;
    if (!cert || !cert.serialNumber) {
      return this.refuse(socket, address, 401, 'ERR_AGENT_CERT_REQUIRED', 'a client certificate issued by this main is required',
        { actor: 'anonymous', action: 'agent.connect', outcome: 'denied', remote, detail: { code: 'ERR_AGENT_CERT_REQUIRED', tlsError: String(tls.authorizationError ?? 'no certificate') } });
    }
    const serial = normaliseSerial(cert.serialNumber);
    const agentId = await this.registry.certSerials.get(serial);
    const agent = agentId ? await this.registry.agents.get(agentId) : undefined;
    if (!agent || agent.revokedAt || agent.certSerial !== serial) {
      return this.refuse(socket, address, 403, 'ERR_AGENT_REVOKED', 'this agent certificate is revoked or unknown; re-install the agent with a new bundle',
        { actor: `cert:${serial}`, action: 'agent.connect', target: agent ? `${agent.kind}:${agent.name}` : undefined, outcome: 'denied', remote, detail: { code: 'ERR_AGENT_REVOKED' } });
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.attach(ws, agent, remote));
  }

  /** A refused upgrade: counted against the address; audited unless the address is already blocked. */
  private async refuse(socket: Duplex, address: string, status: number, code: string, message: string, entry: Omit<AuditRecord, 'at'>): Promise<void> {
    const blockedMs = this.throttle.blockedFor(address);
    if (blockedMs) {
      const e = tooManyFailures(blockedMs);
      return refuseUpgrade(socket, 429, e.code, e.message, blockedMs);
    }
    if (this.throttle.fail(address)) await auditThrottled(this.audit, address, AGENT_PATH);
    await this.audit.record(entry);
    refuseUpgrade(socket, status, code, message);
  }

  private attach(ws: WebSocket, agent: AgentRecord, remote: string): void {
    const log = this.log.child({ agentId: agent.id, agent: agent.name, kind: agent.kind });
    // The session registers itself with the socket's events; the gateway tracks it once it is ready.
    new AgentSession(ws, agent, remote, this.limits, {
      onReady: (s) => {
        const previous = this.sessions.get(agent.id);
        if (previous && previous !== s) previous.close(WS_CLOSE.replaced, 'ERR_SESSION_REPLACED', 'a newer connection of this agent replaced this one');
        this.sessions.set(agent.id, s);
        this.touch(agent.id);
        log.info({ remote }, 'agent connected');
        this.events?.onAgentReady(agent.id);
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
    }, log);
  }

  private onFrame(s: AgentSession, env: Envelope): void {
    if (env.heartbeat) {
      this.touch(s.agent.id, env.heartbeat.sysinfo ? { ...env.heartbeat.sysinfo } as Record<string, unknown> : undefined);
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
    const entry = { lastSeen: new Date().toISOString(), sysinfo: sysinfo ?? prev?.sysinfo, persistedAt: prev?.persistedAt ?? 0 };
    this.live.set(agentId, entry);
    if (sysinfo && Date.now() - entry.persistedAt > SYSINFO_PERSIST_MS) void this.persistLive(agentId);
  }

  private async persistLive(agentId: string): Promise<void> {
    const entry = this.live.get(agentId);
    if (!entry) return;
    entry.persistedAt = Date.now();
    try {
      const rec = await this.registry.agents.get(agentId);
      if (rec) await this.registry.agents.put(agentId, { ...rec, lastSeen: entry.lastSeen, sysinfo: entry.sysinfo ?? rec.sysinfo });
    } catch (e) {
      this.log.warn({ err: errorMessage(e), agentId }, 'could not persist agent status');
    }
  }

  private sweepDeadPeers(): void {
    const cutoff = Date.now() - this.limits.deadPeerTimeoutMs;
    for (const s of this.sessions.values()) {
      if (s.lastFrameAt < cutoff) s.close(WS_CLOSE.goingAway, 'ERR_DEAD_PEER', `no frame for ${this.limits.deadPeerTimeoutMs} ms`);
    }
  }

  send(agentId: string, env: EnvelopeInit): boolean {
    return this.sessions.get(agentId)?.send(env) ?? false;
  }

  /** Sends an already encoded frame (see encodeTunnelFrame). */
  sendEncoded(agentId: string, frame: Uint8Array): boolean {
    return this.sessions.get(agentId)?.sendEncoded(frame) ?? false;
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
    return { online: s?.state === 'ready', lastSeen: l?.lastSeen, sysinfo: l?.sysinfo, connectedAt: s?.connectedAt.toISOString(), remote: s?.remote };
  }

  disconnect(agentId: string, closeCode: number, code: string, message: string): void {
    this.sessions.get(agentId)?.close(closeCode, code, message);
  }

  get connectedCount(): number {
    return this.sessions.size;
  }

  /** Tells every agent to come back later (spread over a few seconds), then closes. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.sweepTimer);
    for (const s of [...this.sessions.values()]) {
      s.close(WS_CLOSE.shutdown, 'ERR_SHUTTING_DOWN', 'main is restarting', 1000 + Math.floor(Math.random() * SHUTDOWN_RETRY_SPREAD_MS));
    }
    await Promise.all([...this.live.keys()].map((id) => this.persistLive(id)));
    this.wss.close();
  }
}
