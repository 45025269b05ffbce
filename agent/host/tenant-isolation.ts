/**
 * How a host keeps its tenants apart at the OS level. When the host runs as root, each tenant process runs
 * as its own system user (`palt-…`, made with `useradd --system` when the tenant is created, adopted or found
 * without one, deleted with `userdel` when it is removed: TenantUsers). An installed host runs as the
 * `palisade` user holding USER_ADMIN_CAPS instead, and takes its tenants' users from a pool install.sh made
 * (tenant-user-pool.ts). Either way each tenant owns its directory (0700) and nothing else, and starts with
 * a minimal environment. Without either (or with `tenantUsers: false` in agent.json) tenants share the
 * host's user and are apart only as processes; the host says so once at start.
 *
 * A user goes with everything that runs as it: whatever a tenant started on its own (detached, in its own
 * session) is killed before userdel, which would otherwise refuse and leave the user, and the processes,
 * behind. And a tenant new on a host (created or moved in) never takes over a user of its name that is
 * still there, left by an earlier tenant of that name whose removal could not finish: that user is
 * emptied and deleted, and made anew.
 *
 * It is not a sandbox: no namespaces, seccomp or resource limits. The tenants directory stays the host's
 * (0700): a tenant process starts inside its own directory (the fork chdirs there before it drops to the
 * tenant's user) and cannot walk up from it, so the host's keys and the other tenants are not even visible.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, lchown, lstat, readdir, readFile } from 'node:fs/promises';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { UnavailableError } from '#common/errors.js';
import { AGENT_ENV, withAgentEnv } from '#common/agent-runtime.js';
import { HOST_CAPABILITIES } from '#common/host-capabilities.js';
import { runChore } from './as-tenant.js';
import { SHARED_FILES_NOWHERE } from '../integrations/aws/sdk-environment.js';
import { LOOPBACK_ALLOW_ENV } from '../integrations/target-guard.js';

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
const TENANT_ENV_PASSED: readonly string[] = [
  'PATH',
  'PALISADE_LOG_LEVEL',
  'PALISADE_NATIVE_AEAD',
  ...Object.keys(AGENT_ENV),
];

export type Isolation = { users: true } | { users: false; reason: string };

/**
 * Users per tenant when the host runs as root and the operator did not turn it off; otherwise why not.
 * `closedAt` is where the tenant code is closed to other users (closedToOthers): a tenant user could not
 * even load it, so by default tenants then run as the host's user rather than not at all (a checkout in a
 * 0700 directory such as /root or mktemp's). An operator who set `tenantUsers: true` gets users all the
 * same, and tenants that fail to start with the reason.
 */
export function tenantIsolation(
  uid: number | undefined,
  configured: boolean | undefined,
  closedAt?: string,
  /** It holds USER_ADMIN_CAPS and install.sh made it a pool of tenant users. */
  userAdmin = false,
): Isolation {
  if (configured === false) return { users: false, reason: 'tenantUsers is false in agent.json' };
  if (uid !== 0 && !userAdmin)
    return {
      users: false,
      reason: `the host agent runs neither as root nor with ${USER_ADMIN_CAPS.join(', ')}, a pool of tenant users (install.sh) and setpriv`,
    };
  if (closedAt && configured !== true) {
    return {
      users: false,
      reason: `tenant users could not read the palisade code: ${closedAt} is closed to other users (chmod o+rx, or install palisade where every user may read it)`,
    };
  }
  return { users: true };
}

/** What stands in for root here: see common/host-capabilities.ts. */
export const USER_ADMIN_CAPS: readonly string[] = Object.keys(HOST_CAPABILITIES);

/** Whether a CapEff line's hex mask (from /proc/self/status) holds every one of USER_ADMIN_CAPS. */
export function hasUserAdminCaps(capEffHex: string): boolean {
  const mask = BigInt(`0x${capEffHex.trim() || '0'}`);
  return Object.values(HOST_CAPABILITIES).every((bit) => (mask >> BigInt(bit)) & 1n);
}

/** This process's effective capabilities hold USER_ADMIN_CAPS (false where /proc says nothing: not Linux). */
export function runsWithUserAdminCaps(): boolean {
  const eff = capabilityMask('CapEff');
  return eff !== undefined && hasUserAdminCaps(eff);
}

