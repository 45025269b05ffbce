/**
 * What makes an agent a host: the tenant supervisor, the commands main sends about tenants, and the
 * tenant status reports sent back up as Events. Tenants start once main's signing key is known (Welcome).
 * It also keeps main's list of revoked engines of its tenants (in each Welcome, and pushed at each
 * revocation): their direct connections and relayed hellos are refused here, and each tenant is told
 * its own so it ends their sessions. Kept in memory only: tenants never run before a Welcome.
 */
import { jsonBytes, TunnelFlow, type Envelope, type EnvelopeInit } from '#common/codec.js';
import { MINOR_TUNNEL_FLOW } from '#common/protocol-version.js';
import { RECORD_HANDSHAKE } from '../tunnel/tunnel-records.js';
import { BadParameterError, ProtocolError, UnavailableError, errorMessage } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import { TypedResult, type CommandHandler } from '../command-runner.js';
import { sysReport } from '../sysinfo.js';
import { TenantSupervisor } from './tenant-supervisor.js';
import { TENANT_MAIN } from '../program-files.js';
import { relayToTenant, type RelayRequest } from './tenant-relay.js';
import { TenantTransfer } from './tenant-transfer.js';
import { EngineListener } from './engine-listener.js';
import {
  TenantUsers,
  capabilityDrop,
  closedToOthers,
  runsWithUserAdminCaps,
  tenantEnv,
  tenantIsolation,
} from './tenant-isolation.js';
import { TenantUserPool, readTenantPool } from './tenant-user-pool.js';
import { checkName } from '#common/names.js';
import { formatHostPort } from '#common/address.js';
import type { HostRoleCommand } from '#common/host-commands.js';
import { join } from 'node:path';

/** A revoked engine as main names it (proto RevokedEngine). */
export interface RevokedEngineIn {
  engineId?: string | null;
  tenant?: string | null;
}

export class HostRole {
  readonly supervisor: TenantSupervisor;
  private readonly transfer: TenantTransfer;
  private mainKey = '';
  /** Main's protocol minor (Welcome): Tunnel.flow only to a main that knows it. */
  private mainMinor = 0;
  private send?: (env: EnvelopeInit) => boolean;
  private started?: Promise<void>;
  private engines?: EngineListener;
  /** tenant → ids of its engines main revoked recently. */
  private revoked = new Map<string, Set<string>>();
  private reports: Promise<void> = Promise.resolve();

  /**
   * `tenantUsers`: agent.json's switch for one system user per tenant (on by default; root, or a pool of users).
   * `integrationLoopbackAllow`: the host's own addresses (IP:PORT) its tenants' integrations may still reach.
   */
  constructor(
    tenantsDir: string,
    dataDir: string,
    private readonly log: Logger,
    opts: { tenantUsers?: boolean; integrationLoopbackAllow?: readonly string[] } = {},
  ) {
    const uid = process.getuid?.();
    // Not root: tenant users only from the pool install.sh made, as the host may not write /etc.
    // And only where its children can be rid of its capabilities (setpriv), or each tenant would hold them.
    const pool =
      uid !== 0 && runsWithUserAdminCaps() && capabilityDrop() !== null ? readTenantPool(dataDir) : undefined;
    const userAdmin = pool !== undefined;
    const isolation = tenantIsolation(
      uid,
      opts.tenantUsers,
      (uid === 0 || userAdmin) && opts.tenantUsers !== false ? closedToOthers(TENANT_MAIN) : undefined,
      userAdmin,
    );
    if (isolation.users) log.info('each tenant runs as its own system user');
    else
      log.warn(
        { reason: isolation.reason },
        "tenant isolation is by process only: tenants run as the host agent's user",
      );
    this.supervisor = new TenantSupervisor(
      tenantsDir,
      log,
      async () => {
        const r = await sysReport(dataDir);
        return { memAvailable: r.memAvailable, diskFree: r.diskFree };
      },
      !isolation.users ? undefined : pool ? new TenantUserPool(tenantsDir, pool) : new TenantUsers(dataDir),
      tenantEnv(process.env, opts.integrationLoopbackAllow),
    );
    this.supervisor.onChange = (st) => {
      this.report();
      if (st.state === 'running') this.tellTenant(st.name); // a (re)started tenant process starts knowing them
    };
    this.supervisor.onTunnel = (tenant, t) =>
      this.send?.({ tenant, tunnel: { engineId: t.engineId, record: t.record } });
    // The feed toward a tenant bounds each engine's share: main holds the engine back, or its session ends (an empty
    // record).
    this.supervisor.onTunnelSignal = (tenant, engineId, sig) => {
      if (sig === 'close') this.send?.({ tenant, tunnel: { engineId, record: new Uint8Array(0) } });
      else if (this.mainMinor >= MINOR_TUNNEL_FLOW)
        this.send?.({
          tenant,
          tunnel: { engineId, flow: sig === 'pause' ? TunnelFlow.TUNNEL_FLOW_PAUSE : TunnelFlow.TUNNEL_FLOW_RESUME },
        });
    };
    this.transfer = new TenantTransfer(this.supervisor, join(dataDir, 'transfer'));
  }

