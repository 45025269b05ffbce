/**
 * The installer bundle format: a .tar.gz holding `bundle.json` (manifest with the one-time enrolment
 * key) and `ca.pem` (main's CA, pinned by the agent). Written by main, read by `palisade agent install`.
 * It carries configuration and trust; `installer create` puts it in a tarball with the agent release and
 * install.sh (admin/agent-tarball.ts), which is read the same way (its other files skipped), and install.sh
 * passes its extracted directory instead.
 */
import { mkdtemp, readFile, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tar from 'tar';
import { BadParameterError } from './errors.js';

export const BUNDLE_FORMAT = 1;
/** The config alone is a few kB; the tarball installer create writes carries Node too (~47 MB measured). */
const MAX_BUNDLE_BYTES = 512 * 1024 * 1024;

export interface BundleManifest {
  format: number;
  kind: 'host' | 'engine';
  name: string;
  mainUrl: string;
  enrolKey: string;
  expiresAt: string;
  tenant?: string;
  tenantPublicKey?: string;
  group?: string;
}

export interface Bundle {
  manifest: BundleManifest;
  caPem: string;
}

export async function writeBundle(bundle: Bundle): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-bundle-'));
  try {
    await writeFile(join(dir, 'bundle.json'), JSON.stringify(bundle.manifest, null, 2), { mode: 0o600 });
    await writeFile(join(dir, 'ca.pem'), bundle.caPem);
    const out = join(dir, 'out.tar.gz');
    await tar.c({ gzip: true, cwd: dir, file: out, portable: true }, ['bundle.json', 'ca.pem']);
    return await readFile(out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `path`: a .tar.gz as above, or a directory holding bundle.json and ca.pem (an extracted tarball). */
export async function readBundle(path: string): Promise<Bundle> {
  const st = await stat(path).catch(() => {
    throw new BadParameterError('ERR_BUNDLE_NOT_FOUND', `bundle ${path} does not exist`, { field: 'bundle' });
  });
  if (st.isDirectory()) return parseBundle(path, path);
  if (st.size > MAX_BUNDLE_BYTES)
    throw new BadParameterError('ERR_BUNDLE_INVALID', `bundle ${path} is too large to be a Palisade bundle`, {
      field: 'bundle',
    });
  const dir = await mkdtemp(join(tmpdir(), 'palisade-unbundle-'));
  try {
    await tar
      .x({ file: path, cwd: dir, filter: (p) => p === 'bundle.json' || p === 'ca.pem', strict: true })
      .catch((e: unknown) => {
        throw new BadParameterError('ERR_BUNDLE_INVALID', `bundle ${path} is not a valid .tar.gz`, {
          cause: e,
          field: 'bundle',
        });
      });
    return await parseBundle(path, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The manifest and CA of the bundle `path`, whose files are in `dir`. */
async function parseBundle(path: string, dir: string): Promise<Bundle> {
  const manifestText = await readFile(join(dir, 'bundle.json'), 'utf8').catch(() => {
    throw new BadParameterError('ERR_BUNDLE_INVALID', `bundle ${path} has no bundle.json`, { field: 'bundle' });
  });
  const caPem = await readFile(join(dir, 'ca.pem'), 'utf8').catch(() => {
    throw new BadParameterError('ERR_BUNDLE_INVALID', `bundle ${path} has no ca.pem`, { field: 'bundle' });
  });
  let manifest: BundleManifest;
  try {
    manifest = JSON.parse(manifestText) as BundleManifest;
  } catch (e) {
    throw new BadParameterError('ERR_BUNDLE_INVALID', `bundle ${path}: bundle.json is not JSON`, {
      cause: e,
      field: 'bundle',
    });
  }
  if (
    manifest.format !== BUNDLE_FORMAT ||
    (manifest.kind !== 'host' && manifest.kind !== 'engine') ||
    typeof manifest.name !== 'string' ||
    typeof manifest.mainUrl !== 'string' ||
    typeof manifest.enrolKey !== 'string'
  ) {
    throw new BadParameterError(
      'ERR_BUNDLE_INVALID',
      `bundle ${path}: manifest is missing fields or of an unknown format`,
      { field: 'bundle' },
    );
  }
  return { manifest, caPem };
}
