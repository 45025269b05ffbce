/**
 * One supervised tenant and its OS process: forks tenant-main.js inside the tenant's directory (as the
 * tenant's own user when the host isolates them), waits for its "ready", restarts it with backoff when it
 * exits, moves it to another port when another process took its own, and stops it (over IPC when it runs
 * as its own user, whom the host may not signal). It also takes the
 * process's messages (agent/tenant-ipc.ts) and holds the feed of relayed tunnel records towards it.
 * Not here: which tenants exist, creating or removing them (tenant-supervisor.ts), their files
 * (tenant-files.ts), the ports other tenants must not be reached at (reserved-ports.ts).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { Backoff } from '#common/backoff.js';
import { UnavailableError, errorMessage } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import { withAgentNodeFlags } from '#common/agent-runtime.js';
import { onTenantMessages, toTenant, type TenantMessageHandlers, type UsageReport } from '../tenant-ipc.js';
import type { ReservedPorts } from './reserved-ports.js';
import { readTenantJson, writeTenantJson } from './tenant-files.js';
import { runChore } from './as-tenant.js';
import { capabilityDrop, type TenantIds } from './tenant-isolation.js';
import { TunnelFeed, type FeedSignal } from './tunnel-feed.js';
import { TENANT_MAIN } from '../program-files.js';

const READY_TIMEOUT_MS = 30_000;
/** A tenant that stays up this long after a restart is healthy again: its backoff resets. */
const STABLE_AFTER_MS = 30_000;
/** Killed if it has not exited this long after SIGTERM. */
const STOP_TIMEOUT_MS = 10_000;
/** Tries of a first start whose port another process took meanwhile (each on a newly picked port). */
const FIRST_START_TRIES = 6;

export type TenantState = 'starting' | 'running' | 'restarting' | 'stopped' | 'failed';

export interface TenantStatus {
  name: string;
  port: number;
  state: TenantState;
  pid: number | null;
  restarts: number;
  publicKey: string;
  /** Its V8 heap limit in MiB (null: Node's default, a tenant made before limits). */
  memoryMb: number | null;
  lastError?: string;
}

/** What a tenant process needs of its supervisor. */
export interface ProcessHooks {
  log: Logger;
  ports: ReservedPorts;
  /** Its state changed (the supervisor reports it). */
  changed(p: TenantProcess): void;
  /** A free port for it, avoiding the other tenants' (it moves after a collision). */
  freePort(afterCollision: boolean): Promise<number>;
  /** A tunnel record it sends up, towards an engine. */
  tunnel(tenant: string, r: { engineId: string; record: Uint8Array }): void;
  /** What its tunnel feed tells main about one engine. */
  signal(tenant: string, engineId: string, s: FeedSignal): void;
  /** Its process `pid` reported its CPU time, RSS and event counts (tenant-usage.ts). */
  usage(pid: number, r: UsageReport): void;
  /** The environment its process starts with (tenant-isolation.ts's tenantEnv). */
  env: NodeJS.ProcessEnv;
}

export class TenantProcess {
  state: TenantState = 'starting';
  child?: ChildProcess;
  restarts = 0;
  lastError?: string;
  /** Stopped on purpose: its exit is not a crash to restart. */
  stopping = false;
  /** Stopped by an admin (`tenant stop`), not for a move: stays down until `tenant start`, host restarts too. */
  held = false;
  /** Its V8 heap limit in MiB, from tenant.json (`--max-old-space-size`); undefined: Node's default. */
  memoryMb?: number;
  /** Ports of this tenant's outbound tunnel listeners, as its current process reported them. */
  tunnelPorts: number[] = [];
  /** The tenant's own user (when the host isolates tenants by user), set before its first start here. */
  ids?: TenantIds;
  /** Relayed tunnel records toward the current process, bounded per engine. */
  feed?: TunnelFeed;
  /** Another process took the port between our probe and the tenant's listen: pick a new one. */
  private portInUse = false;
  private readonly backoff = new Backoff({ baseMs: 500, capMs: 30_000 });
  private restartTimer?: NodeJS.Timeout;
  private stableTimer?: NodeJS.Timeout;
  private readonly log: Logger;

  constructor(
    readonly name: string,
    readonly dir: string,
    public port: number,
    readonly publicKey: string,
    private readonly hooks: ProcessHooks,
  ) {
    this.log = hooks.log.child({ tenant: name });
  }

