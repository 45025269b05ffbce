/**
 * Agent release directories for upgrade tests, built here until `installer create` packs real ones: a
 * fake of the packaging only. A release holds release.json, bin/node (a script that runs the Node.js running
 * the tests), app/palisade-agent.mjs (an entry that runs this repository's `agent` CLI from dist/, so the real
 * agent runs and dials main over real TLS) and app/launcher.mjs (the real launcher, from dist/). A broken
 * release's agent exits at start. Also lays out an install (ROOT/releases, current, committed, state) as
 * the installer will, and packs a release as `agents releases add` takes it.
 */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tar from 'tar';
import { CLI, REPO } from './processes.js';

export type ReleaseBehaviour = 'works' | 'exits-at-start';

/** Writes release `version` into `dir`. */
export async function writeRelease(dir: string, version: string, behaviour: ReleaseBehaviour = 'works'): Promise<void> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  await mkdir(join(dir, 'app'), { recursive: true });
  await writeFile(join(dir, 'release.json'), JSON.stringify({ version, node: process.version }));
  // A real release carries the runtime itself; this one hands over to the tests' (exec keeps the IPC channel).
  await writeFile(join(dir, 'bin', 'node'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} "$@"\n`, {
    mode: 0o755,
  });
  const agent =
    behaviour === 'works'
      ? `process.argv.splice(2, 0, 'agent');\nawait import(${JSON.stringify(pathToFileURL(CLI).href)});\n`
      : `process.stderr.write('release ${version} is broken: its agent exits at start\\n');\nprocess.exit(3);\n`;
  await writeFile(join(dir, 'app', 'palisade-agent.mjs'), agent);
  const launcher = pathToFileURL(join(REPO, 'dist', 'agent', 'upgrade', 'launcher.js')).href;
  await writeFile(
    join(dir, 'app', 'launcher.mjs'),
    `import { launcherMain } from ${JSON.stringify(launcher)};\nlauncherMain();\n`,
  );
}

/** Lays out an install at `root` running release `version` (current and committed point at it). */
export async function layOutInstall(root: string, version: string): Promise<void> {
  await writeRelease(join(root, 'releases', version), version);
  await symlink(join('releases', version), join(root, 'current'));
  await symlink(join('releases', version), join(root, 'committed'));
}

/** Packs a release directory as `agents releases add` takes it (its files at the archive's root). */
export async function packRelease(dir: string, out: string): Promise<string> {
  await tar.c({ gzip: true, cwd: dir, file: out, portable: true }, ['.']);
  return out;
}
