/**
 * How a host keeps its tenants apart at the OS level. When the host runs as root, each tenant process runs
 * as its own system user (`palt-…`, made with `useradd --system` when the tenant is created, adopted or found
 * without one, deleted with `userdel` when it is removed), owns its directory (0700) and nothing else, and
 * starts with a minimal environment. Without root (or with `tenantUsers: false` in agent.json) tenants share
 * the host's user and are apart only as processes; the host says so once at start.
 *
 * It is not a sandbox: no namespaces, seccomp or resource limits. The tenants directory stays root's
 * (0700): a tenant process starts inside its own directory (the fork chdirs there before it drops to the
 * tenant's user) and cannot walk up from it, so the host's keys and the other tenants are not even visible.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, lchown, lstat, readdir, readFile } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UnavailableError } from '#common/errors.js';
import { AGENT_ENV, withAgentEnv } from '#common/agent-runtime.js';

/** Every tenant user's name starts with this: an operator (or a test's cleanup) can tell them apart. */
export const TENANT_USER_PREFIX = 'palt-';
/** Hex digits of the hash in a user name: 64 bits, and 21 characters in all (useradd takes up to 32). */
const HASH_PART = 16;
const PASSWD = '/etc/passwd';
const TOOL_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';
const TOOL_TIMEOUT_MS = 30_000;
/** userdel's exit code for "no such user": a user already gone is removed. */
const USERDEL_NO_USER = 6;

/**
 * The environment variables a tenant process reads (logging level, the native AEAD switch, the malloc
 * tuning of AGENT_ENV) and PATH. Nothing else of the host's environment — an operator's shell, a key in
 * PALISADE_API_KEY — reaches a tenant.
 */
const TENANT_ENV_PASSED: readonly string[] = ['PATH', 'PALISADE_LOG_LEVEL', 'PALISADE_NATIVE_AEAD', ...Object.keys(AGENT_ENV)];

export type Isolation = { users: true } | { users: false; reason: string };

/**
 * Users per tenant when the host runs as root and the operator did not turn it off; otherwise why not.
 * `closedAt` is where the tenant code is closed to other users (closedToOthers): a tenant user could not
 * even load it, so by default tenants then run as the host's user rather than not at all (a checkout in a
 * 0700 directory such as /root or mktemp's). An operator who set `tenantUsers: true` gets users all the
 * same, and tenants that fail to start with the reason.
 */
export function tenantIsolation(uid: number | undefined, configured: boolean | undefined, closedAt?: string): Isolation {
  if (configured === false) return { users: false, reason: 'tenantUsers is false in agent.json' };
  if (uid !== 0) return { users: false, reason: 'the host agent does not run as root' };
  if (closedAt && configured !== true) {
    return { users: false, reason: `tenant users could not read the palisade code: ${closedAt} is closed to other users (chmod o+rx, or install palisade where every user may read it)` };
  }
  return { users: true };
}

/**
 * The first place on the way to `file` that a user other than its owner cannot pass: a directory without
 * o+x, or the file itself without o+r. Undefined when the way is open. Mode bits only (no ACLs): the
 * common case is a checkout under a 0700 home or temporary directory.
 */
export function closedToOthers(file: string): string | undefined {
  const path = resolve(file);
  const dirs: string[] = [];
  for (let d = dirname(path); ; d = dirname(d)) {
    dirs.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of dirs) if (!(statSync(d).mode & 0o001)) return d;
  return statSync(path).mode & 0o004 ? undefined : path;
}

/**
 * The tenant's user on this host: a hash of the host's directory and the tenant's name, as several hosts on
 * one machine may each have a tenant "acme". Not the name itself: /etc/passwd is readable by every tenant,
 * and which other customers share its host is none of a tenant's business (its directory's owner tells the
 * operator whose user it is).
 */
export function tenantUserName(hostDir: string, tenant: string): string {
  return `${TENANT_USER_PREFIX}${createHash('sha256').update(`${resolve(hostDir)}\0${tenant}`).digest('hex').slice(0, HASH_PART)}`;
}

/** The environment a tenant process starts with: TENANT_ENV_PASSED from `hostEnv`, AGENT_ENV's defaults. */
export function tenantEnv(hostEnv: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return withAgentEnv(Object.fromEntries(TENANT_ENV_PASSED.filter((k) => hostEnv[k] !== undefined).map((k) => [k, hostEnv[k]])));
}

