/**
 * Tenants as main sees them: a registry entry (name → host, port, labels, public key) and a live status
 * reported by the host. Creation and removal are durable commands to the host; "switch to a tenant"
 * relays a request signed by main through the host to the tenant's own API (a RelayRequest, its body as
 * bytes). Main never keeps the tenant's data: relayed bodies pass through memory only.
 */
import { createHash } from 'node:crypto';
import { bodyHash, signRequest, type CallerIdentity } from '#common/signed-request.js';
import { BadParameterError, ConflictError, NotFoundError, PalisadeError, UnavailableError } from '#common/errors.js';
import { peerCode } from '#common/error-codes.js';
import { checkName } from '#common/names.js';
import { parseJsonBytes, type Envelope } from '#common/codec.js';
import type { AgentRecord, CommandRecord, Registry, TenantRecord } from '../registry.js';
import type { DurableHostCommand, VolatileHostCommand } from '#common/host-commands.js';
import type { CommandOutbox } from '../agents/outbox.js';
import type { AgentGateway } from '../agents/gateway.js';
import type { AuditLog } from '../access/audit.js';
import type { SigningKey } from './signing-key.js';
import { RpcClient } from '../agents/rpc.js';

/** Tenant creation starts a process and opens a store: allow it a minute before answering 202. */
const CREATE_WAIT_MS = 60_000;
const RELAY_TIMEOUT_MS = 30_000;
/** One step of a move (pack, one chunk, unpack + start): generous, since packing a large store takes a while. */
const TRANSFER_STEP_MS = 120_000;

export interface MoveResult {
  name: string;
  from: string;
  to: string;
  port: number;
  bytes: number;
  chunks: number;
  sha256: string;
}

/**
 * `port` is where the host says the tenant listens now: it moves off a port another process took while
 * the tenant was down. `at` is when main learnt it: a report from before the host's current connection
 * describes processes a host restart has since stopped.
 */
export interface LiveTenant {
  state: string;
  pid: number | null;
  restarts: number;
  port?: number;
  lastError?: string;
  at: number;
}
export interface TenantView {
  name: string;
  host: string;
  port: number;
  status: string;
  labels: string[];
  publicKey: string;
  publicKeyFingerprint: string;
  createdAt: string;
  pid: number | null;
  restarts: number;
}

