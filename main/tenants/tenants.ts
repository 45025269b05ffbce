/**
 * Tenants as main sees them: a registry entry (name → host, port, labels, public key) and a live status
 * reported by the host. Creation and removal are durable commands to the host; "switch to a tenant"
 * relays a request signed by main through the host to the tenant's own API (a RelayRequest, its body as
 * bytes). Main never keeps the tenant's data: relayed bodies pass through memory only.
 */
import { bodyHash, signRequest, type CallerIdentity } from '#common/signed-request.js';
import { ConflictError, NotFoundError, PalisadeError, UnavailableError } from '#common/errors.js';
import { peerCode } from '#common/error-codes.js';
import { checkName } from '#common/names.js';
import { parseJsonBytes, type Envelope } from '#common/codec.js';
import type { AgentRecord, CommandRecord, Registry, TenantRecord } from '../registry.js';
import type { DurableHostCommand } from '#common/host-commands.js';
import type { CommandOutbox } from '../agents/outbox.js';
import type { AgentGateway } from '../agents/gateway.js';
import type { AuditLog } from '../access/audit.js';
import type { SigningKey } from './signing-key.js';
import { RpcClient } from '../agents/rpc.js';
import { moveTenant, type MoveResult } from './tenant-move.js';
import { eventFigures, figure, keyFingerprint, tenantView, type LiveTenant, type TenantView } from './tenant-view.js';
import type { MainMetrics } from '../metrics.js';

export type { MoveResult, LiveTenant, TenantView };
export { keyFingerprint };

/** Tenant creation starts a process and opens a store: allow it a minute before answering 202. */
const CREATE_WAIT_MS = 60_000;
const RELAY_TIMEOUT_MS = 30_000;
/** A moved tenant's old copy is removed when its host returns, however long that takes (up to a week). */
const REMOVE_LATER_MS = 7 * 86_400_000;

export class TenantService {
  private readonly live = new Map<string, LiveTenant>();
  /** The registry's tenants, read once at start: every relayed request needs its tenant's host. */
  private readonly records = new Map<string, TenantRecord>();
  /** Names being created right now, so two concurrent creates of one name cannot both proceed. */
  private readonly creating = new Set<string>();
  private statusUpdates: Promise<void> = Promise.resolve();
  readonly rpc: RpcClient;
  /**
   * Told when a tenant may have missed something main pushes (content): it is back to running, new, moved or
   * relabelled.
   */
  onTenantChange?: (name: string) => void;
  /** Awaited before a create answers: what a new tenant must hold from its first request (roles). */
  onTenantCreated?: (name: string) => Promise<void>;

  constructor(
    private readonly registry: Registry,
    private readonly outbox: CommandOutbox,
    private readonly gateway: AgentGateway,
    private readonly audit: AuditLog,
    private readonly signingKey: SigningKey,
    metrics?: MainMetrics,
  ) {
    this.rpc = new RpcClient((id, env) => gateway.send(id, env), metrics);
  }

  async init(): Promise<void> {
    for await (const r of this.registry.tenants.values()) this.records.set(r.name, r);
  }

  private async save(r: TenantRecord): Promise<void> {
    await this.registry.tenants.put(r.name, r);
    this.records.set(r.name, r);
  }

  private async drop(name: string): Promise<void> {
    await this.registry.tenants.del(name);
    this.records.delete(name);
  }

  /**
   * A host's `tenant.status` event: the state of each of its tenants, applied in arrival order; a malformed entry is
   * skipped.
   */
  onHostEvent(agentId: string, env: Envelope): void {
    if (env.event?.type !== 'tenant.status') return;
    let list: (Omit<LiveTenant, 'at'> & { name: string })[];
    try {
      list = parseJsonBytes(env.event.data) as typeof list;
    } catch {
      return;
    }
    if (!Array.isArray(list)) return;
    this.statusUpdates = this.statusUpdates
      .then(async () => {
        for (const t of list) {
          if (typeof t?.name !== 'string' || typeof t.state !== 'string') continue;
          const rec = this.records.get(t.name);
          const port = Number.isInteger(t.port) ? t.port : undefined;
          if (rec?.hostId !== agentId) continue;
          const before = this.live.get(rec.name);
          const since = Date.parse(this.gateway.status(agentId).connectedAt ?? '');
          this.live.set(rec.name, {
            state: t.state,
            pid: Number.isInteger(t.pid) ? t.pid : null,
            restarts: Number(t.restarts) || 0,
            port,
            lastError: t.lastError,
            cpuPercent: figure(t.cpuPercent),
            rssBytes: figure(t.rssBytes),
            memoryMb: figure(t.memoryMb),
            events: eventFigures(t.events),
            at: Date.now(),
          });
          if (t.state === 'running' && rec.initialisedAt === undefined) await this.markInitialised(rec.name);
          // Back to running (restarted, or its host reconnected): a report from before this connection does not count.
          if (t.state === 'running' && !(before?.state === 'running' && !(before.at < since)))
            this.onTenantChange?.(rec.name);
        }
      })
      .catch(() => undefined);
  }

