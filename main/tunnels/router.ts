/**
 * Routes engine ⇄ tenant tunnel records between an engine's session and the session of the host that
 * runs the engine's tenant. Identity comes from the sessions, never from the frames: an engine may only
 * reach its own tenant; a host may only answer for a tenant it runs and to an engine of that tenant.
 * Records are opaque here (sealed end to end); main adds the engine's enrolled key, signed, so the
 * tenant can authenticate the engine without trusting the host. When the tenant's host announced an
 * engine endpoint and the engine may use it, main answers the engine's hello with that endpoint and a
 * short-lived signed statement instead (the direct path, agent/tunnel/tunnel-direct.ts), and a fresh one when
 * the engine asks to renew it (a few times per statement lifetime at most); main then carries only what
 * the engine sends when it falls back.
 * An engine reaches only the tenant it was enrolled for by identity (its public key), never a later
 * tenant of the same name, and nothing of a revoked engine passes (refused and audited). What a peer
 * may make main hold or do for records it cannot read (sessions, queues, floods) is bounded in
 * relay-limits.ts.
 */
import { createWriteStream } from 'node:fs';
import { encodeTunnelFrame, parseJsonBytes, TunnelFlow, type Envelope } from '#common/codec.js';
import { errorMessage } from '#common/errors.js';
import type { AuditLog } from '../access/audit.js';
import { engineDirectStatement, engineKeyStatement, RECORD_HANDSHAKE } from '#common/tunnel-statements.js';
import type { Logger } from '#common/logging.js';
import type { AgentRecord, TenantRecord } from '../registry.js';
import type { AgentGateway } from '../agents/gateway.js';
import type { TenantService } from '../tenants/tenants.js';
import type { SigningKey } from '../tenants/signing-key.js';
import { RelayLimits } from './relay-limits.js';
import { DIRECT_STATEMENT_TTL_MS } from '../config.js';
import type { MainMetrics } from '../metrics.js';

const AUDIT_PER_MINUTE = 120;
const EMPTY = new Uint8Array(0);
const ENGINE_AUDIT_ACTIONS = new Set(['tunnel.dial', 'tunnel.listen', 'http.request', 'tcp.check', 'integration.run']);

export class TunnelRouter {
  private readonly keySigs = new Map<string, Buffer>();
  private readonly auditCounts = new Map<string, { minute: number; count: number }>();
  /** Engines refused for their identity or revocation on their current connection: audited once each. */
  private readonly refusedEngines = new Set<string>();
  /**
   * Diagnostic tap (env PALISADE_TUNNEL_TAP=FILE): every record main routes is appended as
   * [1 byte: 0 engine→host, 1 host→engine][4 bytes BE length][record], so an operator (or a test) can
   * inspect exactly what crosses main — ciphertext only.
   */
  private readonly tap = process.env.PALISADE_TUNNEL_TAP
    ? createWriteStream(process.env.PALISADE_TUNNEL_TAP, { flags: 'a' })
    : undefined;
  readonly relay: RelayLimits;

  constructor(
    private readonly gateway: AgentGateway,
    private readonly tenants: TenantService,
    private readonly signingKey: SigningKey,
    private readonly audit: AuditLog,
    private readonly log: Logger,
    /** Frames main relays keep to the limit it announced (Welcome). */
    private readonly maxFrameBytes?: number,
    private readonly revocations?: { isRevoked(engineId: string): boolean },
    /** Lifetime of a direct-path statement (main.json directStatementTtlMs). */
    private readonly statementTtlMs = DIRECT_STATEMENT_TTL_MS,
    private readonly metrics?: MainMetrics,
  ) {
    this.relay = new RelayLimits(gateway, audit, log, statementTtlMs, maxFrameBytes, metrics);
  }

