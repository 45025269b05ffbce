/**
 * The tarball `installer create` writes: install.sh, uninstall.sh and release/ (the agent with its own Node,
 * built by scripts/build-agent-release.mjs into dist/agent-kit.tar.gz-head), then main's config bundle
 * (bundle.json with the one-time key, ca.pem). The head is a gzip member holding a tar without its end
 * blocks and main's bundle a complete .tar.gz, so the two written one after the other are one .tar.gz:
 * gzip readers join members. Not here: what install.sh does (installer/scripts/install.sh).
 */
import { appendFile, chmod, copyFile, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UnavailableError } from '#common/errors.js';

/** dist/admin/agent-tarball.js → dist/agent-kit.tar.gz-head. */
const KIT_HEAD = join(dirname(fileURLToPath(import.meta.url)), '..', 'agent-kit.tar.gz-head');

/** Writes the tarball (0600: it holds the one-time key) and returns its size in bytes. */
export async function writeAgentTarball(out: string, configBundle: Buffer, configOnly: boolean): Promise<number> {
  if (configOnly) {
    await writeFile(out, configBundle, { mode: 0o600 });
  } else {
    if (!existsSync(KIT_HEAD))
      throw new UnavailableError(
        'ERR_AGENT_RELEASE_MISSING',
        `no agent release at ${KIT_HEAD}: npm run build makes it on linux-x64; --config-only writes the config alone`,
      );
    await copyFile(KIT_HEAD, out);
    await chmod(out, 0o600); // before the key is in it
    await appendFile(out, configBundle);
  }
  return (await stat(out)).size;
}