  /** Records the first time a tenant reported running (kept across restarts of main: it is in the registry). */
  private async markInitialised(name: string): Promise<void> {
    const cur = this.records.get(name);
    if (cur && cur.initialisedAt === undefined) await this.save({ ...cur, initialisedAt: new Date().toISOString() });
  }

  /** The host's last report on a tenant, if it is from the host's current connection. */
  private liveOf(r: TenantRecord): LiveTenant | undefined {
    const since = Date.parse(this.gateway.status(r.hostId).connectedAt ?? '');
    const reported = this.live.get(r.name);
    return reported && !(reported.at < since) ? reported : undefined;
  }

  view(r: TenantRecord): TenantView {
    return tenantView(r, this.gateway.isOnline(r.hostId), this.liveOf(r));
  }

  async list(): Promise<TenantView[]> {
    return [...this.records.values()].map((r) => this.view(r));
  }

  /** The registered tenant of that name, synchronously (hot paths that must keep frame order). */
  peek(name: string): TenantRecord | undefined {
    return this.records.get(name);
  }

  async find(name: string): Promise<TenantRecord> {
    const r = this.records.get(checkName(name, 'tenant'));
    if (!r)
      throw new NotFoundError('ERR_TENANT_NOT_FOUND', `no tenant named "${name}"; list them with 'palisade tenants'`, {
        field: 'name',
      });
    return r;
  }

  async create(o: {
    name: string;
    host: string;
    labels: string[];
    region?: string;
    actor: string;
    remote?: string;
    memoryMb?: number;
    diskMb?: number;
  }): Promise<TenantView> {
    checkName(o.name, 'name');
    if (o.region !== undefined) checkName(o.region, 'region');
    if (this.records.has(o.name) || this.creating.has(o.name))
      throw new ConflictError('ERR_TENANT_EXISTS', `a tenant named "${o.name}" already exists`, { field: 'name' });
    this.creating.add(o.name);
    try {
      return await this.createReserved(o);
    } finally {
      this.creating.delete(o.name);
    }
  }

  private async createReserved(o: {
    name: string;
    host: string;
    labels: string[];
    region?: string;
    actor: string;
    remote?: string;
    memoryMb?: number;
    diskMb?: number;
  }): Promise<TenantView> {
    const host = await this.registry.agentByName('host', o.host);
    if (!host || host.revokedAt)
      throw new NotFoundError('ERR_HOST_NOT_FOUND', `no host named "${o.host}"; list them with 'palisade hosts'`, {
        field: 'host',
      });
    if (!this.gateway.isOnline(host.id))
      throw new UnavailableError(
        'ERR_HOST_OFFLINE',
        `host "${o.host}" is offline; a tenant can only be created on a connected host`,
      );
    const need = { ...(o.memoryMb ? { memoryMb: o.memoryMb } : {}), ...(o.diskMb ? { diskMb: o.diskMb } : {}) };
    const done = await this.durable(host, 'tenant.create', { name: o.name, ...need }, o.actor, CREATE_WAIT_MS);
    if (done.state !== 'done') {
      await this.audit.record({
        actor: o.actor,
        action: 'tenant.create',
        target: o.name,
        outcome: 'failed',
        remote: o.remote,
        detail: { host: o.host, code: done.error?.code },
      });
      const code = done.error?.code ? peerCode(done.error.code) : 'ERR_TENANT_CREATE';
      const message = `creating tenant "${o.name}" on host "${o.host}" failed: ${done.error?.message ?? done.state}`;
      throw code === 'ERR_HOST_BUDGET' || code === 'ERR_NO_TENANT_PORT'
        ? new UnavailableError(code, message)
        : new PalisadeError('unavailable', code, message);
    }
    const res = done.result as LiveTenant & { port: number; publicKey: string };
    const rec: TenantRecord = {
      name: o.name,
      hostId: host.id,
      hostName: host.name,
      port: res.port,
      labels: o.labels,
      publicKey: res.publicKey,
      status: 'running',
      createdAt: new Date().toISOString(),
      createdBy: o.actor,
      ...(o.region !== undefined ? { region: o.region } : {}),
      ...(res.state === 'running' ? { initialisedAt: new Date().toISOString() } : {}),
    };
    await this.save(rec);
    this.live.set(o.name, { ...res, memoryMb: figure(res.memoryMb), restarts: 0, at: Date.now() });
    await this.audit.record({
      actor: o.actor,
      action: 'tenant.create',
      target: o.name,
      outcome: 'ok',
      remote: o.remote,
      detail: {
        host: o.host,
        port: res.port,
        publicKeyFingerprint: keyFingerprint(res.publicKey),
        ...(o.region !== undefined ? { region: o.region } : {}),
      },
    });
    await this.onTenantCreated?.(o.name).catch(() => undefined);
    this.onTenantChange?.(o.name);
    return this.view(rec);
  }