  /**
   * Synchronous on purpose: sealed records carry counter nonces, so they must leave in the order they
   * came; any await here (a LevelDB read) could reorder two records and break the session.
   */
  route(from: AgentRecord, env: Envelope): void {
    const t = env.tunnel!;
    const record = t.record ?? EMPTY;
    if (from.kind === 'engine') {
      if (!from.tenant || env.tenant !== from.tenant || !from.boxPublicKey)
        return this.relay.drop(from, 'not its tenant', record.length);
      const tenant = this.tenants.peek(from.tenant);
      if (!tenant || tenant.status !== 'running') return this.relay.drop(from, 'tenant not running', record.length);
      const refusal = this.refusal(from, tenant);
      if (refusal) return this.refuse(from, refusal, record.length);
      // A fresh statement for the engine's live direct session (the host's endpoint as it is now, or none),
      // as often as a real engine asks: each costs main a signature and a reply.
      if (t.directRenew) {
        if (!this.relay.renewal(from.id)) return this.relay.drop(from, 'renewals over the rate', record.length);
        return this.offerDirect(from, tenant, this.gateway.engineEndpoint(tenant.hostId) ?? '');
      }
      this.capture(0, record);
      if (record[0] !== RECORD_HANDSHAKE) {
        if (!this.relay.admits(from.id, tenant.hostId))
          return this.relay.drop(from, 'no relayed session', record.length);
        if (record.length === 0) this.relay.close(from.id); // the engine ends its session
        if (
          !this.relay.toHost(
            from.id,
            tenant.hostId,
            encodeTunnelFrame(from.tenant, from.id, record, this.maxFrameBytes),
          )
        )
          this.relay.drop(from, 'host not connected', record.length);
        else this.carried('engine_to_host', record.length);
        return;
      }
      if (!this.relay.hello(from.id)) return this.relay.drop(from, 'hellos over the rate', record.length);
      // The engine may dial the tenant's host itself: offer it that (with main's word on its key) instead of relaying.
      const endpoint = t.directOk ? this.gateway.engineEndpoint(tenant.hostId) : undefined;
      if (endpoint) return this.offerDirect(from, tenant, endpoint);
      // Only a handshake needs main's word on who the engine is.
      let sig = this.keySigs.get(from.id);
      if (!sig) {
        sig = this.signingKey.sign(
          engineKeyStatement(from.id, from.name, from.group ?? '', from.tenant, tenant.publicKey, from.boxPublicKey),
        );
        this.keySigs.set(from.id, sig);
      }
      this.gateway.send(tenant.hostId, {
        tenant: from.tenant,
        tunnel: {
          engineId: from.id,
          engineName: from.name,
          ...(from.group ? { engineGroup: from.group } : {}),
          record,
          engineKey: Buffer.from(from.boxPublicKey, 'base64'),
          engineKeySig: sig,
        },
      });
      this.carried('engine_to_host', record.length);
      return;
    }
    // From a host: it must run the tenant, and the engine must be a connected engine of that tenant.
    const tenant = env.tenant ? this.tenants.peek(env.tenant) : undefined;
    if (!tenant || tenant.hostId !== from.id)
      return this.relay.drop(from, 'host does not run the tenant', record.length);
    // A host releases its own hold only; also of an engine gone meanwhile, whose next connection is then not held.
    if (t.flow === TunnelFlow.TUNNEL_FLOW_RESUME) return this.relay.resume(t.engineId ?? '', from.id);
    const engine = t.engineId ? this.gateway.connectedAgent(t.engineId) : undefined;
    if (!engine || engine.kind !== 'engine' || engine.tenant !== tenant.name || this.refusal(engine, tenant))
      return this.relay.drop(from, 'engine not connected', record.length);
    if (t.flow) {
      if (t.flow === TunnelFlow.TUNNEL_FLOW_PAUSE) this.relay.hold(engine.id, from.id);
      return;
    }
    // The tenant's answer to a hello opens the relayed session; an empty record is the host's side ending it.
    if (record[0] === RECORD_HANDSHAKE) this.relay.open(engine.id, from.id, tenant.name);
    else if (record.length === 0) this.relay.close(engine.id);
    if (this.relay.engineBacklogFull(engine, record.length)) return;
    this.capture(1, record);
    this.gateway.sendEncoded(engine.id, encodeTunnelFrame(tenant.name, engine.id, record, this.maxFrameBytes));
    this.carried('host_to_engine', record.length);
  }

  private carried(direction: 'engine_to_host' | 'host_to_engine', bytes: number): void {
    this.metrics?.tunnelBytes.inc({ direction }, bytes);
  }

  /** Main's signed word on the engine for the direct path, valid for statementTtlMs (renewed halfway by the engine). */
  private offerDirect(from: AgentRecord, tenant: TenantRecord, endpoint: string): void {
    // Nothing more, not even a signature, for an engine that does not read what main sends it: it is cut off.
    if (this.relay.engineBacklogFull(from, 0)) return;
    const expiresAtMs = Date.now() + this.statementTtlMs;
    const engineKeySig = this.signingKey.sign(
      engineDirectStatement(
        from.id,
        from.name,
        from.group ?? '',
        tenant.name,
        tenant.publicKey,
        from.boxPublicKey!,
        expiresAtMs,
      ),
    );
    this.gateway.send(from.id, {
      tenant: tenant.name,
      tunnel: {
        direct: {
          endpoint,
          engineId: from.id,
          engineName: from.name,
          ...(from.group ? { engineGroup: from.group } : {}),
          engineKey: Buffer.from(from.boxPublicKey!, 'base64'),
          expiresAtMs,
          engineKeySig,
          ttlMs: this.statementTtlMs,
        },
      },
    });
  }

