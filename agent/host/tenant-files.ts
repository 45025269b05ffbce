/**
 * A tenant's directory as its host writes and reads it: the NaCl key pair and tenant.json (name, port,
 * public key, main's public key, memory limit) written at creation, tenant.json read back at start and
 * rewritten when the port, main's key or whether an admin stopped it changes, and the directory removed with
 * the tenant. Once the tenant owns its directory (tenant-isolation.ts) all of that runs as the tenant's user
 * (as-tenant.ts), and every read is careful. Not here: the tenant's own data (its LevelDB is the tenant
 * process's alone).
 */
import { constants } from 'node:fs';
import { open, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { writeFileAtomic } from '#common/atomic-file.js';
import { BadParameterError } from '#common/errors.js';
import { foreignOwner, runChore } from './as-tenant.js';

/**
 * What the host reads of a tenant's tenant.json. `memoryMb` is the tenant's heap limit (absent in a tenant
 * made before it existed: Node's own limit then); `stopped` keeps a tenant an admin stopped down across host
 * restarts. The tenant can write this file (it owns its directory), so neither is a boundary against the
 * tenant itself: they guard its neighbours from a leak or a stop from being undone, not from a hostile tenant.
 */
export interface TenantJson {
  port: number;
  publicKey: string;
  mainPublicKey: string;
  memoryMb?: number;
  stopped?: boolean;
}

/** A new tenant's key pair and tenant.json in `dir` (made by the caller); returns its public key (base64). */
export async function writeNewTenant(
  dir: string,
  t: { name: string; port: number; mainPublicKey: string; memoryMb: number },
): Promise<string> {
  const kp = nacl.box.keyPair();
  const publicKey = Buffer.from(kp.publicKey).toString('base64');
  await writeFileAtomic(
    join(dir, 'tenant-key.json'),
    JSON.stringify({ alg: 'nacl-box', publicKey, secretKey: Buffer.from(kp.secretKey).toString('base64') }),
    0o600,
  );
  await writeFileAtomic(
    join(dir, 'tenant.json'),
    JSON.stringify({ ...t, publicKey, createdAt: new Date().toISOString() }, null, 2),
  );
  return publicKey;
}

/**
 * Rewrites a tenant's tenant.json, as the directory's owner (the tenant's user: the file stays the tenant's
 * own). Only while the tenant is not running: nothing swaps the file meanwhile.
 */
export async function writeTenantJson(dir: string, cfg: TenantJson): Promise<void> {
  const owner = await foreignOwner(dir);
  const text = JSON.stringify(cfg, null, 2);
  if (owner) await runChore(dir, owner, 'write-config', { input: text });
  else await writeFileAtomic(join(dir, 'tenant.json'), text);
}

/**
 * A tenant's tenant.json, never through a link nor from anything but a plain file: the tenant owns its
 * directory and could otherwise have the host read a file of the host's, or hang on a FIFO. Read as the
 * directory's owner when that is not the host.
 */
export async function readTenantJson(dir: string): Promise<TenantJson> {
  const owner = await foreignOwner(dir);
  if (owner) {
    const text = (await runChore(dir, owner, 'read-config')).toString('utf8');
    try {
      return JSON.parse(text) as TenantJson;
    } catch {
      throw new BadParameterError('ERR_TENANT_CONFIG', `${join(dir, 'tenant.json')} is not JSON`);
    }
  }
  const fh = await open(join(dir, 'tenant.json'), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile())
      throw new BadParameterError('ERR_TENANT_CONFIG', `${join(dir, 'tenant.json')} is not a regular file`);
    return JSON.parse(await fh.readFile('utf8')) as TenantJson;
  } finally {
    await fh.close();
  }
}

/**
 * Deletes a tenant's directory with everything in it: emptied as its owner (who also loses its files in the
 * shared temporary directories), then the empty directory by the host, whose the tenants directory is.
 * A directory already gone is no error.
 */
export async function removeTenantDir(dir: string): Promise<void> {
  const owner = await foreignOwner(dir).catch(() => undefined);
  if (!owner) return rm(dir, { recursive: true, force: true });
  await runChore(dir, owner, 'clear');
  await rmdir(dir);
}