  /** A durable command to a host (common/host-commands.ts): its record once done, or still pending after `waitMs`. */
  private async durable(
    host: AgentRecord,
    name: DurableHostCommand,
    args: unknown,
    actor: string,
    deadlineMs: number,
    waitMs = deadlineMs,
  ): Promise<CommandRecord> {
    const cmd = await this.outbox.enqueue(host, { name, args, createdBy: actor, deadlineMs });
    return this.outbox.wait(cmd.id, waitMs);
  }

  /** Replaces a tenant's propagation labels; shared content that now matches (or no longer does) follows. */
  async setLabels(name: string, labels: string[], actor: string, remote?: string): Promise<TenantView> {
    const rec = await this.find(name);
    const next = { ...(this.records.get(rec.name) ?? rec), labels: [...new Set(labels)] };
    await this.save(next);
    await this.audit.record({
      actor,
      action: 'tenant.labels',
      target: name,
      outcome: 'ok',
      remote,
      detail: { from: rec.labels, to: next.labels },
    });
    this.onTenantChange?.(name);
    return this.view(next);
  }

  /**
   * Moves a tenant into a region (or out of any, with null); region-scoped content (connections) follows: what the
   * new region's scope reaches is pushed, what only the old one reached is taken off it.
   */
  async setRegion(name: string, region: string | null, actor: string, remote?: string): Promise<TenantView> {
    const rec = await this.find(name);
    if (region !== null) checkName(region, 'region');
    const { region: from, ...rest } = this.records.get(rec.name) ?? rec;
    const next: TenantRecord = { ...rest, ...(region !== null ? { region } : {}) };
    await this.save(next);
    await this.audit.record({
      actor,
      action: 'tenant.region',
      target: name,
      outcome: 'ok',
      remote,
      detail: { from: from ?? null, to: region },
    });
    this.onTenantChange?.(name);
    return this.view(next);
  }

  /**
   * An admin's stop or start of a tenant (durable, like create: the host keeps a stop across its restarts);
   * `changed` is false when it already was so. Audited either way.
   */
  async setStopped(
    name: string,
    stop: boolean,
    actor: string,
    remote?: string,
  ): Promise<TenantView & { changed: boolean }> {
    const rec = await this.find(name);
    const action = stop ? 'tenant.stop' : 'tenant.start';
    if (rec.status !== 'running')
      throw new UnavailableError('ERR_TENANT_BUSY', `tenant "${name}" is ${rec.status}; retry shortly`, {
        retryAfterMs: 2000,
      });
    const host = await this.registry.agents.get(rec.hostId);
    if (!host || !this.gateway.isOnline(host.id))
      throw new UnavailableError('ERR_HOST_OFFLINE', `host "${rec.hostName}" is offline; retry when it is connected`);
    const done = await this.durable(host, action, { name }, actor, CREATE_WAIT_MS);
    const res = done.result as (LiveTenant & { changed: boolean }) | undefined;
    const ok = done.state === 'done' && res;
    const detail = { host: rec.hostName, ...(ok ? { changed: res.changed } : { code: done.error?.code }) };
    await this.audit.record({ actor, action, target: name, outcome: ok ? 'ok' : 'failed', remote, detail });
    if (!ok)
      throw new PalisadeError(
        'unavailable',
        done.error?.code ? peerCode(done.error.code) : 'ERR_TENANT_START',
        `${stop ? 'stopping' : 'starting'} tenant "${name}" failed: ${done.error?.message ?? done.state}`,
      );
    const { changed, ...now } = res;
    this.live.set(name, { ...now, memoryMb: figure(res.memoryMb), at: Date.now() });
    if (!stop && changed) this.onTenantChange?.(name);
    return { ...this.view(rec), changed };
  }