/** A capability set of this process (hex, as /proc/self/status shows it), or undefined off Linux. */
function capabilityMask(set: 'CapEff' | 'CapAmb'): string | undefined {
  try {
    const line = readFileSync('/proc/self/status', 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${set}:`));
    return line?.slice(set.length + 1);
  } catch {
    return undefined;
  }
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/**
 * What a process the host starts as a tenant's user must run through so it holds no capability. A host as
 * root needs nothing: its setuid to the tenant drops them all. An installed host holds USER_ADMIN_CAPS as
 * ambient capabilities (its unit's AmbientCapabilities=), and a setuid from one ordinary user to another
 * keeps those, as does the exec after it: the tenant would hold CAP_SETUID — any user, root's files. So its
 * children start as `setpriv --inh-caps=-all --ambient-caps=-all NODE …`, which empties both sets before it
 * runs Node (Node has no prctl). Undefined: nothing to drop; null: there are some, and no setpriv to drop them.
 */
export function capabilityDrop(): readonly string[] | undefined | null {
  const amb = capabilityMask('CapAmb');
  if (amb === undefined || BigInt(`0x${amb.trim() || '0'}`) === 0n) return undefined;
  return SETPRIV ? [SETPRIV, '--inh-caps=-all', '--ambient-caps=-all', '--'] : null;
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
 * operator whose user it is). Not the tenant's public key either, though that would tell a later tenant of
 * the same name apart: the host must find the user from the name alone, as a remove re-sent after a
 * failed userdel comes when the directory (with tenant.json) is gone. A later tenant of that name gets the
 * same name but never the same user (TenantUsers.ensure with `arriving`).
 */
export function tenantUserName(hostDir: string, tenant: string): string {
  return `${TENANT_USER_PREFIX}${createHash('sha256')
    .update(`${resolve(hostDir)}\0${tenant}`)
    .digest('hex')
    .slice(0, HASH_PART)}`;
}

/**
 * The environment a tenant process starts with: TENANT_ENV_PASSED from `hostEnv`, AGENT_ENV's defaults, the AWS
 * SDK's shared files pointed nowhere (no AWS_* variable passes either: sdk-environment.ts says why) and the host's
 * exceptions to the integrations' own-address refusal (`loopbackAllow`, agent.json's integrationLoopbackAllow).
 */
export function tenantEnv(
  hostEnv: NodeJS.ProcessEnv = process.env,
  loopbackAllow: readonly string[] = [],
): NodeJS.ProcessEnv {
  return withAgentEnv({
    ...Object.fromEntries(TENANT_ENV_PASSED.filter((k) => hostEnv[k] !== undefined).map((k) => [k, hostEnv[k]])),
    ...SHARED_FILES_NOWHERE,
    ...(loopbackAllow.length ? { [LOOPBACK_ALLOW_ENV]: loopbackAllow.join(',') } : {}),
  });
}

export interface TenantIds {
  user: string;
  uid: number;
  gid: number;
}
export interface PasswdEntry extends TenantIds {
  comment: string;
}

/** Every entry of the passwd file (local users: useradd writes there). */
export async function passwdEntries(): Promise<PasswdEntry[]> {
  const text = await readFile(PASSWD, 'utf8');
  return text
    .split('\n')
    .map((l) => l.split(':'))
    .filter((f) => f.length >= 7)
    .map((f) => ({ user: f[0], uid: Number(f[2]), gid: Number(f[3]), comment: f[4] }));
}

async function lookupUser(user: string): Promise<TenantIds | undefined> {
  const e = (await passwdEntries()).find((p) => p.user === user);
  return e && { user: e.user, uid: e.uid, gid: e.gid };
}

/** Ends every process of the user, then deletes it (and its group); false if there was none. */
export async function deleteUser(user: string): Promise<boolean> {
  const ids = await lookupUser(user);
  if (ids) await endProcessesOf(ids);
  const code = await runTool('userdel', [user]);
  return code !== USERDEL_NO_USER;
}

/**
 * Kills every process of a user, however it was started, and waits until none is left (zombies included:
 * userdel counts them too) or a deadline passed. The kill runs as the user itself (tenant-chores.ts
 * end-processes), so a pid reused meanwhile by someone else's process is never hit, and it sees the user's
 * processes where the host cannot (ProtectProc=invisible). Returns the pids that were running when it began.
 */
export async function endProcessesOf(ids: TenantIds): Promise<number[]> {
  return JSON.parse((await runChore('/', ids, 'end-processes')).toString('utf8')) as number[];
}

/**
 * The passwd comment of a host's tenant users. It names the host (not the tenant): for an operator reading
 * /etc/passwd, for removeTenantUsers, and for cleaning up after tests.
 */
function userComment(hostDir: string): string {
  return `palisade tenant of ${resolve(hostDir)}`.replace(/[^\x20-\x7e]|:/g, '?');
}

/**
 * Deletes every tenant user of the host in `hostDir`, with their processes (the host's uninstall: its
 * tenants' directories may be gone already, so users are found by their comment, not by tenant name).
 */
export async function removeTenantUsers(hostDir: string): Promise<string[]> {
  const comment = userComment(hostDir);
  const users = (await passwdEntries()).filter((e) => e.user.startsWith(TENANT_USER_PREFIX) && e.comment === comment);
  for (const u of users) await deleteUser(u.user);
  return users.map((u) => u.user);
}

/** Where a host's tenants' users come from: made per tenant (TenantUsers, as root) or a pool (tenant-user-pool.ts). */
export interface TenantAccounts {
  /** The tenant's user; `created`: new to it (made or handed out); `replaced`: an earlier tenant's was deleted. */
  ensure(tenant: string, arriving: boolean): Promise<TenantIds & { created: boolean; replaced: boolean }>;
  /** Kills whatever still runs as the tenant's user (its own process stopped first); the pids it found. */
  endProcesses(tenant: string): Promise<number[]>;
  /** Once the tenant's directory is gone: its user deleted or freed; what the removal report says of it. */
  remove(tenant: string): Promise<string | undefined>;
}

/** The users of one host's tenants: made when a tenant needs one, deleted with the tenant. */
export class TenantUsers implements TenantAccounts {
  constructor(private readonly hostDir: string) {}

  nameOf(tenant: string): string {
    return tenantUserName(this.hostDir, tenant);
  }

  /**
   * The tenant's user, created if it does not exist (a new tenant, an adopted one, or one whose user went
   * missing). `arriving`: the tenant is new on this host (created or moved in), so a user of its name is
   * not its own but left by an earlier tenant of that name: it is deleted with its processes
   * (`replaced`) and made anew, as nothing of that tenant may see this one's files.
   */
  async ensure(tenant: string, arriving: boolean): Promise<TenantIds & { created: boolean; replaced: boolean }> {
    const user = this.nameOf(tenant);
    const found = await lookupUser(user);
    if (found && !arriving) return { ...found, created: false, replaced: false };
    if (found) await deleteUser(user);
    const comment = userComment(this.hostDir);
    await runTool('useradd', [
      '--system',
      '--user-group',
      '--no-create-home',
      '--no-log-init',
      '--home-dir',
      '/nonexistent',
      '--shell',
      nologin(),
      '--comment',
      comment,
      user,
    ]);
    const made = await lookupUser(user);
    if (!made)
      throw new UnavailableError('ERR_TENANT_USER', `useradd did not create user ${user} for tenant "${tenant}"`);
    return { ...made, created: true, replaced: !!found };
  }

  /** Kills whatever still runs as the tenant's user (the tenant's own process stopped first); the pids it found. */
  async endProcesses(tenant: string): Promise<number[]> {
    const ids = await lookupUser(this.nameOf(tenant));
    return ids ? endProcessesOf(ids) : [];
  }

  /** Deletes the tenant's user, and first whatever still runs as it; undefined if it had none. */
  async remove(tenant: string): Promise<string | undefined> {
    const user = this.nameOf(tenant);
    return (await deleteUser(user)) ? `system user ${user}` : undefined;
  }
}

/**
 * Makes `dir` the tenant's: when it is not already owned by `ids` (new, or adopted from another host) it is
 * closed to others and everything in it given to the tenant, deepest first (the host can walk it only while
 * it is still the host's; without CAP_FOWNER it can no longer chmod it after). Symbolic links are re-owned,
 * never followed. Called before the tenant's first start here, and the walk only runs for a directory its
 * user has never owned: no process of the tenant's can swap an entry mid-walk.
 *
 * 0700, the tenant's own group, for a host as root. A host that is not root keeps the directory's group and
 * g+x (0710): a process starts in its directory before it becomes the tenant's user (libuv chdirs first), and
 * the host must pass through to start it there; it can neither list the directory nor open the tenant's
 * files (0600, the tenant's group). Other tenants are not in the host's group.
 */
export async function ownTenantDir(dir: string, ids: TenantIds): Promise<void> {
  const st = await lstat(dir);
  if (st.uid === ids.uid) return;
  const asRoot = process.getuid?.() === 0;
  await chmod(dir, asRoot ? 0o700 : 0o710);
  await ownTree(dir, ids);
  if (!asRoot) await lchown(dir, ids.uid, st.gid);
}

async function ownTree(path: string, ids: TenantIds): Promise<void> {
  const st = await lstat(path);
  if (st.isDirectory()) for (const e of await readdir(path)) await ownTree(join(path, e), ids);
  await lchown(path, ids.uid, ids.gid);
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
