/**
 * Moving a tenant to another host: suspend at the source, stream a checksummed snapshot through main (one
 * chunk in memory at a time, never on disk, sealed for the target so main relays only ciphertext), start it
 * at the target, switch routing, then delete the source copy. Until routing switches, any failure resumes the
 * tenant where it was. Not the tenant registry itself (tenants.ts), which this reads and updates through
 * MoveContext.
 */
import { BadParameterError, ConflictError, NotFoundError, PalisadeError, UnavailableError } from '#common/errors.js';
import type { VolatileHostCommand } from '#common/host-commands.js';
import type { AgentRecord, CommandRecord, Registry, TenantRecord } from '../registry.js';
import type { AgentGateway } from '../agents/gateway.js';
import type { AuditLog } from '../access/audit.js';
import type { RpcClient } from '../agents/rpc.js';

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

export interface MoveRequest {
  name: string;
  to: string;
  actor: string;
  remote?: string;
}

/** What a move needs of main: the registry's tenant records, the hosts' channels, the audit log. */
export interface MoveContext {
  registry: Registry;
  gateway: AgentGateway;
  rpc: RpcClient;
  audit: AuditLog;
  find(name: string): Promise<TenantRecord>;
  /** The tenant's record as it is now (labels may change during a move). */
  current(name: string): TenantRecord | undefined;
  save(r: TenantRecord): Promise<void>;
  /** A durable `tenant.remove` of the old copy on `host`, run whenever that host is next connected. */
  removeLater(host: AgentRecord, name: string): Promise<CommandRecord>;
  /** Routing switched: the tenant now runs as `started` reports on its new host. */
  moved(name: string, started: { state: string; pid: number | null; port: number }): void;
}

/** Moves tenant `req.name` to host `req.to`; throws ERR_TENANT_MOVE_FAILED (and says where it runs) on failure. */
export async function moveTenant(ctx: MoveContext, req: MoveRequest): Promise<MoveResult> {
  const { name, to, actor, remote } = req;
  const rec = await ctx.find(name);
  if (rec.status !== 'running')
    throw new ConflictError(
      'ERR_TENANT_NOT_MOVABLE',
      `tenant "${name}" is ${rec.status}; try again when it is running`,
    );
  if (rec.hostName === to)
    throw new BadParameterError('ERR_MOVE_SAME_HOST', `tenant "${name}" already runs on host "${to}"`, {
      field: 'to',
    });
  const dst = await ctx.registry.agentByName('host', to);
  if (!dst || dst.revokedAt) throw new NotFoundError('ERR_HOST_NOT_FOUND', `no host named "${to}"`, { field: 'to' });
  for (const [id, label] of [
    [rec.hostId, rec.hostName],
    [dst.id, to],
  ]) {
    if (!ctx.gateway.isOnline(id))
      throw new UnavailableError(
        'ERR_HOST_OFFLINE',
        `host "${label}" is offline; both hosts must be connected to move a tenant`,
      );
  }
  const src = rec.hostId;
  const call = <T>(agent: string, cmd: VolatileHostCommand, args: Record<string, unknown>) =>
    ctx.rpc.call<T>(agent, name, cmd, { name, ...args }, TRANSFER_STEP_MS);
  await ctx.save({ ...rec, status: 'moving' });
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
    await ctx.save({ ...(ctx.current(name) ?? rec), status: rec.status });
    await ctx.audit.record({
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
  await ctx.save({
    ...(ctx.current(name) ?? rec),
    hostId: dst.id,
    hostName: to,
    port: started.port,
    status: 'running',
  });
  ctx.moved(name, started);
  // The old copy goes last, durably: if the source host drops now, it is deleted when it returns.
  await call(src, 'tenant.export.done', {}).catch(() => undefined);
  const srcRec = await ctx.registry.agents.get(src);
  if (srcRec) await ctx.removeLater(srcRec, name);
  await ctx.audit.record({
    actor,
    action: 'tenant.move',
    target: name,
    outcome: 'ok',
    remote,
    detail: { from: rec.hostName, to, bytes: info.size, sha256: info.sha256 },
  });
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