export interface TenantIds { user: string; uid: number; gid: number }
export interface PasswdEntry extends TenantIds { comment: string }

/** Every entry of the passwd file (local users: useradd writes there). */
export async function passwdEntries(): Promise<PasswdEntry[]> {
  const text = await readFile(PASSWD, 'utf8');
  return text.split('\n').map((l) => l.split(':')).filter((f) => f.length >= 7)
    .map((f) => ({ user: f[0], uid: Number(f[2]), gid: Number(f[3]), comment: f[4] }));
}

/** Deletes a user (and its group); false if there was none. */
export async function deleteUser(user: string): Promise<boolean> {
  const code = await runTool('userdel', [user]);
  return code !== USERDEL_NO_USER;
}

/** The users of one host's tenants: made when a tenant needs one, deleted with the tenant. */
export class TenantUsers {
  constructor(private readonly hostDir: string) {}

  nameOf(tenant: string): string {
    return tenantUserName(this.hostDir, tenant);
  }

  /** The tenant's user, created if it does not exist (a new tenant, an adopted one, or one whose user went missing). */
  async ensure(tenant: string): Promise<TenantIds & { created: boolean }> {
    const user = this.nameOf(tenant);
    const found = await this.lookup(user);
    if (found) return { ...found, created: false };
    // The comment names the host (not the tenant): for an operator reading /etc/passwd, and for cleaning up after tests.
    const comment = `palisade tenant of ${resolve(this.hostDir)}`.replace(/[^\x20-\x7e]|:/g, '?');
    await runTool('useradd', ['--system', '--user-group', '--no-create-home', '--no-log-init', '--home-dir', '/nonexistent', '--shell', nologin(), '--comment', comment, user]);
    const made = await this.lookup(user);
    if (!made) throw new UnavailableError('ERR_TENANT_USER', `useradd did not create user ${user} for tenant "${tenant}"`);
    return { ...made, created: true };
  }

  /** Deletes the tenant's user; false if it had none. Call once its processes have exited (userdel refuses otherwise). */
  remove(tenant: string): Promise<boolean> {
    return deleteUser(this.nameOf(tenant));
  }

  private async lookup(user: string): Promise<TenantIds | undefined> {
    const e = (await passwdEntries()).find((p) => p.user === user);
    return e && { user: e.user, uid: e.uid, gid: e.gid };
  }
}

/**
 * Makes `dir` the tenant's: 0700, and when it is not already owned by `ids` (new, adopted from another host,
 * or its user was made anew) everything in it too. Symbolic links are re-owned, never followed. Called
 * before the tenant's first start here, and the walk only runs for a directory its user has never owned:
 * no process of the tenant's can swap an entry mid-walk.
 */
export async function ownTenantDir(dir: string, ids: TenantIds): Promise<void> {
  const st = await lstat(dir);
  if (st.uid !== ids.uid || st.gid !== ids.gid) await ownTree(dir, ids);
  await chmod(dir, 0o700);
}

async function ownTree(path: string, ids: TenantIds): Promise<void> {
  const st = await lstat(path);
  await lchown(path, ids.uid, ids.gid);
  if (!st.isDirectory()) return;
  for (const e of await readdir(path)) await ownTree(join(path, e), ids);
}

function nologin(): string {
  return ['/usr/sbin/nologin', '/sbin/nologin'].find((p) => existsSync(p)) ?? '/bin/false';
}

/** Runs useradd/userdel; resolves with the exit code of a run that did its job (0, or "no such user" for userdel). */
function runTool(tool: 'useradd' | 'userdel', args: string[]): Promise<number> {
  return new Promise((res, rej) => {
    execFile(tool, args, { env: { PATH: TOOL_PATH }, timeout: TOOL_TIMEOUT_MS }, (err, _stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      if (code === 0 || (tool === 'userdel' && code === USERDEL_NO_USER)) return res(code);
      const why = String(stderr).trim().split('\n').pop() || err?.message || `exit ${code}`;
      const hint = tool === 'useradd' ? ' (where useradd cannot be used, set "tenantUsers": false in agent.json)' : '';
      rej(new UnavailableError('ERR_TENANT_USER', `${tool} ${args[args.length - 1]} failed: ${why}${hint}`));
    });
  });
}
