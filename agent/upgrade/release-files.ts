/**
 * The files of an installed agent that upgrades touch, in one place, shared by the agent (which starts an
 * upgrade) and the launcher (which commits it or rolls it back):
 *
 *   ROOT/releases/<version>/     one release (release.json, bin/node, app/palisade-agent.mjs, app/launcher.mjs)
 *   ROOT/current   -> releases/V the release the launcher starts the agent from
 *   ROOT/committed -> releases/G the last known-good release; the unit runs the launcher from it
 *   ROOT/state/                  the agent's --dir; upgrade.json (an upgrade in flight) and upgrade-result.json
 *
 * A link is swapped by making a link under a temporary name and renaming it over the old one: rename is
 * atomic, so a crash leaves the old target or the new one, never no link. Not the decisions (launcher.ts,
 * release-install.ts).
 */
import { randomBytes } from 'node:crypto';
import { readFile, readlink, rename, rm, symlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { writeFileAtomic } from '#common/atomic-file.js';
import { isReleaseVersion } from '#common/agent-release.js';

/** The environment the launcher gives the agent it starts: where its install is, and which release it runs. */
export const LAUNCH_ENV = { root: 'PALISADE_INSTALL_ROOT', version: 'PALISADE_RELEASE_VERSION' } as const;

/**
 * The agent's exit code for "restart me from `current`" (EX_TEMPFAIL): it swapped `current` and wants the
 * launcher to start the new release. Any other exit without an upgrade in flight ends the launcher too.
 */
export const RESTART_EXIT_CODE = 75;

export function installPaths(root: string) {
  const state = join(root, 'state');
  return {
    root,
    releases: join(root, 'releases'),
    current: join(root, 'current'),
    committed: join(root, 'committed'),
    state,
    pending: join(state, 'upgrade.json'),
    result: join(state, 'upgrade-result.json'),
  };
}
export type InstallPaths = ReturnType<typeof installPaths>;

/** An upgrade in flight (state/upgrade.json): written before `current` moves, removed when it is decided. */
export interface PendingUpgrade {
  attempt: string;
  from: string;
  to: string;
  /** Unix ms: the new version must be connected and accepted by then. */
  deadline: number;
}

/** How the last upgrade ended (state/upgrade-result.json), reported to main in every Hello. */
export interface UpgradeResult {
  attempt: string;
  version: string;
  ok: boolean;
  /** Why it was rolled back. */
  failed?: string;
  at: number;
}

/** The release version a link points at (releases/<version>), or undefined if there is no such link. */
export async function linkedVersion(link: string): Promise<string | undefined> {
  const target = await readlink(link).catch(() => undefined);
  if (target === undefined) return undefined;
  const v = basename(target);
  return isReleaseVersion(v) ? v : undefined;
}

/** Points `link` at releases/<version>, atomically (relative, so the install can move as a whole). */
export async function pointAt(link: string, version: string): Promise<void> {
  const tmp = `${link}.${randomBytes(4).toString('hex')}.tmp`;
  await symlink(join('releases', version), tmp);
  try {
    await rename(tmp, link);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined; // absent, or torn by a crash before writeFileAtomic existed: as if none
  }
}

export const readPending = (p: InstallPaths) => readJson<PendingUpgrade>(p.pending);
export const readResult = (p: InstallPaths) => readJson<UpgradeResult>(p.result);
export const writePending = (p: InstallPaths, u: PendingUpgrade) => writeFileAtomic(p.pending, JSON.stringify(u));
export const writeResult = (p: InstallPaths, r: UpgradeResult) => writeFileAtomic(p.result, JSON.stringify(r));
export const clearPending = (p: InstallPaths) => rm(p.pending, { force: true });