  async remove(
    name: string,
    actor: string,
    remote?: string,
  ): Promise<{ name: string; host: string; removed: string[] }> {
    const rec = await this.find(name);
    const host = await this.registry.agents.get(rec.hostId);
    if (!host || !this.gateway.isOnline(host.id))
      throw new UnavailableError(
        'ERR_HOST_OFFLINE',
        `host "${rec.hostName}" is offline; remove the tenant when it is connected`,
      );
    const done = await this.durable(host, 'tenant.remove', { name }, actor, CREATE_WAIT_MS);
    if (done.state !== 'done')
      throw new PalisadeError(
        'unavailable',
        done.error?.code ? peerCode(done.error.code) : 'ERR_TENANT_REMOVE',
        `removing tenant "${name}" failed: ${done.error?.message ?? done.state}`,
      );
    await this.drop(name);
    this.live.delete(name);
    const removed = [
      ...(done.result as { removed: string[] }).removed,
      `registration on main (public key ${keyFingerprint(rec.publicKey)})`,
    ];
    await this.audit.record({
      actor,
      action: 'tenant.remove',
      target: name,
      outcome: 'ok',
      remote,
      detail: { host: rec.hostName, removed },
    });
    return { name, host: rec.hostName, removed };
  }

  /**
   * Moves a tenant to another host (tenant-move.ts); until routing switches, any failure resumes the tenant
   * where it was.
   */
  async move(name: string, to: string, actor: string, remote?: string): Promise<MoveResult> {
    const rec = await this.find(name);
    if (this.liveOf(rec)?.state === 'stopped')
      throw new ConflictError('ERR_TENANT_NOT_MOVABLE', `tenant "${name}" is stopped; start it, then move it`);
    return moveTenant(
      {
        registry: this.registry,
        gateway: this.gateway,
        rpc: this.rpc,
        audit: this.audit,
        find: (n) => this.find(n),
        current: (n) => this.records.get(n),
        save: (r) => this.save(r),
        removeLater: (host, n) => this.durable(host, 'tenant.remove', { name: n }, actor, REMOVE_LATER_MS, 0),
        moved: (n, started) => {
          this.live.set(n, { state: started.state, pid: started.pid, restarts: 0, port: started.port, at: Date.now() });
          this.onTenantChange?.(n);
        },
      },
      { name, to, actor, remote },
    );
  }

  /**
   * Relays one request to a tenant's API, signed for that tenant and this caller; `timeoutMs` is a fan-out's per-tenant
   * deadline.
   */
  async relay(
    name: string,
    req: {
      method: string;
      path: string;
      body?: string | Buffer;
      contentType?: string;
      user: CallerIdentity;
      timeoutMs?: number;
    },
  ): Promise<{ status: number; contentType: string; body: Buffer }> {
    const rec = await this.find(name);
    if (rec.status !== 'running')
      throw new UnavailableError('ERR_TENANT_BUSY', `tenant "${name}" is ${rec.status}; retry shortly`, {
        retryAfterMs: 2000,
      });
    if (this.liveOf(rec)?.state === 'stopped') throw tenantStopped(name);
    const signed = signRequest(this.signingKey.privateKeyObject, {
      tenant: name,
      method: req.method,
      path: req.path,
      bodySha256: bodyHash(req.body),
      user: req.user,
    });
    const body = typeof req.body === 'string' ? Buffer.from(req.body) : req.body;
    const reply = await this.rpc.relay(
      rec.hostId,
      name,
      {
        method: req.method,
        path: req.path,
        auth: signed.auth,
        signature: signed.signature,
        ...(body ? { body, contentType: req.contentType ?? 'application/json' } : {}),
      },
      req.timeoutMs ?? RELAY_TIMEOUT_MS,
    );
    return {
      status: reply.status,
      contentType: reply.contentType,
      body: Buffer.from(reply.body.buffer, reply.body.byteOffset, reply.body.byteLength),
    };
  }
}

/** A relayed request to a tenant an admin stopped: answered at once, not left to time out at its host. */
function tenantStopped(name: string): UnavailableError {
  return new UnavailableError(
    'ERR_TENANT_STOPPED',
    `tenant "${name}" is stopped; 'palisade tenant start ${name}' brings it back`,
  );
}