  status(): TenantStatus {
    return {
      name: this.name,
      port: this.port,
      state: this.state,
      pid: this.child?.pid ?? null,
      restarts: this.restarts,
      publicKey: this.publicKey,
      memoryMb: this.memoryMb ?? null,
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  /** A tenant found stopped by an admin at host start: known, reported, not started. */
  hold(): void {
    this.held = true;
    this.stopping = true;
    this.state = 'stopped';
  }

  /** Marks a tenant that cannot start at all (its user is missing): not restarted. */
  fail(e: unknown): void {
    this.state = 'failed';
    this.lastError = errorMessage(e);
    this.hooks.changed(this);
  }

  /** Forks the process; resolves once it is ready, rejects if it exits (it then restarts) or stays silent first. */
  start(): Promise<void> {
    this.state = this.restarts ? 'restarting' : 'starting';
    return new Promise((resolve, reject) => {
      // Started inside its directory (`--dir .`): the fork changes there before it drops to the tenant's user,
      // who could not walk there from / (the host's directory and the tenants directory are root's, 0700).
      // As the tenant's user it holds no capability: an installed host's pass through setpriv (capabilityDrop).
      const [execPath, ...pre] = [...((this.ids && capabilityDrop()) || []), process.execPath];
      const child = fork(TENANT_MAIN, ['--dir', '.'], {
        cwd: this.dir,
        ...(this.ids ? { uid: this.ids.uid, gid: this.ids.gid } : {}),
        execPath,
        execArgv: [...pre, ...withAgentNodeFlags(), ...TENANT_NODE_FLAGS, ...heapLimitFlags(this.memoryMb)],
        env: this.hooks.env,
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
        serialization: 'advanced',
      });
      this.child = child;
      // Binary over IPC (advanced serialization): records are not re-encoded.
      this.feed = new TunnelFeed(
        (r, done) => toTenant.tunnel(child, r, done),
        (engineId, sig) => this.hooks.signal(this.name, engineId, sig),
        this.log,
      );
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-2000);
      });
      const timer = setTimeout(() => {
        this.kill(child);
        reject(
          new UnavailableError(
            'ERR_TENANT_START',
            `tenant "${this.name}" did not become ready within ${READY_TIMEOUT_MS} ms`,
          ),
        );
      }, READY_TIMEOUT_MS);
      onTenantMessages(
        child,
        this.messages(child, () => {
          clearTimeout(timer);
          resolve();
        }),
        this.log,
      );
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        this.exited(child, code, signal, stderr, reject);
      });
    });
  }

  /** What this host does with each message of the process `child`. */
  private messages(child: ChildProcess, ready: () => void): TenantMessageHandlers {
    return {
      ready: () => {
        // Once per process: a tenant repeating it would make the host report to main and push ports each time.
        if (this.child !== child || this.state === 'running') return;
        this.state = 'running';
        this.lastError = undefined;
        this.log.info({ pid: child.pid, port: this.port }, 'tenant running');
        this.stableTimer = setTimeout(() => this.backoff.reset(), STABLE_AFTER_MS);
        this.hooks.changed(this);
        this.hooks.ports.push(); // the new process starts knowing the others' listeners
        ready();
      },
      tunnel: (m) => this.hooks.tunnel(this.name, { engineId: m.engineId, record: m.record }),
      // From an earlier process of this tenant (replaced meanwhile): about listeners that died with it.
      listeners: (m) => {
        if (this.child === child) this.hooks.ports.onListeners(this, m.listen, m.seq);
      },
      foreignPortsHeld: (m) => {
        if (this.child === child) this.hooks.ports.onConfirmed(this.name, m.version);
      },
      usage: (m) => {
        if (this.child === child && child.pid) this.hooks.usage(child.pid, m);
      },
      failed: (m) => {
        this.lastError = m.message;
        this.portInUse = m.code === 'EADDRINUSE';
      },
    };
  }

  private exited(
    child: ChildProcess,
    code: number | null,
    signal: NodeJS.Signals | null,
    stderr: string,
    reject: (e: Error) => void,
  ): void {
    clearTimeout(this.stableTimer);
    // A process this one replaced (a start while it was still stopping): nothing of ours to restart or report.
    if (this.child !== undefined && this.child !== child) return;
    if (this.child === child) {
      this.child = undefined;
      this.feed?.close();
      this.feed = undefined;
      // Its listeners died with the process: no longer anyone's to protect (a port may be reused).
      if (this.tunnelPorts.length) {
        this.tunnelPorts = [];
        this.hooks.ports.push();
      }
      this.hooks.ports.onConfirmed(this.name, Infinity); // nobody waits for a confirmation from a process that is gone
    }
    if (this.stopping) {
      this.state = 'stopped';
      this.hooks.changed(this);
      // A start still waiting for "ready" ends here too (settled already if it became ready).
      reject(new UnavailableError('ERR_TENANT_STOPPED', `tenant "${this.name}" was stopped while it started`));
      return;
    }
    this.lastError =
      this.lastError ?? `exited with ${code ?? signal}${stderr ? `: ${stderr.trim().split('\n').pop()}` : ''}`;
    this.log.warn({ code, signal }, 'tenant exited; restarting');
    reject(new UnavailableError('ERR_TENANT_START', `tenant "${this.name}" ${this.lastError}`));
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    this.state = 'restarting';
    this.restarts++;
    this.hooks.changed(this);
    this.restartTimer = setTimeout(() => {
      if (this.stopping) return;
      this.repickPortIfTaken()
        .then(() => (this.stopping ? undefined : this.start())) // a stop may have come while the port was looked up
        .catch((e: unknown) => this.log.warn({ err: errorMessage(e) }, 'tenant restart failed'));
    }, this.backoff.next());
  }

  /**
   * First start of a new or adopted tenant: another process may take the probed port first; retry
   * elsewhere. If it never starts it is stopped for good and the error thrown: the caller forgets it
   * (no restart loop for one that never ran).
   */
  async firstStart(): Promise<void> {
    await this.startOnFreePort(true);
  }

  /**
   * Starts a stopped tenant again where it is (a move that failed midway). While it was stopped another
   * process may have taken its port (tenants of another host on this machine): it then moves to a free one,
   * as at a first start. Any other failure leaves it to the restart loop, as for a tenant that crashed.
   */
  async startAgain(): Promise<void> {
    this.stopping = false;
    this.held = false;
    await this.startOnFreePort(false);
  }

  /**
   * Starts, moving to a free port while its own is taken; on giving up, stops for good (`stopForGood`) or leaves
   * the tenant to the restart loop.
   */
  private async startOnFreePort(stopForGood: boolean): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.start();
        return;
      } catch (e) {
        const retry = this.portInUse && attempt < FIRST_START_TRIES;
        if (retry || stopForGood) clearTimeout(this.restartTimer);
        if (!retry) {
          if (stopForGood) this.stopping = true;
          throw e;
        }
        await this.repickPortIfTaken();
      }
    }
  }

  private async repickPortIfTaken(): Promise<void> {
    if (!this.portInUse) return;
    this.portInUse = false;
    this.port = await this.hooks.freePort(true);
    await writeTenantJson(this.dir, { ...(await readTenantJson(this.dir)), port: this.port });
    this.log.info({ port: this.port }, 'tenant port was taken; moved to a free one');
  }

  /** Stops the process for good (SIGTERM, then SIGKILL); resolves once it has exited. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    clearTimeout(this.stableTimer);
    const child = this.child;
    if (!child || child.exitCode !== null) {
      this.state = 'stopped';
      return;
    }
    await new Promise<void>((resolve) => {
      let forced = false;
      const kill = setTimeout(() => {
        forced = true;
        this.kill(child);
      }, STOP_TIMEOUT_MS);
      child.once('exit', (code, signal) => {
        clearTimeout(kill);
        // A tenant that does not exit 0 on SIGTERM skipped closing its store: say so (the e2e harness checks).
        if (forced || (code !== 0 && signal !== 'SIGTERM'))
          this.log.warn({ code, signal, forced }, 'tenant did not stop cleanly');
        resolve();
      });
      // A process of the tenant's own user is beyond the host's signals (no CAP_KILL): asked over IPC instead.
      if (this.ids) toTenant.stop(child);
      else child.kill('SIGTERM');
    });
  }

  /** SIGKILL, sent as the tenant's user when it runs as one (as-tenant.ts). */
  private kill(child: ChildProcess): void {
    if (!this.ids || !child.pid) {
      child.kill('SIGKILL');
      return;
    }
    runChore('/', this.ids, 'kill', { arg: String(child.pid) }).catch((e: unknown) =>
      this.log.warn({ err: errorMessage(e) }, 'tenant could not be killed'),
    );
  }
}

/**
 * The node flag that caps a tenant's V8 heap (old generation) at its memory budget: a leak ends in that
 * tenant's out-of-memory exit and restart, not in the host's OOM killer choosing among its neighbours.
 * It does not bound Buffers, native memory (LevelDB's cache, the tunnel addon) or code: RSS runs above it.
 */
/**
 * Tenant processes run scripts in V8 isolates (agent/tenant/scripts/script-sandbox.ts), which crash the process
 * when they meet Node's own startup snapshot in V8's shared heap (isolated-vm's README); without the snapshot a
 * tenant starts a few ms slower.
 */
export const TENANT_NODE_FLAGS: readonly string[] = ['--no-node-snapshot'];

export function heapLimitFlags(memoryMb: number | undefined): string[] {
  return memoryMb ? [`--max-old-space-size=${memoryMb}`] : [];
}
