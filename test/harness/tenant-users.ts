/**
 * Tests run as root, so every tenant their hosts start runs as its own system user
 * (agent/host/tenant-isolation.ts). Removing a tenant deletes its user; a test that ends with tenants still
 * in place, or kills a host, deletes theirs here. They are found by the comment useradd was given, which
 * names the host's directory: only users of hosts under this test's directory, never another test's.
 */
import { resolve } from 'node:path';
import { TENANT_USER_PREFIX, deleteUser, passwdEntries } from '../../agent/host/tenant-isolation.js';
import { until } from './processes.js';

/** Deletes the tenant users of every host under `dir`; returns their names. */
export async function removeTenantUsers(dir: string): Promise<string[]> {
  const mine = (await passwdEntries()).filter(
    (e) => e.user.startsWith(TENANT_USER_PREFIX) && e.comment.includes(` of ${resolve(dir)}/`),
  );
  // deleteUser kills what still runs as the user (a killed host's tenants); userdel refuses until those are reaped.
  for (const e of mine) await until(`user ${e.user} deleted`, () => deleteUser(e.user).then(() => true), 20_000, 200);
  return mine.map((e) => e.user);
}
