/**
 * Tenant users for a host that is not root: a pool of system users install.sh (as root) made for this host and
 * listed in its directory (TENANT_POOL_FILE), so the running host never writes /etc — no useradd or userdel
 * at run time, and no CAP_DAC_OVERRIDE or CAP_FOWNER in its unit to let it. A tenant's user is whichever pool
 * user owns its directory: a new tenant (or one moved in) takes a free one (emptied first of any process left
 * running), a removed tenant's is emptied — processes killed, directory and its files in the shared
 * temporary directories deleted (the supervisor and as-tenant.ts) — and is free again once the directory is
 * gone. uninstall.sh deletes the pool with the host (its users carry the host's comment: tenant-isolation.ts
 * removeTenantUsers). Each tenant still has its own user and 0700 directory: only who made the user changed.
 * Not here: a host as root, which makes a user per tenant with useradd (tenant-isolation.ts TenantUsers).
 */
import { readFileSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { UnavailableError } from '#common/errors.js';
import { endProcessesOf, passwdEntries, type TenantAccounts, type TenantIds } from './tenant-isolation.js';

/** In the host's directory (state/): `{"users": [names]}`, written by install.sh --tenant-users N. */
export const TENANT_POOL_FILE = 'tenant-users.json';

/** The pool's user names, or undefined when install.sh made none for this host (no file). Read once, at start. */
export function readTenantPool(hostDir: string): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(join(hostDir, TENANT_POOL_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const users = (JSON.parse(text) as { users?: unknown }).users;
  return Array.isArray(users) ? users.filter((u): u is string => typeof u === 'string') : [];
}

export class TenantUserPool implements TenantAccounts {
  /** One hand-out at a time: two tenants created at once must not both find the same user free. */
  private handing: Promise<unknown> = Promise.resolve();
  /** Users handed to a tenant whose directory may not be theirs yet (between ensure and ownTenantDir). */
  private readonly taken = new Map<string, TenantIds>();

  constructor(
    private readonly tenantsRoot: string,
    private readonly users: readonly string[],
  ) {}

  /** The pool's users that exist in /etc/passwd (one uninstall.sh or an admin deleted is not handed out). */
  private async members(): Promise<TenantIds[]> {
    const names = new Set(this.users);
    return (await passwdEntries()).filter((e) => names.has(e.user)).map(({ user, uid, gid }) => ({ user, uid, gid }));
  }

  /** The pool user that owns this tenant's directory, if any. */
  private async ownerOf(tenant: string, members: TenantIds[]): Promise<TenantIds | undefined> {
    const st = await lstat(join(this.tenantsRoot, tenant)).catch(() => undefined);
    return st && members.find((m) => m.uid === st.uid);
  }

  /**
   * The tenant's user: the pool user owning its directory, or (a new tenant, one moved in, or one whose
   * directory is still the host's) a free one, emptied of whatever still ran as it.
   */
  ensure(tenant: string): Promise<TenantIds & { created: boolean; replaced: boolean }> {
    const next = this.handing.then(
      () => this.handOut(tenant),
      () => this.handOut(tenant),
    );
    this.handing = next.catch(() => undefined);
    return next;
  }

  private async handOut(tenant: string): Promise<TenantIds & { created: boolean; replaced: boolean }> {
    const members = await this.members();
    const own = this.taken.get(tenant) ?? (await this.ownerOf(tenant, members));
    if (own) {
      this.taken.set(tenant, own);
      return { ...own, created: false, replaced: false };
    }
    const busy = new Set([...this.taken.values()].map((t) => t.uid));
    for (const e of await readdir(this.tenantsRoot)) {
      const st = await lstat(join(this.tenantsRoot, e)).catch(() => undefined);
      if (st) busy.add(st.uid);
    }
    const free = members.find((m) => !busy.has(m.uid));
    if (!free)
      throw new UnavailableError(
        'ERR_TENANT_POOL_EMPTY',
        `no free tenant user for "${tenant}": all ${members.length} of this host's are taken (reinstall with a larger --tenant-users)`,
      );
    this.taken.set(tenant, free);
    await endProcessesOf(free);
    return { ...free, created: true, replaced: false };
  }

  /** Kills whatever still runs as the tenant's user; the pids it found. */
  async endProcesses(tenant: string): Promise<number[]> {
    const ids = this.taken.get(tenant) ?? (await this.ownerOf(tenant, await this.members()));
    return ids ? endProcessesOf(ids) : [];
  }

  /** After its directory is gone: the tenant's user is free again. Says so for the removal's report. */
  remove(tenant: string): Promise<string | undefined> {
    const ids = this.taken.get(tenant);
    this.taken.delete(tenant);
    return Promise.resolve(ids && `system user ${ids.user} (returned to the pool)`);
  }
}