  /**
   * Why this engine may not reach this tenant although it is enrolled for its name: it was enrolled for
   * an earlier tenant of that name (another public key, the tenant's identity), or it was just revoked.
   */
  private refusal(engine: AgentRecord, tenant: TenantRecord): string | undefined {
    if (this.revocations?.isRevoked(engine.id)) return 'ERR_AGENT_REVOKED';
    if (engine.tenantKey !== tenant.publicKey) return 'ERR_TUNNEL_TENANT_IDENTITY';
    return undefined;
  }

  /** Drops the engine's frame; the first refusal per connection goes to the audit log. */
  private refuse(from: AgentRecord, code: string, bytes: number): void {
    this.relay.drop(from, 'engine refused', bytes);
    if (this.refusedEngines.has(from.id)) return;
    this.refusedEngines.add(from.id);
    const reason =
      code === 'ERR_AGENT_REVOKED'
        ? 'the engine was revoked'
        : `the engine was enrolled for an earlier tenant named "${from.tenant ?? ''}", not this one (another public key); re-install it with a new bundle`;
    void this.audit
      .record({
        actor: `engine:${from.name}`,
        action: 'engine.tunnel',
        target: `tenant:${from.tenant ?? ''}`,
        outcome: 'denied',
        detail: { agentId: from.id, code, reason },
      })
      .catch((e: unknown) => this.log.warn({ err: errorMessage(e) }, 'audit write failed'));
  }

  private capture(direction: 0 | 1, record: Uint8Array): void {
    if (!this.tap) return;
    const head = Buffer.alloc(5);
    head[0] = direction;
    head.writeUInt32BE(record.length, 1);
    this.tap.write(Buffer.concat([head, record]));
  }

  /**
   * An engine reports what it refused (a dial, a listener, an integration command outside its allow-list):
   * main writes it to the audit log under the engine's own name, whatever the event claims.
   */
  engineEvent(agentId: string, env: Envelope): void {
    const agent = this.gateway.connectedAgent(agentId);
    if (agent?.kind !== 'engine' || env.event?.type !== 'audit') return;
    // A misbehaving engine must not flood main's audit log: at most AUDIT_PER_MINUTE entries per engine.
    const minute = Math.floor(Date.now() / 60_000);
    const seen = this.auditCounts.get(agentId);
    const count = seen?.minute === minute ? seen.count + 1 : 1;
    this.auditCounts.set(agentId, { minute, count });
    if (count > AUDIT_PER_MINUTE) {
      if (count === AUDIT_PER_MINUTE + 1)
        this.log.warn(
          { agentId, limit: AUDIT_PER_MINUTE },
          'engine audit events over the per-minute limit are dropped',
        );
      return;
    }
    let d: Record<string, unknown>;
    try {
      d = parseJsonBytes(env.event.data) as Record<string, unknown>;
    } catch {
      return;
    }
    if (!d || typeof d !== 'object' || typeof d.action !== 'string' || !ENGINE_AUDIT_ACTIONS.has(d.action)) return;
    const text = (v: unknown) => (typeof v === 'string' ? v.slice(0, 300) : undefined);
    void this.audit
      .record({
        actor: `engine:${agent.name}`,
        action: `engine.${d.action}`,
        target: text(d.target),
        outcome: 'denied',
        detail: { tenant: agent.tenant, code: text(d.code), reason: text(d.reason) },
      })
      .catch((e: unknown) => this.log.warn({ err: errorMessage(e) }, 'audit write failed'));
  }

  /**
   * An agent disconnected. An engine: an empty record tells its tenant to end that session (its streams
   * error out). A host: its engines' relayed sessions end with it (relay-limits.ts).
   */
  agentGone(agentId: string, agent: AgentRecord | undefined): void {
    this.auditCounts.delete(agentId);
    this.relay.agentGone(agentId, agent);
    this.refusedEngines.delete(agentId);
    this.keySigs.delete(agentId);
    if (agent?.kind !== 'engine' || !agent.tenant) return;
    const tenant = this.tenants.peek(agent.tenant);
    if (tenant)
      this.gateway.send(tenant.hostId, { tenant: tenant.name, tunnel: { engineId: agentId, record: Buffer.alloc(0) } });
  }
}
