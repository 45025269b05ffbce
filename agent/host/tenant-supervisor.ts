/**
 * The host's tenant supervisor: which tenants this host runs, one OS process each (tenant-process.ts),
 * each with its own directory, LevelDB, NaCl key pair and loopback port from 18501 up. It checks the
 * host's budget before creating a tenant, adopts one moved in, removes one with everything it had, and
 * starts every tenant again when the host itself restarts. With `users` each tenant runs as its own system
 * user (made per tenant by a host as root, or from the pool install.sh made: tenant-isolation.ts,
 * tenant-user-pool.ts). It reports state changes through `onChange`
 * and passes tunnel traffic between the host role and the tenant processes; it never reads tenant data.
 */
import { chmod, mkdir, readdir, access } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { ConflictError, NotFoundError, UnavailableError, errorMessage } from '#common/errors.js';
import { checkName, isName } from '#common/names.js';
import type { Logger } from '#common/logging.js';
import type { DirectPreamble } from '../tunnel/tunnel-direct.js';
import { toTenant, type TunnelRecord } from '../tenant-ipc.js';
import { ReservedPorts } from './reserved-ports.js';
import { ownTenantDir, tenantEnv, type TenantAccounts } from './tenant-isolation.js';
import { readTenantJson, removeTenantDir, writeNewTenant, writeTenantJson, type TenantJson } from './tenant-files.js';
import { freeTenantPort } from './tenant-ports.js';
import { TenantProcess, type ProcessHooks, type TenantStatus } from './tenant-process.js';
import type { FeedSignal } from './tunnel-feed.js';
import { TenantUsage } from './tenant-usage.js';

/** What one tenant needs free on the host before it may start (overridable per request). */
export const DEFAULT_TENANT_MEMORY_MB = 256;
export const DEFAULT_TENANT_DISK_MB = 512;
const MiB = 1024 * 1024;

export interface Budget {
  memAvailable: number;
  diskFree: number;
}

export class TenantSupervisor {
  private readonly tenants = new Map<string, TenantProcess>();
  /** Per tenant, the lifecycle change in progress (stop, start): the next waits for it. */
  private readonly lifecycle = new Map<string, Promise<void>>();
  private readonly ports: ReservedPorts;
  private readonly hooks: ProcessHooks;
  /** What each tenant process last reported using (the host reports it to main). */
  readonly usage = new TenantUsage();
  onChange?: (s: TenantStatus) => void;
  /** Tunnel records a tenant sends up (towards its engines). */
  onTunnel?: (tenant: string, msg: { engineId: string; record: Uint8Array }) => void;
  /** What a tenant's tunnel feed tells main about one engine (stop or resume reading it, its session is over). */
  onTunnelSignal?: (tenant: string, engineId: string, s: FeedSignal) => void;

  /**
   * `users`: each tenant runs as its own system user (made per tenant, or from a pool); without, as the host's.
   * `env`: the environment tenant processes start with.
   */
  constructor(
    readonly root: string,
    private readonly log: Logger,
    private readonly budget: () => Promise<Budget>,
    private readonly users?: TenantAccounts,
    env: NodeJS.ProcessEnv = tenantEnv(),
  ) {
    this.ports = new ReservedPorts(() => this.tenants.values(), log);
    this.hooks = {
      log,
      ports: this.ports,
      changed: (p) => this.onChange?.(p.status()),
      freePort: (afterCollision) => this.freePort(afterCollision),
      tunnel: (tenant, r) => this.onTunnel?.(tenant, r),
      signal: (tenant, engineId, s) => this.onTunnelSignal?.(tenant, engineId, s),
      usage: (pid, r) => this.usage.record(pid, r),
      env,
    };
  }

  private dirOf(name: string): string {
    return join(this.root, name);
  }

  private freePort(afterCollision = false): Promise<number> {
    return freeTenantPort(new Set([...this.tenants.values()].map((t) => t.port)), afterCollision);
  }

