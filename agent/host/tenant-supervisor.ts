/**
 * The host's tenant supervisor: one OS process per tenant, each with its own directory, LevelDB, NaCl
 * key pair and loopback port from 18501 up. It checks the host's budget before creating a tenant,
 * restarts a crashed tenant with backoff, and starts every tenant again when the host itself restarts.
 * With `users` (the host runs as root) each tenant runs as its own system user (tenant-isolation.ts).
 * It reports state changes through `onChange`; it never reads tenant data.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { constants } from 'node:fs';
import { chmod, lchown, mkdir, open, readdir, rm, access } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import nacl from 'tweetnacl';
import { Backoff } from '#common/backoff.js';
import { writeFileAtomic } from '#common/atomic-file.js';
import { BadParameterError, ConflictError, NotFoundError, UnavailableError, errorMessage } from '#common/errors.js';
import { checkName, isName } from '#common/names.js';
import type { Logger } from '#common/logging.js';
import { withAgentNodeFlags } from '#common/agent-runtime.js';
import { ReservedPorts } from './reserved-ports.js';
import { ownTenantDir, tenantEnv, type TenantIds, type TenantUsers } from './tenant-isolation.js';
import { TunnelFeed, type FeedSignal, type TunnelMessage } from './tunnel-feed.js';

export const FIRST_TENANT_PORT = 18501;
const LAST_TENANT_PORT = 19500;
/** What one tenant needs free on the host before it may start (overridable per request). */
export const DEFAULT_TENANT_MEMORY_MB = 256;
export const DEFAULT_TENANT_DISK_MB = 512;
const READY_TIMEOUT_MS = 30_000;
/** A tenant that stays up this long after a restart is healthy again: its backoff resets. */
const STABLE_AFTER_MS = 30_000;
export type TenantState = 'starting' | 'running' | 'restarting' | 'stopped' | 'failed';

export interface TenantStatus { name: string; port: number; state: TenantState; pid: number | null; restarts: number; publicKey: string; lastError?: string }

export interface Budget { memAvailable: number; diskFree: number }

interface Managed {
  name: string; dir: string; port: number; publicKey: string;
  state: TenantState; child?: ChildProcess; restarts: number; backoff: Backoff; lastError?: string;
  restartTimer?: NodeJS.Timeout; stableTimer?: NodeJS.Timeout; stopping: boolean;
  /** Another process took the port between our probe and the tenant's listen: pick a new one. */
  portInUse?: boolean;
  /** Ports of this tenant's outbound tunnel listeners, as its current process reported them. */
  tunnelPorts: number[];
  /** The tenant's own user (when the host isolates tenants by user), set before its first start here. */
  ids?: TenantIds;
  /** Relayed tunnel records toward the current process, bounded per engine. */
  feed?: TunnelFeed;
}

/** What the host reads of a tenant's tenant.json. */
interface TenantJson { port: number; publicKey: string; mainPublicKey: string }

/** The tenant process's entry point: a tenant's user must be able to read it and every module beside it. */
export const TENANT_MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'tenant', 'tenant-main.js');

export class TenantSupervisor {
  private readonly tenants = new Map<string, Managed>();
  private readonly ports: ReservedPorts;
  onChange?: (s: TenantStatus) => void;
  /** Tunnel records a tenant sends up (towards its engines). */
  onTunnel?: (tenant: string, msg: { engineId: string; record: Uint8Array }) => void;
  /** What a tenant's tunnel feed tells main about one engine (stop or resume reading it, its session is over). */
  onTunnelSignal?: (tenant: string, engineId: string, s: FeedSignal) => void;

  /** `users`: each tenant runs as its own system user (the host runs as root); without, as the host's user. */
  constructor(readonly root: string, private readonly log: Logger, private readonly budget: () => Promise<Budget>, private readonly users?: TenantUsers) {
    this.ports = new ReservedPorts(() => this.tenants.values(), log);
  }

  private dirOf(name: string): string { return join(this.root, name); }