  /**
   * Opens the direct path for engines (before the first Hello, which announces it); returns the endpoint
   * to announce, or undefined when it is off. `listen` is ADDR:PORT; `advertise` overrides what engines dial.
   */
  async listenForEngines(listen: string, advertise?: string): Promise<string | undefined> {
    if (listen === 'off') return undefined;
    this.engines = new EngineListener(
      listen,
      this.supervisor,
      (tenant, id) => this.isRevoked(tenant, id),
      this.log.child({ component: 'engine-listener' }),
    );
    const bound = await this.engines.start();
    this.supervisor.reserveHostPort(bound.port);
    return advertise ?? formatHostPort(bound.host, bound.port);
  }

  /** `revoked`: main's whole list of recently revoked engines of our tenants, known before any engine is let in. */
  onWelcome(
    mainKey: string,
    mainMinor: number,
    send: (env: EnvelopeInit) => boolean,
    revoked: readonly RevokedEngineIn[],
  ): void {
    this.revoked = new Map();
    this.onRevocations(revoked);
    this.mainKey = mainKey;
    this.mainMinor = mainMinor;
    this.engines?.setMainKey(mainKey);
    this.send = send;
    // A move cut short by a crash left a staging directory or a half-adopted tenant: gone before any tenant starts.
    this.started ??= this.transfer
      .cleanLeftovers()
      .then((dropped) => {
        if (dropped.length) this.log.warn({ tenants: dropped }, 'half-imported tenants removed');
      })
      .then(() => this.supervisor.startAll(mainKey))
      .catch((e: unknown) => this.log.error({ err: errorMessage(e) }, 'starting tenants failed'));
    this.report();
  }

  /** Engines main revoked (a Welcome's list, or one revocation): refused from now on, and their tenants told. */
  onRevocations(list: readonly RevokedEngineIn[]): void {
    const touched = new Set<string>();
    for (const e of list) {
      if (typeof e?.engineId !== 'string' || typeof e.tenant !== 'string' || !e.engineId || !e.tenant) continue;
      const ids = this.revoked.get(e.tenant) ?? new Set<string>();
      this.revoked.set(e.tenant, ids.add(e.engineId));
      touched.add(e.tenant);
    }
    for (const tenant of touched) this.tellTenant(tenant);
    if (touched.size) this.log.info({ tenants: [...touched] }, 'revoked engines noted; their sessions end');
  }

  private isRevoked(tenant: string, engineId: string): boolean {
    return this.revoked.get(tenant)?.has(engineId) ?? false;
  }

  private tellTenant(tenant: string): void {
    const ids = this.revoked.get(tenant);
    if (ids?.size) this.supervisor.tellRevokedEngines(tenant, [...ids]);
  }

  /** A tunnel record from main for one of our tenants (main checked the engine belongs to it). */
  onTunnel(env: Envelope): void {
    const t = env.tunnel;
    if (!env.tenant || !t?.engineId) return;
    if (t.record?.[0] === RECORD_HANDSHAKE && this.isRevoked(env.tenant, t.engineId)) return;
    // Binary over IPC (advanced serialization): records are not re-encoded. An empty record is main saying the engine
    // is gone.
    this.supervisor.sendTunnelRecord(env.tenant, {
      engineId: t.engineId,
      engineName: t.engineName || undefined,
      engineGroup: t.engineGroup || undefined,
      record: t.record ?? new Uint8Array(0),
      engineKey: t.engineKey?.length ? t.engineKey : undefined,
      engineKeySig: t.engineKeySig?.length ? t.engineKeySig : undefined,
    });
  }

