/**
 * Where the agent's own files are, in the two shapes it runs in: the build tree (dist/ from `npm run build`,
 * the repository's node_modules beside it) and a release (one esbuild output directory, app/, with the native
 * addons in app/native/; scripts/build-agent-release.mjs). The release build defines PALISADE_RELEASE_APP;
 * the build tree never does. Not here: where an agent keeps its state (common/agent-dir.ts).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Set to true by esbuild (`define`) in a release; undeclared, so `typeof` is the only safe test, in dist/. */
declare const PALISADE_RELEASE_APP: boolean | undefined;

/** In a release every module is bundled into app/, so import.meta.url names a file there. */
const here = dirname(fileURLToPath(import.meta.url));

export const IN_RELEASE = typeof PALISADE_RELEASE_APP !== 'undefined' && PALISADE_RELEASE_APP;

/** The tenant process's entry point: a tenant's user must be able to read it and every module beside it. */
export const TENANT_MAIN = IN_RELEASE ? join(here, 'tenant-main.mjs') : join(here, 'tenant', 'tenant-main.js');

/** The host's chores in a tenant's directory, run as the tenant's user (agent/host/as-tenant.ts). */
export const TENANT_CHORES = IN_RELEASE ? join(here, 'tenant-chores.mjs') : join(here, 'host', 'tenant-chores.js');

/**
 * The in-place AES-256-GCM addon (agent/tunnel/native): node-gyp's output beside its C source in the build
 * tree (dist/agent → agent/tunnel/native/build/Release), copied into app/native/ in a release.
 */
export const AEAD_ADDON = IN_RELEASE
  ? join(here, 'native', 'aead.node')
  : join(here, '..', '..', 'agent', 'tunnel', 'native', 'build', 'Release', 'aead.node');