  /** Starts every tenant already installed on this host (after a host restart). */
  async startAll(mainPublicKey: string): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    if (this.users) await chmod(this.root, 0o700); // only root walks in here; each tenant starts inside its own directory
    for (const name of await readdir(this.root)) {
      // Only tenants: not a move's staging or marker (dot names, tenant-transfer.ts) nor anything else put here.
      if (this.tenants.has(name) || !isName(name)) continue;
      const cfg = await readTenantJson(this.dirOf(name)).catch(() => undefined);
      if (!cfg) continue;
      const m = this.manage(name, cfg.port, cfg.publicKey);
      void this.startInstalled(m, cfg, mainPublicKey).catch((e: unknown) => this.log.error({ tenant: name, err: errorMessage(e) }, 'tenant failed to start'));
    }
  }

  /** A tenant found at host start: without its user it cannot start (failed); a crash is spawn's to retry. */
  private async startInstalled(m: Managed, cfg: TenantJson, mainPublicKey: string): Promise<void> {
    try {
      await this.isolate(m, false);
    } catch (e) {
      m.state = 'failed';
      m.lastError = errorMessage(e);
      this.emit(m);
      throw e;
    }
    // main's key changed (re-initialised main): the tenant must verify with the current one.
    if (cfg.mainPublicKey !== mainPublicKey) await this.writeTenantJson(m, { ...cfg, mainPublicKey });
    await this.spawn(m);
  }

  /** Rewrites a tenant's tenant.json as the tenant's own: the host's umask (0077 in its unit) would leave it root's alone. */
  private async writeTenantJson(m: Managed, cfg: TenantJson): Promise<void> {
    const path = join(m.dir, 'tenant.json');
    await writeFileAtomic(path, JSON.stringify(cfg, null, 2));
    if (m.ids) await lchown(path, m.ids.uid, m.ids.gid); // the tenant is not running: nothing swaps the file meanwhile
  }

  /**
   * Before a tenant's first start in this host process: its own user (made if missing) owns its directory.
   * `arriving`: the tenant is new here (created or moved in), so no user of its name is its own yet.
   */
  private async isolate(m: Managed, arriving: boolean): Promise<void> {
    if (!this.users) return;
    const ids = await this.users.ensure(m.name, arriving);
    if (ids.replaced) this.log.warn({ tenant: m.name, user: ids.user }, 'a user of an earlier tenant of this name was still there (its removal could not finish): deleted with its processes and made anew');
    if (ids.created) this.log.info({ tenant: m.name, user: ids.user, uid: ids.uid }, 'tenant user created');
    await ownTenantDir(m.dir, ids);
    m.ids = ids;
  }

  private manage(name: string, port: number, publicKey: string): Managed {
    const m: Managed = { name, dir: this.dirOf(name), port, publicKey, state: 'starting', restarts: 0, backoff: new Backoff({ baseMs: 500, capMs: 30_000 }), stopping: false, tunnelPorts: [] };
    this.tenants.set(name, m);
    return m;
  }

  async create(name: string, mainPublicKey: string, need: { memoryMb?: number; diskMb?: number } = {}): Promise<TenantStatus> {
    checkName(name);
    const existing = this.tenants.get(name);
    if (existing) return this.status(existing); // a re-sent create (at-least-once) is answered, not repeated
    if (await access(this.dirOf(name)).then(() => true, () => false)) throw new ConflictError('ERR_TENANT_EXISTS', `tenant directory ${this.dirOf(name)} already exists on this host`);
    const memMb = need.memoryMb ?? DEFAULT_TENANT_MEMORY_MB;
    const diskMb = need.diskMb ?? DEFAULT_TENANT_DISK_MB;
    const b = await this.budget();
    if (b.memAvailable < memMb * 1024 * 1024 || b.diskFree < diskMb * 1024 * 1024) {
      throw new UnavailableError('ERR_HOST_BUDGET', `host lacks room for tenant "${name}": needs ${memMb} MiB memory and ${diskMb} MiB disk free, has ${Math.floor(b.memAvailable / 1048576)} MiB and ${Math.floor(b.diskFree / 1048576)} MiB`);
    }
    const port = await this.nextPort();
    const kp = nacl.box.keyPair();
    const publicKey = Buffer.from(kp.publicKey).toString('base64');
    const dir = this.dirOf(name);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(join(dir, 'tenant-key.json'), JSON.stringify({ alg: 'nacl-box', publicKey, secretKey: Buffer.from(kp.secretKey).toString('base64') }), 0o600);
    await writeFileAtomic(join(dir, 'tenant.json'), JSON.stringify({ name, port, mainPublicKey, publicKey, createdAt: new Date().toISOString() }, null, 2));
    const m = this.manage(name, port, publicKey);
    try {
      await this.isolate(m, true);
      await this.firstStart(m);
    } catch (e) {
      this.tenants.delete(name); // firstStart forgets it too; isolate does not
      await rm(dir, { recursive: true, force: true });
      await this.users?.remove(name).catch(() => undefined); // the refusal is the error above
      throw e;
    }
    return this.status(m);
  }

  /**
   * The lowest free port from 18501; after a collision (another host on this machine probed the same port
   * at the same moment) from a random offset, so two racing hosts do not collide again on the next one.
   */
  private async nextPort(afterCollision = false): Promise<number> {
    const used = new Set([...this.tenants.values()].map((t) => t.port));
    const span = LAST_TENANT_PORT - FIRST_TENANT_PORT + 1;
    const offset = afterCollision ? Math.floor(Math.random() * Math.min(64, span)) : 0;
    for (let i = 0; i < span; i++) {
      const p = FIRST_TENANT_PORT + ((offset + i) % span);
      if (!used.has(p) && await portFree(p)) return p;
    }
    throw new UnavailableError('ERR_NO_TENANT_PORT', `no free port between ${FIRST_TENANT_PORT} and ${LAST_TENANT_PORT} on this host`);
  }

  private spawn(m: Managed): Promise<void> {
    m.state = m.restarts ? 'restarting' : 'starting';
    return new Promise((resolve, reject) => {
      // Started inside its directory (`--dir .`): the fork changes there before it drops to the tenant's user,
      // who could not walk there from / (the host's directory and the tenants directory are root's, 0700).
      const child = fork(TENANT_MAIN, ['--dir', '.'], {
        cwd: m.dir, ...(m.ids ? { uid: m.ids.uid, gid: m.ids.gid } : {}),
        execArgv: withAgentNodeFlags(), env: tenantEnv(), stdio: ['ignore', 'ignore', 'pipe', 'ipc'], serialization: 'advanced',
      });
      m.child = child;
      m.feed = new TunnelFeed((msg, done) => child.send(msg, done), (engineId, sig) => this.onTunnelSignal?.(m.name, engineId, sig), this.log.child({ tenant: m.name }));
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-2000); });
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new UnavailableError('ERR_TENANT_START', `tenant "${m.name}" did not become ready within ${READY_TIMEOUT_MS} ms`)); }, READY_TIMEOUT_MS);
      child.on('message', (msg: { type?: string; message?: string }) => {
        if (msg?.type === 'ready') {
          clearTimeout(timer);
          m.state = 'running';
          m.lastError = undefined;
          this.log.info({ tenant: m.name, pid: child.pid, port: m.port }, 'tenant running');
          m.stableTimer = setTimeout(() => m.backoff.reset(), STABLE_AFTER_MS);
          this.emit(m);
          this.ports.push(); // the new process starts knowing the others' listeners
          resolve();
        } else if (msg?.type === 'tunnel') {
          const t = msg as { engineId?: unknown; record?: unknown };
          if (typeof t.engineId === 'string' && t.record instanceof Uint8Array) this.onTunnel?.(m.name, { engineId: t.engineId, record: t.record });
        } else if (msg?.type === 'tunnel-listeners' && m.child === child) {
          const r = msg as { listen?: unknown; seq?: unknown };
          this.ports.onListeners(m, r.listen, r.seq);
        } else if (msg?.type === 'tunnel-foreign-ports-ok' && m.child === child) {
          this.ports.onConfirmed(m.name, Number((msg as { version?: unknown }).version));
        } else if (msg?.type === 'failed') {
          m.lastError = msg.message;
          m.portInUse = (msg as { code?: string }).code === 'EADDRINUSE';
        }
      });
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        clearTimeout(m.stableTimer);
        if (m.child === child) {
          m.child = undefined;
          m.feed?.close();
          m.feed = undefined;
          // Its listeners died with the process: no longer anyone's to protect (a port may be reused).
          if (m.tunnelPorts.length) { m.tunnelPorts = []; this.ports.push(); }
          this.ports.onConfirmed(m.name, Infinity); // nobody waits for a confirmation from a process that is gone
        }
        if (m.stopping) { m.state = 'stopped'; this.emit(m); return; }
        m.lastError = m.lastError ?? `exited with ${code ?? signal}${stderr ? `: ${stderr.trim().split('\n').pop()}` : ''}`;
        this.log.warn({ tenant: m.name, code, signal }, 'tenant exited; restarting');
        reject(new UnavailableError('ERR_TENANT_START', `tenant "${m.name}" ${m.lastError}`));
        this.scheduleRestart(m);
      });
    });
  }

  private scheduleRestart(m: Managed): void {
    m.state = 'restarting';
    m.restarts++;
    this.emit(m);
    const delay = m.backoff.next();
    m.restartTimer = setTimeout(() => {
      if (m.stopping) return;
      this.repickPortIfTaken(m).then(() => this.spawn(m)).catch((e: unknown) => this.log.warn({ tenant: m.name, err: errorMessage(e) }, 'tenant restart failed'));
    }, delay);
  }

  /**
   * First start of a new or adopted tenant: another process may take the probed port first; retry
   * elsewhere. If it never starts, the tenant is forgotten (no restart loop for one that never ran).
   */
  private async firstStart(m: Managed): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.spawn(m);
        return;
      } catch (e) {
        clearTimeout(m.restartTimer);
        if (!m.portInUse || attempt >= 6) {
          m.stopping = true;
          this.tenants.delete(m.name);
          throw e;
        }
        await this.repickPortIfTaken(m);
      }
    }
  }

  private async repickPortIfTaken(m: Managed): Promise<void> {
    if (!m.portInUse) return;
    m.portInUse = false;
    m.port = await this.nextPort(true);
    await this.writeTenantJson(m, { ...await readTenantJson(m.dir), port: m.port });
    this.log.info({ tenant: m.name, port: m.port }, 'tenant port was taken; moved to a free one');
  }

  private emit(m: Managed): void {
    this.onChange?.(this.status(m));
  }

  private status(m: Managed): TenantStatus {
    return { name: m.name, port: m.port, state: m.state, pid: m.child?.pid ?? null, restarts: m.restarts, publicKey: m.publicKey, ...(m.lastError ? { lastError: m.lastError } : {}) };
  }

  list(): TenantStatus[] {
    return [...this.tenants.values()].map((m) => this.status(m));
  }

  get(name: string): TenantStatus {
    const m = this.tenants.get(name);
    if (!m) throw new NotFoundError('ERR_TENANT_NOT_FOUND', `no tenant "${name}" on this host`);
    return this.status(m);
  }

  private async stop(m: Managed): Promise<void> {
    m.stopping = true;
    clearTimeout(m.restartTimer);
    clearTimeout(m.stableTimer);
    const child = m.child;
    if (!child || child.exitCode !== null) { m.state = 'stopped'; return; }
    await new Promise<void>((resolve) => {
      let forced = false;
      const kill = setTimeout(() => { forced = true; child.kill('SIGKILL'); }, 10_000);
      child.once('exit', (code, signal) => {
        clearTimeout(kill);
        // A tenant that does not exit 0 on SIGTERM skipped closing its store: say so (the e2e harness checks).
        if (forced || (code !== 0 && signal !== 'SIGTERM')) this.log.warn({ tenant: m.name, code, signal, forced }, 'tenant did not stop cleanly');
        resolve();
      });
      child.kill('SIGTERM');
    });
  }

  /** Stops a tenant but keeps it (and its directory): for a consistent snapshot before a move. */
  async suspend(name: string): Promise<string> {
    const m = this.tenants.get(name);
    if (!m) throw new NotFoundError('ERR_TENANT_NOT_FOUND', `no tenant "${name}" on this host`);
    await this.stop(m);
    this.emit(m);
    return m.dir;
  }

  /** Starts a suspended tenant again where it was (a move that failed midway). */
  async resume(name: string): Promise<TenantStatus> {
    const m = this.tenants.get(name);
    if (!m) throw new NotFoundError('ERR_TENANT_NOT_FOUND', `no tenant "${name}" on this host`);
    if (m.child) return this.status(m);
    m.stopping = false;
    await this.spawn(m);
    return this.status(m);
  }

  /** Takes over a tenant directory that arrived from another host: a port of ours, its own user here, then start it. */
  async adopt(name: string, mainPublicKey: string): Promise<TenantStatus> {
    const cfg = await readTenantJson(this.dirOf(name));
    const m = this.manage(name, await this.nextPort(), cfg.publicKey);
    try {
      await this.isolate(m, true);
      await this.writeTenantJson(m, { ...cfg, port: m.port, mainPublicKey });
      await this.firstStart(m);
    } catch (e) {
      this.tenants.delete(name); // the caller deletes what arrived (and the user, with remove())
      throw e;
    }
    return this.status(m);
  }

  /** A port of the host's own (its engine listener): no tenant's inbound tunnel may lead there. */
  reserveHostPort(port: number): void {
    this.ports.reserveHostPort(port);
  }

  /** Tells a running tenant something of the host's (not a tunnel record: no feed bound applies); false if it is not running. */
  tellTenant(name: string, msg: { type: string; [field: string]: unknown }): boolean {
    const child = this.tenants.get(name)?.child;
    if (!child?.connected) return false;
    child.send(msg, () => undefined); // a child exiting meanwhile: its exit handles it
    return true;
  }

  /** Hands a relayed tunnel record to a running tenant, within its engine's share of the queue (TunnelFeed); false if it is not running. */
  sendToTenant(name: string, msg: TunnelMessage): boolean {
    const m = this.tenants.get(name);
    if (!m?.child?.connected || !m.feed) return false;
    m.feed.push(msg);
    return true;
  }

  /**
   * Hands an engine's direct connection to a running tenant (Node passes the socket's descriptor over
   * IPC; this process closes its copy once sent). False if the tenant is not running.
   */
  handSocketToTenant(name: string, msg: Record<string, unknown>, sock: Socket, done: (e: Error | null) => void): boolean {
    const m = this.tenants.get(name);
    if (!m?.child?.connected || m.state !== 'running') return false;
    m.child.send(msg, sock, done);
    return true;
  }

  has(name: string): boolean {
    return this.tenants.has(name);
  }

  tenantDir(name: string): string {
    return this.dirOf(name);
  }

  /**
   * Stops the tenant, kills whatever else runs as its user (a process it started on its own), deletes its
   * directory (data, keys), then its user; reports what was removed.
   */
  async remove(name: string): Promise<{ name: string; removed: string[] }> {
    checkName(name); // never a path: `..` here would be the host's own directory
    const m = this.tenants.get(name);
    const dir = this.dirOf(name);
    const removed: string[] = [];
    if (m || await access(dir).then(() => true, () => false)) {
      const pid = m?.child?.pid;
      if (m) await this.stop(m);
      this.tenants.delete(name);
      removed.push(pid ? `process ${pid}` : 'process (was not running)');
      // Before the directory goes: nothing of the tenant's writes there while it is deleted.
      const strays = await this.users?.endProcesses(name) ?? [];
      if (strays.length) {
        this.log.warn({ tenant: name, pids: strays }, "processes the tenant's user left running were killed");
        removed.push(`processes its user left running (${strays.join(', ')})`);
      }
      removed.push(`data directory ${dir}`, 'NaCl key pair', 'LevelDB store');
      await rm(dir, { recursive: true, force: true });
      this.ports.push(); // its API port is free again
    }
    // Last (and with whatever still runs as it): also on a re-sent remove whose userdel failed, the directory gone.
    if (await this.users?.remove(name)) removed.push(`system user ${this.users!.nameOf(name)}`);
    if (removed.length) this.log.info({ tenant: name }, 'tenant removed');
    return { name, removed };
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.tenants.values()].map((m) => this.stop(m)));
  }

  portOf(name: string): number {
    const m = this.tenants.get(name);
    if (!m) throw new NotFoundError('ERR_TENANT_NOT_FOUND', `no tenant "${name}" on this host`);
    if (m.state !== 'running') throw new UnavailableError('ERR_TENANT_NOT_RUNNING', `tenant "${name}" is ${m.state}`);
    return m.port;
  }
}

/**
 * A tenant's tenant.json, never through a link nor from anything but a plain file: the tenant owns its
 * directory and could otherwise have the host (root) read a file of the host's, or hang on a FIFO.
 */
async function readTenantJson(dir: string): Promise<TenantJson> {
  const fh = await open(join(dir, 'tenant.json'), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile()) throw new BadParameterError('ERR_TENANT_CONFIG', `${join(dir, 'tenant.json')} is not a regular file`);
    return JSON.parse(await fh.readFile('utf8')) as TenantJson;
  } finally {
    await fh.close();
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer().once('error', () => resolve(false)).listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
