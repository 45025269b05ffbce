/**
 * Which engines main revoked recently, and telling the hosts: each host's Welcome names those of its
 * tenants (a host that was away when an engine was removed learns it when it returns), and each
 * revocation is pushed at once to the host of the engine's tenant. The host refuses the engine's direct
 * connections and hands the list to its tenants, which end the engine's sessions and refuse its hellos.
 *
 * Recent means REVOCATION_NOTICE_MS, and that is enough: past it nothing an engine holds counts anywhere.
 * Main's statements for the direct path last minutes at most (MAX_DIRECT_STATEMENT_MS), a direct session
 * ends with its statement unless the engine brings a fresh one from main, and the relayed path runs
 * through main, which refuses a revoked engine's connection. So the list stays small however many engines
 * were ever removed. Not the revocation itself (agent-admin.ts) nor the admission of engines (tunnels/router.ts).
 */
import type { AgentRecord, Registry } from '../registry.js';
import type { AgentGateway } from './gateway.js';
import type { TenantService } from '../tenants/tenants.js';

/** A day: far beyond a statement's life (≤ 10 min) plus any clock skew a host could still accept. */
export const REVOCATION_NOTICE_MS = 24 * 3_600_000;

/** As on the wire (proto RevokedEngine). */
interface RevokedEngine {
  engineId: string;
  tenant: string;
  revokedAtMs: number;
}

export class EngineRevocations {
  private readonly recent = new Map<string, RevokedEngine>();

  constructor(
    private readonly registry: Registry,
    private readonly gateway: AgentGateway,
    private readonly tenants: TenantService,
  ) {}

  async init(): Promise<void> {
    this.remember(await this.registry.listAgents('engine'));
  }

  /** Whether main revoked this engine within the notice window (a connected engine is one it has not). */
  isRevoked(engineId: string): boolean {
    return this.recent.has(engineId);
  }

  /** Takes note of engines just revoked (on disk already) and tells the hosts of their tenants at once. */
  add(engines: AgentRecord[]): void {
    const added = this.remember(engines);
    const byHost = new Map<string, RevokedEngine[]>();
    for (const e of added) {
      const hostId = this.tenants.peek(e.tenant)?.hostId;
      if (hostId) byHost.set(hostId, [...(byHost.get(hostId) ?? []), e]);
    }
    // A host offline now learns them from its next Welcome.
    for (const [hostId, list] of byHost) this.gateway.send(hostId, { engineRevocations: { engines: list } });
  }

  /** The recently revoked engines of the tenants main has on this host: what its Welcome names. */
  forHost(hostId: string): { engines: RevokedEngine[] } {
    this.prune();
    return { engines: [...this.recent.values()].filter((e) => this.tenants.peek(e.tenant)?.hostId === hostId) };
  }

  /** Tells the host of `tenant` its recently revoked engines (the tenant just moved there). */
  tellHostOf(tenant: string): void {
    const hostId = this.tenants.peek(tenant)?.hostId;
    const engines = [...this.recent.values()].filter((e) => e.tenant === tenant);
    if (hostId && engines.length) this.gateway.send(hostId, { engineRevocations: { engines } });
  }

  private remember(agents: AgentRecord[]): RevokedEngine[] {
    const since = Date.now() - REVOCATION_NOTICE_MS;
    const added: RevokedEngine[] = [];
    for (const a of agents) {
      const at = a.revokedAt ? Date.parse(a.revokedAt) : NaN;
      if (a.kind !== 'engine' || !a.tenant || !(at > since)) continue;
      const e: RevokedEngine = { engineId: a.id, tenant: a.tenant, revokedAtMs: at };
      this.recent.set(a.id, e);
      added.push(e);
    }
    return added;
  }

  private prune(): void {
    const since = Date.now() - REVOCATION_NOTICE_MS;
    for (const [id, e] of this.recent) if (e.revokedAtMs <= since) this.recent.delete(id);
  }
}
