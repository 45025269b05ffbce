/**
 * Packing a tenant's directory for a move (as its user: the host may not read it, as-tenant.ts) and unpacking
 * the snapshot on the host it moves to. The archive comes from another host, which may be
 * compromised, as may the tenant whose directory it packed (the tenant owns that directory and can put
 * anything there): so the whole archive is checked before a byte is written — only regular files and
 * directories (no hard or symbolic links, devices or FIFOs), every path resolving inside the tenant's own
 * directory — and unpacked into a fresh staging directory, which the caller renames into place.
 * Not the transfer or its sealing (tenant-transfer.ts).
 */
import { createWriteStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { finished } from 'node:stream/promises';
import * as tar from 'tar';
import { BadParameterError, errorMessage } from '#common/errors.js';
import { foreignOwner, runChore } from './as-tenant.js';

/**
 * Writes the tenant's directory `dir` as a gzipped tar to `file`, its entries under `name/` and its logs left out,
 * packed as the directory's owner when that is not the host (tenant-chores.ts pack does the same).
 */
export async function packTenant(dir: string, name: string, file: string): Promise<void> {
  const owner = await foreignOwner(dir);
  if (!owner) {
    await tar.c({ gzip: true, cwd: dir, file, portable: true, prefix: name, filter: notLogs }, ['.']);
    return;
  }
  const out = createWriteStream(file, { mode: 0o600 });
  await runChore(dir, owner, 'pack', { arg: name, out });
  await finished(out);
}

/** A tenant's logs stay behind on a move. */
export function notLogs(path: string): boolean {
  return !`/${path}/`.includes('/logs/');
}

/**
 * Everything our own exporter (tar.c of a tenant directory) writes; anything else did not come from a tenant's data.
 */
const ENTRY_TYPES: ReadonlySet<string> = new Set(['File', 'Directory']);

/** Why an entry may not be unpacked for tenant `name` into `root`, or undefined if it may. */
export function entryRefusal(root: string, name: string, path: string, type: string): BadParameterError | undefined {
  const shown = JSON.stringify(path.slice(0, 200));
  if (!ENTRY_TYPES.has(type)) {
    return new BadParameterError(
      'ERR_TRANSFER_ENTRY_TYPE',
      `snapshot of "${name}": entry ${shown} is a ${type}; only regular files and directories are imported`,
    );
  }
  // Resolved, not compared as text: `/etc/x`, `../x` and `acme/../x` all land outside; `..` is refused even where it
  // lands inside.
  const home = resolve(root, name);
  const at = resolve(root, path);
  if ((at !== home && !at.startsWith(home + sep)) || path.split('/').includes('..')) {
    return new BadParameterError(
      'ERR_TRANSFER_ENTRY_PATH',
      `snapshot of "${name}": entry ${shown} is outside the tenant's directory`,
    );
  }
  return undefined;
}

/**
 * Checks every entry of the archive `file`, then unpacks it into `staging` (new and empty, the caller's
 * to remove); returns the tenant's directory inside it. Throws on the first refused entry, before writing.
 */
export async function unpackSnapshot(file: string, staging: string, name: string): Promise<string> {
  let refusal: BadParameterError | undefined;
  try {
    await tar.t({
      file,
      strict: true,
      onReadEntry: (e) => {
        refusal ??= entryRefusal(staging, name, e.path, e.type);
      },
    });
  } catch (e) {
    throw new BadParameterError(
      'ERR_TRANSFER_ARCHIVE',
      `snapshot of "${name}" is not a readable archive: ${errorMessage(e)}`,
    );
  }
  if (refusal) throw refusal;
  // Owners from the archive mean nothing here (the tenant gets its own user on this host): the host's.
  await tar.x({ file, cwd: staging, strict: true, preserveOwner: false });
  const dir = join(staging, name);
  const cfg = await lstat(join(dir, 'tenant.json')).catch(() => undefined);
  if (!cfg?.isFile())
    throw new BadParameterError('ERR_TRANSFER_ARCHIVE', `snapshot of "${name}" holds no ${name}/tenant.json`);
  return dir;
}
