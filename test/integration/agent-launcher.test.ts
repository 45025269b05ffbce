/**
 * The launcher (agent/upgrade/launcher.ts) deciding an upgrade, with real child processes and links in a
 * temp dir. Each release's "agent" is a small script that notes it started and stays up until SIGTERM; one
 * tells the launcher main accepted it, as a real agent does on Welcome. Shown: an upgrade whose agent never
 * connects is rolled back at its deadline and the good release runs again; an accepted one is committed; a
 * swap cut short (current moved, no upgrade recorded) is undone before anything runs.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '#common/logging.js';
import { Launcher } from '../../agent/upgrade/launcher.js';
import {
  installPaths,
  linkedVersion,
  pointAt,
  readPending,
  readResult,
  writePending,
} from '../../agent/upgrade/release-files.js';
import { until } from '../harness/processes.js';

let dir = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-launcher-test-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const realLauncher = pathToFileURL(join(import.meta.dirname, '..', '..', 'agent', 'upgrade', 'launcher.js')).href;

/**
 * A release whose agent notes `version` in state/started, says "accepted" if told to, and runs until SIGTERM;
 * its app/launcher.mjs is the real launcher, or one that fails to load. Without `handlesTerm` SIGTERM kills it, as it
 * does a real agent stopped before its handler is in place.
 */
async function release(
  root: string,
  version: string,
  accepts: boolean,
  launcherLoads = true,
  handlesTerm = true,
): Promise<void> {
  const r = join(root, 'releases', version);
  await mkdir(join(r, 'bin'), { recursive: true });
  await mkdir(join(r, 'app'), { recursive: true });
  await writeFile(join(r, 'release.json'), JSON.stringify({ version }));
  await writeFile(join(r, 'bin', 'node'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} "$@"\n`, {
    mode: 0o755,
  });
  await writeFile(
    join(r, 'app', 'launcher.mjs'),
    launcherLoads
      ? `import { launcherMain } from ${JSON.stringify(realLauncher)};\nlauncherMain();\n`
      : "import './chunk-that-is-missing.mjs';\n",
  );
  await writeFile(
    join(r, 'app', 'palisade-agent.mjs'),
    [
      "import { appendFileSync } from 'node:fs';",
      "const state = process.argv[process.argv.indexOf('--dir') + 1];",
      "appendFileSync(state + '/started', process.env.PALISADE_RELEASE_VERSION + '\\n');",
      accepts ? "process.send({ type: 'palisade.accepted', version: process.env.PALISADE_RELEASE_VERSION });" : '',
      handlesTerm ? "process.on('SIGTERM', () => process.exit(0));" : '',
      'setInterval(() => {}, 1000);',
    ].join('\n'),
  );
}

/** An install with good release G committed and running, and `next` beside it. */
async function install(name: string, next: string, accepts: boolean, launcherLoads = true, goodHandlesTerm = true) {
  const paths = installPaths(join(dir, name));
  await mkdir(paths.state, { recursive: true });
  await release(paths.root, 'G', true, true, goodHandlesTerm);
  await release(paths.root, next, accepts, launcherLoads);
  await pointAt(paths.committed, 'G');
  return paths;
}

const started = async (p: ReturnType<typeof installPaths>) =>
  (await readFile(join(p.state, 'started'), 'utf8').catch(() => '')).split('\n').filter(Boolean);

describe('launcher', () => {
  it('rolls back an upgrade whose agent is not accepted by its deadline, then runs the good release', async () => {
    const paths = await install('never-connects', 'N', false);
    await writePending(paths, { attempt: 'aa11', from: 'G', to: 'N', deadline: Date.now() + 1_500 });
    await pointAt(paths.current, 'N');
    const launcher = new Launcher(paths, silentLogger());
    const ran = launcher.run();
    const result = await until('a rollback recorded', () => readResult(paths), 20_000);
    expect(result).toMatchObject({ attempt: 'aa11', version: 'N', ok: false });
    expect(result.failed).toMatch(/not connected and accepted by main within the deadline/);
    // The result is written first, then the pending record cleared and current pointed back (launcher.ts).
    await until('current pointed back at G', async () => (await linkedVersion(paths.current)) === 'G', 20_000);
    expect(await linkedVersion(paths.committed)).toBe('G');
    expect(await readPending(paths)).toBeUndefined();
    await until('the good release running again', async () => (await started(paths)).join() === 'N,G', 20_000);
    launcher.stop();
    expect(await ran).toBe(0);
  });

  it('commits an upgrade once its agent says main accepted it', async () => {
    const paths = await install('accepted', 'K', true);
    await writePending(paths, { attempt: 'bb22', from: 'G', to: 'K', deadline: Date.now() + 60_000 });
    await pointAt(paths.current, 'K');
    const launcher = new Launcher(paths, silentLogger());
    const ran = launcher.run();
    const result = await until('a commit recorded', () => readResult(paths), 20_000);
    expect(result).toMatchObject({ attempt: 'bb22', version: 'K', ok: true });
    expect(await linkedVersion(paths.committed)).toBe('K');
    expect(await readPending(paths)).toBeUndefined();
    launcher.stop();
    expect(await ran).toBe(0);
    expect(await started(paths)).toEqual(['K']);
  });

  it('rolls back an accepted upgrade whose own launcher does not load: the unit would start that next', async () => {
    const paths = await install('broken-launcher', 'L', true, false);
    await writePending(paths, { attempt: 'cc33', from: 'G', to: 'L', deadline: Date.now() + 60_000 });
    await pointAt(paths.current, 'L');
    const launcher = new Launcher(paths, silentLogger());
    const ran = launcher.run();
    const result = await until('a rollback recorded', () => readResult(paths), 20_000);
    expect(result).toMatchObject({ attempt: 'cc33', version: 'L', ok: false });
    expect(result.failed).toMatch(/its launcher does not start: .*chunk-that-is-missing/);
    expect(await linkedVersion(paths.committed)).toBe('G');
    expect(await linkedVersion(paths.current)).toBe('G');
    await until('the good release running again', async () => (await started(paths)).join() === 'L,G', 20_000);
    launcher.stop();
    expect(await ran).toBe(0);
  });

  it('undoes a swap cut short (current moved, no upgrade recorded) before running anything', async () => {
    const paths = await install('cut-short', 'K', true);
    await pointAt(paths.current, 'K');
    const launcher = new Launcher(paths, silentLogger());
    const ran = launcher.run();
    await until('the committed release running', async () => (await started(paths)).length > 0, 20_000);
    expect(await started(paths)).toEqual(['G']);
    expect(await linkedVersion(paths.current)).toBe('G');
    launcher.stop();
    expect(await ran).toBe(0);
  });

  it('a stop that kills the agent by its signal (no handler yet) still ends the launcher cleanly: exit 0', async () => {
    const paths = await install('early-stop', 'K', true, true, false);
    const launcher = new Launcher(paths, silentLogger());
    const ran = launcher.run();
    await until('the committed release running', async () => (await started(paths)).length > 0, 20_000);
    launcher.stop();
    expect(await ran).toBe(0);
  });
});
