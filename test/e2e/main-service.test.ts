/**
 * `main install-service` into a unit directory of the test's own: the unit names the data directory and the user,
 * scores ≤ 2.0 in `systemd-analyze security --offline` where that exists, and bad data directories are refused
 * with one line and exit 2. `main start --log stdout` logs JSON to stdout and writes no log file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI, Proc, REPO, freePort, runCli, tempDir } from '../harness/processes.js';

let root = '';
let data = '';
const run = promisify(execFile);

/** systemd-analyze with --offline (systemd ≥ 250), or null: the test then checks the unit's directives only. */
async function offlineAnalyzer(): Promise<string | null> {
  try {
    const { stdout } = await run('systemd-analyze', ['--help']);
    return stdout.includes('--offline') ? 'systemd-analyze' : null;
  } catch {
    return null;
  }
}

beforeAll(async () => {
  // Not under /tmp: the unit's PrivateTmp would hide it, and install-service refuses such a data directory. A
  // checkout may itself be under /tmp (a CI clone): then /var/lib, as an installed main would use.
  const inTmp = ['/tmp/', '/var/tmp/'].some((t) => `${REPO}/`.startsWith(t));
  root = await mkdtemp(inTmp ? '/var/lib/palisade-service-test-' : join(REPO, 'dist', 'service-test-'));
  data = join(root, 'data');
  const init = await runCli(['main', 'init', '--data', data, '--hostname', '127.0.0.1', '--port', '8443']);
  expect(init.code, init.stderr).toBe(0);
}, 60_000);
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('main install-service', () => {
  it('writes a unit that runs main as the given user on its data directory, hardened to ≤ 2.0', async () => {
    const unitDir = join(root, 'units');
    const r = await runCli(['main', 'install-service', '--data', data, '--user', 'nobody', '--unit-dir', unitDir]);
    expect(r.code, r.stderr).toBe(0);
    const unitFile = join(unitDir, 'palisade-main.service');
    expect(r.stdout).toContain(`Wrote ${unitFile} (runs as nobody)`);
    expect(r.stdout).toContain('Not enabled');
    const unit = await readFile(unitFile, 'utf8');
    expect(unit).toContain('\nUser=nobody\n');
    expect(unit).toContain(`\nExecStart=${process.execPath} ${CLI} main start --data ${data} --log stdout\n`);
    expect(unit).toContain(`\nReadWritePaths=${data}\n`);
    expect(unit).toContain('\nCapabilityBoundingSet=\n');
    const analyzer = await offlineAnalyzer();
    if (!analyzer) {
      console.log('systemd-analyze --offline is not available here: checked the directives only');
      return;
    }
    const { stdout } = await run(analyzer, ['security', '--offline=yes', unitFile]).catch((e: { stdout: string }) => e);
    const score = Number(/Overall exposure level for palisade-main\.service: ([\d.]+)/.exec(stdout)?.[1]);
    expect(score, stdout).toBeLessThanOrEqual(2.0);
  });

  it('refuses, in one line with exit 2, a missing data directory, one under /tmp, and running as root', async () => {
    const unitDir = join(root, 'refused');
    const missing = await runCli(['main', 'install-service', '--data', join(root, 'nope'), '--unit-dir', unitDir]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toContain('ERR_MAIN_NOT_INITIALISED');

    const tmp = await tempDir('palisade-service-');
    try {
      expect((await runCli(['main', 'init', '--data', tmp, '--hostname', '127.0.0.1'])).code).toBe(0);
      const r = await runCli(['main', 'install-service', '--data', tmp, '--user', 'nobody', '--unit-dir', unitDir]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('ERR_SERVICE_DATA_DIR');
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
    if (process.getuid?.() === 0) {
      // The data directory is root's (this test runs as root): with no --user, main would run as root.
      const r = await runCli(['main', 'install-service', '--data', data, '--unit-dir', unitDir, '--json']);
      expect(r.code).toBe(2);
      expect((r.json as { error: { code: string } }).error.code).toBe('ERR_SERVICE_USER_ROOT');
    }
    for (const root of ['root', '0']) {
      const r = await runCli([
        'main',
        'install-service',
        '--data',
        data,
        '--user',
        root,
        '--unit-dir',
        unitDir,
        '--json',
      ]);
      expect(r.code, root).toBe(2);
      expect((r.json as { error: { code: string } }).error.code).toBe('ERR_SERVICE_USER_ROOT');
    }
    expect(existsSync(join(unitDir, 'palisade-main.service'))).toBe(false);
    const badLog = await runCli(['main', 'start', '--data', data, '--log', 'syslog']);
    expect(badLog.code).toBe(2);
    expect(badLog.stderr).toContain("'syslog' is invalid");
  });

  it('main start --log stdout writes its JSON log to stdout and no log file', async () => {
    const port = await freePort();
    const args = ['main', 'start', '--data', data, '--port', String(port), '--bind', '127.0.0.1', '--log', 'stdout'];
    const p = new Proc('main', args);
    try {
      await p.waitFor(/"msg":"main listening"/);
      const line = p.output.split('\n').find((l) => l.includes('"msg":"main listening"'))!;
      expect(JSON.parse(line)).toMatchObject({ name: 'main', level: 30 });
      expect(existsSync(join(data, 'logs', 'main.log'))).toBe(false);
    } finally {
      await p.stop();
    }
  });
});
