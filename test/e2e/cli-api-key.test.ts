/**
 * How the CLI gets its API key: `--api-key-file FILE` on every admin command; a key given in argv
 * (`--api-key`, readable by every local user through `ps`) works but warns once on stderr;
 * PALISADE_API_KEY stays silent; a file that cannot serve as a key exits 2 with one line naming the flag.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';

let d: Deployment;
let keyFile = '';
/** The environment without PALISADE_API_KEY, so only the flags under test give the key. */
let noKeyEnv: NodeJS.ProcessEnv;

beforeAll(async () => {
  d = await Deployment.create();
  keyFile = join(d.dir, 'admin.key');
  await writeFile(keyFile, `${d.apiKey}\n`, { mode: 0o600 });
  noKeyEnv = { PALISADE_API_KEY: undefined };
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

const WARNING = /warning: --api-key shows the key to other users/;

describe('the API key of admin commands', () => {
  it('--api-key-file works on admin commands, silently', async () => {
    for (const args of [
      ['hosts', '--json'],
      ['tenants', '--json'],
      ['audit', '--limit', '1', '--json'],
      ['content', 'list', '--json'],
    ]) {
      const r = await d.cli([...args, '--api-key-file', keyFile], noKeyEnv);
      expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
      expect(Array.isArray(r.json)).toBe(true);
      expect(r.stderr).toBe('');
    }
    const bundle = join(d.dir, 'h.tar.gz');
    const c = await d.cli(
      ['installer', 'create', '--kind', 'host', '--name', 'hk', '--out', bundle, '--api-key-file', keyFile, '--json'],
      noKeyEnv,
    );
    expect(c.code, c.stdout + c.stderr).toBe(0);
    expect(c.stderr).toBe('');
  });

  it('a key in argv works but warns once on stderr; PALISADE_API_KEY does not warn', async () => {
    const r = await d.cli(['hosts', '--api-key', d.apiKey, '--json'], noKeyEnv);
    expect(r.code).toBe(0);
    expect(Array.isArray(r.json)).toBe(true); // stdout is still pure JSON
    expect(r.stderr).toMatch(WARNING);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    const env = await d.cli(['hosts', '--json']);
    expect(env.code).toBe(0);
    expect(env.stderr).toBe('');
  });

  it('an unreadable, empty or oversized key file, or both flags, exits 2 with one line naming the flag', async () => {
    const empty = join(d.dir, 'empty.key');
    await writeFile(empty, '\n');
    const big = join(d.dir, 'big.key');
    await writeFile(big, 'x'.repeat(10_000));
    const dir = join(d.dir, 'a-dir.key');
    await mkdir(dir);
    const locked = join(d.dir, 'locked.key');
    await writeFile(locked, d.apiKey);
    await chmod(locked, 0o000);
    const cases: [string[], string][] = [
      [['--api-key-file', join(d.dir, 'missing.key')], 'ERR_CLI_BAD_API_KEY_FILE'],
      [['--api-key-file', empty], 'ERR_CLI_BAD_API_KEY_FILE'],
      [['--api-key-file', big], 'ERR_CLI_BAD_API_KEY_FILE'],
      [['--api-key-file', dir], 'ERR_CLI_BAD_API_KEY_FILE'],
      [['--api-key-file', keyFile, '--api-key', d.apiKey], 'ERR_CLI_API_KEY_TWICE'],
      // root reads a 0000 file anyway; the check is for the other users who run the CLI
      ...(process.getuid?.() === 0
        ? []
        : [[['--api-key-file', locked], 'ERR_CLI_BAD_API_KEY_FILE'] as [string[], string]]),
    ];
    for (const [flags, code] of cases) {
      const r = await d.cli(['hosts', ...flags], noKeyEnv);
      expect(r.code, `${flags.join(' ')}: ${r.stdout}${r.stderr}`).toBe(2);
      const lines = r.stderr
        .trimEnd()
        .split('\n')
        .filter((l) => !WARNING.test(l));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('--api-key-file');
      expect(lines[0]).toContain(code);
      const j = await d.cli(['hosts', ...flags, '--json'], noKeyEnv);
      expect(j.code).toBe(2);
      expect((j.json as { error: { code: string } }).error.code).toBe(code);
    }
  });
});
