/**
 * Routes engine ⇄ tenant tunnel records between an engine's session and the session of the host that
 * runs the engine's tenant. Identity comes from the sessions, never from the frames: an engine may only
 * reach its own tenant; a host may only answer for a tenant it runs and to an engine of that tenant.
 * Records are opaque here (sealed end to end); main adds the engine's enrolled key, signed, so the
 * tenant can authenticate the engine without trusting the host.
 */
import type { Envelope } from '#common/codec.js';
import type { Logger } from '#common/logging.js';
import type { AgentRecord } from './registry.js';
import type { AgentGateway } from './agent-gateway.js';
import type { TenantService } from './tenants.js';
import type { SigningKey } from './signing-key.js';

/** What main signs to vouch for an engine's key: the tenant verifies it with main's public key. */
export function engineKeyStatement(engineId: string, tenant: string, keyB64: string): Buffer {
  return Buffer.from(`palisade engine key v1\n${engineId}\n${tenant}\n${keyB64}`, 'utf8');
}

export class TunnelRouter {
  private readonly keySigs = new Map<string, Buffer>();

  constructor(
    private readonly gateway: AgentGateway,
    private readonly tenants: TenantService,
    private readonly signingKey: SigningKey,
    private readonly log: Logger,
  ) {}

  /**
   * Synchronous on purpose: sealed records carry counter nonces, so they must leave in the order they
   * came; any await here (a LevelDB read) could reorder two records and break the session.
   */
  route(from: AgentRecord, env: Envelope): void {
    const t = env.tunnel!;
    if (from.kind === 'engine') {
      if (!from.tenant || env.tenant !== from.tenant || !from.boxPublicKey) return this.drop(from, 'engine may only reach its own tenant');
      const tenant = this.tenants.peek(from.tenant);
      if (!tenant || tenant.status !== 'running') return this.drop(from, `tenant ${from.tenant} is not running`);
      let sig = this.keySigs.get(from.id);
      if (!sig) {
        sig = this.signingKey.sign(engineKeyStatement(from.id, from.tenant, from.boxPublicKey));
        this.keySigs.set(from.id, sig);
      }
      this.gateway.send(tenant.hostId, { tenant: from.tenant, tunnel: { engineId: from.id, record: t.record, engineKey: Buffer.from(from.boxPublicKey, 'base64'), engineKeySig: sig } });
      return;
    }
    // From a host: it must run the tenant, and the engine must be a connected engine of that tenant.
    const tenant = env.tenant ? this.tenants.peek(env.tenant) : undefined;
    if (!tenant || tenant.hostId !== from.id) return this.drop(from, `host does not run tenant "${env.tenant}"`);
    const engine = t.engineId ? this.gateway.connectedAgent(t.engineId) : undefined;
    if (!engine || engine.kind !== 'engine' || engine.tenant !== tenant.name) return this.drop(from, 'engine is not a connected engine of this tenant');
    this.gateway.send(engine.id, { tenant: tenant.name, tunnel: { engineId: engine.id, record: t.record } });
  }

  /** An engine disconnected: an empty record tells its tenant to end that session (its streams error out). */
  engineGone(agentId: string, agent: AgentRecord | undefined): void {
    if (agent?.kind !== 'engine' || !agent.tenant) return;
    const tenant = this.tenants.peek(agent.tenant);
    if (tenant) this.gateway.send(tenant.hostId, { tenant: tenant.name, tunnel: { engineId: agentId, record: Buffer.alloc(0) } });
  }

  private drop(from: AgentRecord, why: string): void {
    this.log.warn({ agentId: from.id, kind: from.kind, why }, 'tunnel record refused');
  }
}
