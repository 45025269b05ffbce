/**
 * Brings a new release onto an installed agent, up to the point of restarting: fetch the archive from main
 * (HTTPS with the agent's own certificate), check its size, SHA-256 and main's signature
 * (common/agent-release.ts), unpack it into releases/<V>.partial and rename that to releases/<V>, record the
 * upgrade (state/upgrade.json) and only then swap `current`. Every check comes before anything under
 * releases/ changes: a refused archive leaves the install as it was. Not the restart or the rollback
 * (launcher.ts).
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import * as tar from 'tar';
import { releaseEntryRefusal, verifyRelease, type UpgradeArgs } from '#common/agent-release.js';
import { BadParameterError, ConnectionError, errorMessage } from '#common/errors.js';
import { tlsProfile } from '#common/tls-profile.js';
import { pointAt, writePending, type InstallPaths } from './release-files.js';

/** Where main serves a release to its agents (main/http/routes-releases.ts). */
export const RELEASE_DOWNLOAD_PATH = '/agent/v1/releases/';
/** An agent that cannot fetch its release in this long gives up (the upgrade fails; nothing changed). */
const DOWNLOAD_TIMEOUT_MS = 300_000;

export interface AgentTls {
  ca: string;
  cert: string;
  key: string;
}

/** Streams the release from main into `dest`, hashing as it goes; stops at `maxBytes` + 1. */
export async function fetchRelease(
  mainUrl: string,
  tls: AgentTls,
  version: string,
  dest: string,
  maxBytes: number,
): Promise<{ sha256: string; size: number }> {
  const url = new URL(RELEASE_DOWNLOAD_PATH + encodeURIComponent(version), mainUrl);
  const fail = (why: string, cause?: unknown) =>
    new ConnectionError('ERR_RELEASE_DOWNLOAD', `release ${version} from ${url.origin}: ${why}`, { cause });
  const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    const req = request(url, { ...tls, ...tlsProfile(), timeout: DOWNLOAD_TIMEOUT_MS }, resolve);
    req.on('timeout', () => req.destroy(fail('timed out')));
    req.on('error', (e) => reject(e instanceof ConnectionError ? e : fail(errorMessage(e), e)));
    req.end();
  });
  if (res.statusCode !== 200) {
    res.resume();
    throw fail(`main answered ${res.statusCode}`);
  }
  const hash = createHash('sha256');
  let size = 0;
  const count = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (size > maxBytes) return done(fail(`more than the ${maxBytes} bytes main signed`));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  try {
    await pipeline(res, count, createWriteStream(dest, { mode: 0o600 }));
  } catch (e) {
    throw e instanceof ConnectionError ? e : fail(errorMessage(e), e);
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * The agent runs with UMask=0077, so what it unpacks is its own alone; but a host forks its tenants, as their own
 * users, from the release: directories 0755, files 0644, or 0755 where the owner may execute (bin/node).
 */
async function readableByAll(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await readableByAll(p);
    else if (e.isFile()) await chmod(p, (await stat(p)).mode & 0o100 ? 0o755 : 0o644);
  }
}

/** Unpacks a checked archive into releases/<V>.partial, checks its release.json, renames it to releases/<V>. */
export async function unpackRelease(paths: InstallPaths, version: string, archive: string): Promise<string> {
  const invalid = (why: string) => new BadParameterError('ERR_RELEASE_INVALID', `release ${version}: ${why}`);
  let refusal: string | undefined;
  await tar.t({
    file: archive,
    strict: true,
    onReadEntry: (e) => void (refusal ??= releaseEntryRefusal(e.path, e.type, e.linkpath)),
  });
  if (refusal) throw invalid(refusal);
  const dir = join(paths.releases, version);
  const partial = `${dir}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  try {
    await tar.x({ file: archive, cwd: partial, strict: true, preserveOwner: false });
    await readableByAll(partial);
    const meta = JSON.parse(await readFile(join(partial, 'release.json'), 'utf8').catch(() => '{}')) as {
      version?: unknown;
    };
    if (meta.version !== version) throw invalid(`its release.json names version ${String(meta.version)}`);
  } catch (e) {
    await rm(partial, { recursive: true, force: true });
    throw e;
  }
  // A directory of this version left by an earlier attempt that rolled back: replaced by the checked one.
  await rm(dir, { recursive: true, force: true });
  await rename(partial, dir);
  return dir;
}

/** Archives and .partial directories left by an attempt that was cut short (killed mid-download or unpack). */
export async function removeLeftovers(paths: InstallPaths): Promise<void> {
  for (const name of await readdir(paths.releases).catch(() => [] as string[])) {
    if ((name.startsWith('.') && name.endsWith('.tar.gz')) || name.endsWith('.partial'))
      await rm(join(paths.releases, name), { recursive: true, force: true });
  }
}

/**
 * The whole swap: fetch, check, unpack, record the upgrade, point `current` at the new release. The
 * caller exits afterwards so that the launcher starts it. `from` is the version running now.
 */
export async function installUpgrade(o: {
  paths: InstallPaths;
  args: UpgradeArgs;
  from: string;
  mainUrl: string;
  tls: AgentTls;
  signingPublicKey: string;
}): Promise<void> {
  const { paths, args } = o;
  await mkdir(paths.releases, { recursive: true });
  await removeLeftovers(paths);
  const archive = join(paths.releases, `.${args.version}.${args.attempt}.tar.gz`);
  try {
    const fetched = await fetchRelease(o.mainUrl, o.tls, args.version, archive, args.size);
    verifyRelease(args, fetched, o.signingPublicKey);
    await unpackRelease(paths, args.version, archive);
  } finally {
    await rm(archive, { force: true });
  }
  await writePending(paths, {
    attempt: args.attempt,
    from: o.from,
    to: args.version,
    deadline: Date.now() + args.deadlineMs,
  });
  await pointAt(paths.current, args.version);
}