  /**
   * Sends main every tenant's state with its CPU and memory as the tenant last reported them: on each change
   * and with each heartbeat (agent.ts). One after the other: main applies reports in arrival order, and a
   * state must not arrive before the one it followed.
   */
  report(): void {
    if (!this.send) return;
    const list = this.supervisor.list();
    this.reports = this.reports
      .then(() => this.supervisor.usage.sample(list.flatMap((t) => (t.pid ? [t.pid] : []))))
      .then((used) => {
        const withUsage = list.map((t) => ({ ...t, ...(t.pid ? used.get(t.pid) : undefined) }));
        this.send?.({ event: { type: 'tenant.status', data: jsonBytes(withUsage) } });
      })
      .catch((e: unknown) => this.log.warn({ err: errorMessage(e) }, 'tenant status report failed'));
  }

  /** The commands of the catalogue (common/host-commands.ts) that only a host answers. */
  handlers(): Record<HostRoleCommand, CommandHandler> {
    return {
      'tenant.create': async (args) => {
        const a = args as { name?: string; memoryMb?: number; diskMb?: number };
        if (!this.mainKey) throw new UnavailableError('ERR_NO_MAIN_KEY', "main's signing key is not known yet");
        await this.started;
        return this.supervisor.create(String(a?.name ?? ''), this.mainKey, {
          memoryMb: a?.memoryMb,
          diskMb: a?.diskMb,
        });
      },
      'tenant.remove': async (args) => {
        await this.started;
        return this.supervisor.remove(nameOf(args));
      },
      'tenant.stop': async (args) => {
        await this.started;
        return this.supervisor.stopTenant(nameOf(args));
      },
      'tenant.start': async (args) => {
        await this.started;
        return this.supervisor.startTenant(nameOf(args), this.mainKey);
      },
      'tenant.list': async () => this.supervisor.list(),
      'tenant.export.begin': async (args) => {
        await this.started;
        return this.transfer.exportBegin(nameOf(args), (args ?? {}) as { recipientKey?: unknown });
      },
      'tenant.export.chunk': async (args) =>
        this.transfer.exportChunk(nameOf(args), Number((args as { index?: number }).index)),
      'tenant.export.abort': async (args) => this.transfer.exportAbort(nameOf(args)),
      'tenant.export.done': async (args) => this.transfer.exportDone(nameOf(args)),
      'tenant.import.begin': async (args) => {
        await this.started;
        return this.transfer.importBegin(nameOf(args));
      },
      'tenant.import.chunk': async (args) => {
        const a = args as { index: number; data: string; sha256: string };
        return this.transfer.importChunk(nameOf(args), Number(a.index), String(a.data), String(a.sha256));
      },
      'tenant.import.finish': async (args) =>
        this.transfer.importFinish(nameOf(args), (args ?? {}) as Record<string, unknown>, this.mainKey),
      'tenant.import.abort': async (args) => this.transfer.importAbort(nameOf(args)),
      'tenant.request': async (_args, env: Envelope) => {
        // The frame names the tenant the request is for (main signed it for that tenant alone).
        if (!env.tenant)
          throw new BadParameterError('ERR_RELAY_TENANT', 'a relayed request must name its tenant in the frame');
        const relay = env.command?.relay;
        if (!relay)
          throw new ProtocolError(
            'ERR_WIRE_MALFORMED',
            'a relayed request carries a RelayRequest (protocol 1.3); main is older than this host',
          );
        return new TypedResult({ relay: await relayToTenant(this.supervisor, env.tenant, relay as RelayRequest) });
      },
    };
  }

  close(): Promise<void> {
    this.engines?.close();
    return this.supervisor.stopAll();
  }
}

function nameOf(args: unknown): string {
  return checkName((args as { name?: unknown } | null)?.name, 'name');
}