export function keyFingerprint(publicKeyB64: string): string {
  return createHash('sha256').update(Buffer.from(publicKeyB64, 'base64')).digest('hex').slice(0, 16);
}

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
  ) {
    this.rpc = new RpcClient((id, env) => gateway.send(id, env));
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
    let list: {
      name: string;
      state: string;
      pid: number | null;
      restarts: number;
      port?: number;
      lastError?: string;
    }[];
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
            at: Date.now(),
          });
          // Back to running (restarted, or its host reconnected): a report from before this connection does not count.
          if (t.state === 'running' && !(before?.state === 'running' && !(before.at < since)))
            this.onTenantChange?.(rec.name);
        }
      })
      .catch(() => undefined);
  }

  view(r: TenantRecord): TenantView {
    const hostOnline = this.gateway.isOnline(r.hostId);
    const since = Date.parse(this.gateway.status(r.hostId).connectedAt ?? '');
    const reported = this.live.get(r.name);
    const l = reported && !(reported.at < since) ? reported : undefined;
    const status = r.status !== 'running' ? r.status : !hostOnline ? 'host-offline' : (l?.state ?? 'unknown');
    return {
      name: r.name,
      host: r.hostName,
      port: (hostOnline ? l?.port : undefined) ?? r.port,
      status,
      labels: r.labels,
      publicKey: r.publicKey,
      publicKeyFingerprint: keyFingerprint(r.publicKey),
      createdAt: r.createdAt,
      pid: hostOnline ? (l?.pid ?? null) : null,
      restarts: l?.restarts ?? 0,
    };
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
    actor: string;
    remote?: string;
    memoryMb?: number;
    diskMb?: number;
  }): Promise<TenantView> {
    checkName(o.name, 'name');
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
    const res = done.result as { port: number; publicKey: string; state: string; pid: number | null };
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
    };
    await this.save(rec);
    this.live.set(o.name, { state: res.state, pid: res.pid, restarts: 0, port: res.port, at: Date.now() });
    await this.audit.record({
      actor: o.actor,
      action: 'tenant.create',
      target: o.name,
      outcome: 'ok',
      remote: o.remote,
      detail: { host: o.host, port: res.port, publicKeyFingerprint: keyFingerprint(res.publicKey) },
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
   * Moves a tenant to another host: suspend at the source, stream a checksummed snapshot through main
   * (one chunk in memory at a time, never on disk), start it at the target, switch routing, then delete
   * the source copy. Until routing switches, any failure resumes the tenant where it was.
   */
  async move(name: string, to: string, actor: string, remote?: string): Promise<MoveResult> {
    const rec = await this.find(name);
    if (rec.status !== 'running')
      throw new ConflictError(
        'ERR_TENANT_NOT_MOVABLE',
        `tenant "${name}" is ${rec.status}; try again when it is running`,
      );
    if (rec.hostName === to)
      throw new BadParameterError('ERR_MOVE_SAME_HOST', `tenant "${name}" already runs on host "${to}"`, {
        field: 'to',
      });
    const dst = await this.registry.agentByName('host', to);
    if (!dst || dst.revokedAt) throw new NotFoundError('ERR_HOST_NOT_FOUND', `no host named "${to}"`, { field: 'to' });
    for (const [id, label] of [
      [rec.hostId, rec.hostName],
      [dst.id, to],
    ]) {
      if (!this.gateway.isOnline(id))
        throw new UnavailableError(
          'ERR_HOST_OFFLINE',
          `host "${label}" is offline; both hosts must be connected to move a tenant`,
        );
    }
    const src = rec.hostId;
    const call = <T>(agent: string, cmd: VolatileHostCommand, args: Record<string, unknown>) =>
      this.rpc.call<T>(agent, name, cmd, { name, ...args }, TRANSFER_STEP_MS);
    await this.save({ ...rec, status: 'moving' });
    let info: { size: number; sha256: string; chunks: number; senderKey: string };
    let started: { port: number; state: string; pid: number | null };
    try {
      // The target first (its one-time key seals the snapshot, so main relays only ciphertext); a target
      // that refuses the tenant refuses it before the source stops serving.
      const { recipientKey } = await call<{ recipientKey: string }>(dst.id, 'tenant.import.begin', {});
      info = await call(src, 'tenant.export.begin', { recipientKey });
      for (let index = 0; index < info.chunks; index++) {
        const c = await call<{ data: string; sha256: string }>(src, 'tenant.export.chunk', { index });
        await call(dst.id, 'tenant.import.chunk', { index, data: c.data, sha256: c.sha256 });
      }
      started = await call(dst.id, 'tenant.import.finish', {
        size: info.size,
        sha256: info.sha256,
        chunks: info.chunks,
        senderKey: info.senderKey,
      });
    } catch (e) {
      await call(dst.id, 'tenant.import.abort', {}).catch(() => undefined);
      const resumed = await call(src, 'tenant.export.abort', {}).then(
        () => true,
        () => false,
      );
      // From the current record, not the one read before the move: labels may have changed meanwhile.
      await this.save({ ...(this.records.get(name) ?? rec), status: rec.status });
      await this.audit.record({
        actor,
        action: 'tenant.move',
        target: name,
        outcome: 'failed',
        remote,
        detail: { from: rec.hostName, to, code: (e as { code?: string }).code, resumed },
      });
      const why = e instanceof PalisadeError ? e.message : String(e);
      // A refusal by the target (name taken, bad state) is the caller's to fix; anything else is transient.
      const category =
        e instanceof PalisadeError && ['conflict', 'bad-parameter', 'not-found'].includes(e.category)
          ? 'conflict'
          : 'unavailable';
      throw new PalisadeError(
        category,
        'ERR_TENANT_MOVE_FAILED',
        `moving tenant "${name}" to "${to}" failed: ${why}; it ${resumed ? 'keeps running' : 'is stopped'} on "${rec.hostName}"`,
      );
    }
    await this.save({
      ...(this.records.get(name) ?? rec),
      hostId: dst.id,
      hostName: to,
      port: started.port,
      status: 'running',
    });
    this.live.set(name, { state: started.state, pid: started.pid, restarts: 0, port: started.port, at: Date.now() });
    // The old copy goes last, durably: if the source host drops now, it is deleted when it returns.
    await call(src, 'tenant.export.done', {}).catch(() => undefined);
    const srcRec = await this.registry.agents.get(src);
    if (srcRec) await this.durable(srcRec, 'tenant.remove', { name }, actor, 7 * 86_400_000, 0);
    await this.audit.record({
      actor,
      action: 'tenant.move',
      target: name,
      outcome: 'ok',
      remote,
      detail: { from: rec.hostName, to, bytes: info.size, sha256: info.sha256 },
    });
    this.onTenantChange?.(name);
    return {
      name,
      from: rec.hostName,
      to,
      port: started.port,
      bytes: info.size,
      chunks: info.chunks,
      sha256: info.sha256,
    };
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
