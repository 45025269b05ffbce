/**
 * A tenant's directory as its host writes and reads it: the NaCl key pair and tenant.json (name, port,
 * public key, main's public key, memory limit) written at creation, tenant.json read back at start and
 * rewritten when the port, main's key or whether an admin stopped it changes. The tenant owns its
 * directory (tenant-isolation.ts), so every read here is careful. Not here: the tenant's own data (its
 * LevelDB is the tenant process's alone).
 */
import { constants } from 'node:fs';
import { lchown, open } from 'node:fs/promises';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { writeFileAtomic } from '#common/atomic-file.js';
import { BadParameterError } from '#common/errors.js';
import type { TenantIds } from './tenant-isolation.js';

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
 * Rewrites a tenant's tenant.json as the tenant's own (`ids`): the host's umask (0077 in its unit) would
 * leave it root's alone. Only while the tenant is not running: nothing swaps the file meanwhile.
 */
export async function writeTenantJson(dir: string, cfg: TenantJson, ids?: TenantIds): Promise<void> {
  const path = join(dir, 'tenant.json');
  await writeFileAtomic(path, JSON.stringify(cfg, null, 2));
  if (ids) await lchown(path, ids.uid, ids.gid);
}

/**
 * A tenant's tenant.json, never through a link nor from anything but a plain file: the tenant owns its
 * directory and could otherwise have the host (root) read a file of the host's, or hang on a FIFO.
 */
export async function readTenantJson(dir: string): Promise<TenantJson> {
  const fh = await open(join(dir, 'tenant.json'), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile())
      throw new BadParameterError('ERR_TENANT_CONFIG', `${join(dir, 'tenant.json')} is not a regular file`);
    return JSON.parse(await fh.readFile('utf8')) as TenantJson;
  } finally {
    await fh.close();
  }
}