  /** Starts every tenant already installed on this host (after a host restart). */
  async startAll(mainPublicKey: string): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    // only root walks in here; each tenant starts inside its own directory
    if (this.users) await chmod(this.root, 0o700);
    for (const name of await readdir(this.root)) {
      // Only tenants: not a move's staging or marker (dot names, tenant-transfer.ts) nor anything else put here.
      if (this.tenants.has(name) || !isName(name)) continue;
      const cfg = await readTenantJson(this.dirOf(name)).catch(() => undefined);
      if (!cfg) continue;
      const p = this.manage(name, cfg);
      if (cfg.stopped) {
        p.hold();
        this.onChange?.(p.status());
        continue;
      }
      void this.startInstalled(p, cfg, mainPublicKey).catch((e: unknown) =>
        this.log.error({ tenant: name, err: errorMessage(e) }, 'tenant failed to start'),
      );
    }
  }

  /** A tenant found at host start: without its user it cannot start (failed); a crash is its process's to retry. */
  private async startInstalled(p: TenantProcess, cfg: TenantJson, mainPublicKey: string): Promise<void> {
    try {
      await this.isolate(p, false);
    } catch (e) {
      p.fail(e);
      throw e;
    }
    // main's key changed (re-initialised main): the tenant must verify with the current one.
    if (cfg.mainPublicKey !== mainPublicKey) await writeTenantJson(p.dir, { ...cfg, mainPublicKey });
    await p.start();
  }

  /**
   * Before a tenant's first start in this host process: its own user (made if missing) owns its directory.
   * `arriving`: the tenant is new here (created or moved in), so no user of its name is its own yet.
   */
  private async isolate(p: TenantProcess, arriving: boolean): Promise<void> {
    if (!this.users) return;
    const ids = await this.users.ensure(p.name, arriving);
    if (ids.replaced)
      this.log.warn(
        { tenant: p.name, user: ids.user },
        'a user of an earlier tenant of this name was still there (its removal could not finish): deleted with its processes and made anew',
      );
    if (ids.created) this.log.info({ tenant: p.name, user: ids.user, uid: ids.uid }, 'tenant has a new user');
    await ownTenantDir(p.dir, ids);
    p.ids = ids;
  }

  private manage(name: string, cfg: Pick<TenantJson, 'port' | 'publicKey' | 'memoryMb'>): TenantProcess {
    const p = new TenantProcess(name, this.dirOf(name), cfg.port, cfg.publicKey, this.hooks);
    if (Number.isInteger(cfg.memoryMb) && cfg.memoryMb! > 0) p.memoryMb = cfg.memoryMb;
    this.tenants.set(name, p);
    return p;
  }

  async create(
    name: string,
    mainPublicKey: string,
    need: { memoryMb?: number; diskMb?: number } = {},
  ): Promise<TenantStatus> {
    checkName(name);
    const existing = this.tenants.get(name);
    if (existing) return existing.status(); // a re-sent create (at-least-once) is answered, not repeated
    const dir = this.dirOf(name);
    if (
      await access(dir).then(
        () => true,
        () => false,
      )
    )
      throw new ConflictError('ERR_TENANT_EXISTS', `tenant directory ${dir} already exists on this host`);
    await this.checkBudget(name, need);
    const port = await this.freePort();
    await mkdir(dir, { recursive: true, mode: 0o700 });
    // The budget it was admitted with is also its heap limit (tenant-process.ts heapLimitFlags).
    const memoryMb = need.memoryMb ?? DEFAULT_TENANT_MEMORY_MB;
    const publicKey = await writeNewTenant(dir, { name, port, mainPublicKey, memoryMb });
    const p = this.manage(name, { port, publicKey, memoryMb });
    try {
      await this.isolate(p, true);
      await p.firstStart();
    } catch (e) {
      this.tenants.delete(name);
      await removeTenantDir(dir);
      await this.users?.remove(name).catch(() => undefined); // the refusal is the error above
      throw e;
    }
    return p.status();
  }

  private async checkBudget(name: string, need: { memoryMb?: number; diskMb?: number }): Promise<void> {
    const memMb = need.memoryMb ?? DEFAULT_TENANT_MEMORY_MB;
    const diskMb = need.diskMb ?? DEFAULT_TENANT_DISK_MB;
    const b = await this.budget();
    if (b.memAvailable < memMb * MiB || b.diskFree < diskMb * MiB) {
      throw new UnavailableError(
        'ERR_HOST_BUDGET',
        `host lacks room for tenant "${name}": needs ${memMb} MiB memory and ${diskMb} MiB disk free, has ${Math.floor(b.memAvailable / MiB)} MiB and ${Math.floor(b.diskFree / MiB)} MiB`,
      );
    }
  }

  /** Takes over a tenant directory that arrived from another host: a port of ours, its own user here, then start it. */
  async adopt(name: string, mainPublicKey: string): Promise<TenantStatus> {
    const cfg = await readTenantJson(this.dirOf(name));
    const p = this.manage(name, { ...cfg, port: await this.freePort() });
    try {
      await this.isolate(p, true);
      await writeTenantJson(p.dir, { ...cfg, port: p.port, mainPublicKey });
      await p.firstStart();
    } catch (e) {
      this.tenants.delete(name); // the caller deletes what arrived (and the user, with remove())
      throw e;
    }
    return p.status();
  }

  private find(name: string): TenantProcess {
    const p = this.tenants.get(name);
    if (!p) throw new NotFoundError('ERR_TENANT_NOT_FOUND', `no tenant "${name}" on this host`);
    return p;
  }

  list(): TenantStatus[] {
    return [...this.tenants.values()].map((p) => p.status());
  }

  get(name: string): TenantStatus {
    return this.find(name).status();
  }

  has(name: string): boolean {
    return this.tenants.has(name);
  }

  tenantDir(name: string): string {
    return this.dirOf(name);
  }

  portOf(name: string): number {
    const p = this.find(name);
    if (p.held)
      throw new UnavailableError('ERR_TENANT_STOPPED', `tenant "${name}" is stopped; 'palisade tenant start ${name}'`);
    if (p.state !== 'running') throw new UnavailableError('ERR_TENANT_NOT_RUNNING', `tenant "${name}" is ${p.state}`);
    return p.port;
  }

  /**
   * An admin's stop: the process ends and tenant.json says so (written once it has exited: the file is only
   * rewritten while the tenant is down), so a host restart leaves it stopped. `changed` is false for a tenant
   * that was stopped already.
   */
  stopTenant(name: string): Promise<TenantStatus & { changed: boolean }> {
    return this.oneAtATime(name, () => this.stopHeld(name));
  }

  private async stopHeld(name: string): Promise<TenantStatus & { changed: boolean }> {
    const p = this.find(name);
    if (p.held) return { ...p.status(), changed: false };
    p.held = true;
    await p.stop();
    await writeTenantJson(p.dir, { ...(await readTenantJson(p.dir)), stopped: true });
    this.log.info({ tenant: name }, 'tenant stopped by an admin');
    this.onChange?.(p.status());
    return { ...p.status(), changed: true };
  }

  /**
   * Undoes a stop: tenant.json first (the tenant is still down; main's key may have changed meanwhile, as at
   * a host start), then the process, with the data it had.
   */
  startTenant(name: string, mainPublicKey: string): Promise<TenantStatus & { changed: boolean }> {
    return this.oneAtATime(name, () => this.startHeld(name, mainPublicKey));
  }

  private async startHeld(name: string, mainPublicKey: string): Promise<TenantStatus & { changed: boolean }> {
    const p = this.find(name);
    if (!p.held) return { ...p.status(), changed: false };
    // Held since this host started: its user is not looked up yet, and tenant.json must be written as its own.
    if (!p.ids) await this.isolate(p, false);
    await writeTenantJson(p.dir, { ...(await readTenantJson(p.dir)), stopped: false, mainPublicKey });
    await p.startAgain();
    this.log.info({ tenant: name }, 'tenant started by an admin');
    return { ...p.status(), changed: true };
  }

  /**
   * Runs one lifecycle change of tenant `name` after the ones before it: a start arriving while a stop still
   * waits for the process to exit would otherwise fork a second process of the same tenant.
   */
  private oneAtATime<T>(name: string, change: () => Promise<T>): Promise<T> {
    const next = (this.lifecycle.get(name) ?? Promise.resolve()).then(change, change);
    const settled = next.then(
      () => undefined,
      () => undefined,
    );
    this.lifecycle.set(name, settled);
    void settled.then(() => {
      if (this.lifecycle.get(name) === settled) this.lifecycle.delete(name);
    });
    return next;
  }

  /** Stops a tenant but keeps it (and its directory): for a consistent snapshot before a move. */
  async suspend(name: string): Promise<string> {
    const p = this.find(name);
    // Main refuses to move a stopped tenant; this holds when its view is not yet current (host just reconnected).
    if (p.held)
      throw new ConflictError('ERR_TENANT_NOT_MOVABLE', `tenant "${name}" is stopped; start it, then move it`);
    await p.stop();
    this.onChange?.(p.status());
    return p.dir;
  }

  /** Starts a suspended tenant again where it was (a move that failed midway). */
  async resume(name: string): Promise<TenantStatus> {
    const p = this.find(name);
    if (p.child) return p.status();
    await p.startAgain();
    return p.status();
  }

  /**
   * Stops the tenant, kills whatever else runs as its user (a process it started on its own), deletes its
   * directory (data, keys), then its user; reports what was removed.
   */
  async remove(name: string): Promise<{ name: string; removed: string[] }> {
    checkName(name); // never a path: `..` here would be the host's own directory
    const p = this.tenants.get(name);
    const dir = this.dirOf(name);
    const removed: string[] = [];
    if (
      p ||
      (await access(dir).then(
        () => true,
        () => false,
      ))
    ) {
      const pid = p?.child?.pid;
      if (p) await p.stop();
      this.tenants.delete(name);
      removed.push(pid ? `process ${pid}` : 'process (was not running)');
      // Before the directory goes: nothing of the tenant's writes there while it is deleted.
      const strays = (await this.users?.endProcesses(name)) ?? [];
      if (strays.length) {
        this.log.warn({ tenant: name, pids: strays }, "processes the tenant's user left running were killed");
        removed.push(`processes its user left running (${strays.join(', ')})`);
      }
      removed.push(`data directory ${dir}`, 'NaCl key pair', 'LevelDB store');
      await removeTenantDir(dir);
      this.ports.push(); // its API port is free again
    }
    // Last (and with whatever still runs as it): also on a re-sent remove whose userdel failed, the directory gone.
    const user = await this.users?.remove(name);
    if (user) removed.push(user);
    if (removed.length) this.log.info({ tenant: name }, 'tenant removed');
    return { name, removed };
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.tenants.values()].map((p) => p.stop()));
  }

  /** A port of the host's own (its engine listener): no tenant's inbound tunnel may lead there. */
  reserveHostPort(port: number): void {
    this.ports.reserveHostPort(port);
  }

  /** Tells a running tenant main's list of its revoked engines; false if it is not running. */
  tellRevokedEngines(name: string, engineIds: string[]): boolean {
    const child = this.tenants.get(name)?.child;
    if (!child?.connected) return false;
    toTenant.enginesRevoked(child, engineIds);
    return true;
  }

  /**
   * Hands a relayed tunnel record to a running tenant, within its engine's share of the queue (TunnelFeed); false if it
   * is not running.
   */
  sendTunnelRecord(name: string, r: TunnelRecord): boolean {
    const p = this.tenants.get(name);
    if (!p?.child?.connected || !p.feed) return false;
    p.feed.push(r);
    return true;
  }

  /**
   * Hands an engine's direct connection (its checked preamble and the bytes read so far) to a running
   * tenant: Node passes the socket's descriptor over IPC and this process closes its copy once sent.
   * False if the tenant is not running.
   */
  handSocketToTenant(
    name: string,
    preamble: DirectPreamble,
    head: Uint8Array,
    sock: Socket,
    done: (e: Error | null) => void,
  ): boolean {
    const p = this.tenants.get(name);
    if (!p?.child?.connected || p.state !== 'running') return false;
    toTenant.tunnelDirect(p.child, preamble, head, sock, done);
    return true;
  }
}
