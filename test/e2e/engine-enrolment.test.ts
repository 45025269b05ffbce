/**
 * Engines enrol like hosts but are bound to one tenant: the bundle names the tenant and carries its
 * public key, the allow-list is written at install, and `palisade engines` shows the binding.
 * The direct-path settings are written at install too (`--engine-listen`/`--engine-advertise` for
 * hosts, `--no-direct` for engines); a flag for the other kind or a bad value is refused and writes nothing.
 * (Tunnels themselves: tunnels.test.ts.)
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { runCli, until } from '../harness/processes.js';

let d: Deployment;
let tenantKey = '';

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'eh');
  await d.startAgent('eh');
  tenantKey = (await d.createTenant('cust', 'eh')).publicKey;
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

interface EngineRow {
  name: string;
  status: string;
  tenant: string | null;
}
interface CliError {
  error: { code: string; message: string };
}

/** A fresh bundle for `kind` (engines serve tenant cust). */
async function bundleFor(kind: 'host' | 'engine', name: string): Promise<string> {
  const bundle = join(d.dir, `${name}.tar.gz`);
  const c = await d.cli([
    'installer',
    'create',
    '--kind',
    kind,
    '--name',
    name,
    ...(kind === 'engine' ? ['--tenant', 'cust'] : []),
    '--out',
    bundle,
    '--json',
  ]);
  if (c.code !== 0) throw new Error(c.stdout + c.stderr);
  return bundle;
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

describe('engine enrolment', () => {
  it('an engine bundle carries its tenant and key; install writes the allow-list; the engine enrols and shows online for its tenant', async () => {
    const bundle = join(d.dir, 'eng.tar.gz');
    const c = await d.cli([
      'installer',
      'create',
      '--kind',
      'engine',
      '--name',
      'eng1',
      '--tenant',
      'cust',
      '--out',
      bundle,
      '--json',
    ]);
    expect(c.code, c.stdout + c.stderr).toBe(0);
    expect(c.json).toMatchObject({ kind: 'engine', name: 'eng1', bundle });
    const dir = join(d.dir, 'engine-eng1');
    const i = await runCli([
      'agent',
      'install',
      '--bundle',
      bundle,
      '--dir',
      dir,
      '--allow',
      '10.0.0.0/24:389',
      '--allow',
      'mail.corp:25',
      '--json',
    ]);
    expect(i.code, i.stdout + i.stderr).toBe(0);
    const cfg = JSON.parse(await readFile(join(dir, 'agent.json'), 'utf8')) as {
      kind: string;
      tenant: string;
      tenantPublicKey: string;
      allow: string[];
    };
    expect(cfg).toMatchObject({
      kind: 'engine',
      tenant: 'cust',
      tenantPublicKey: tenantKey,
      allow: ['10.0.0.0/24:389', 'mail.corp:25'],
    });
    const unit = await readFile(join(dir, 'palisade-engine-eng1.service'), 'utf8');
    expect(unit).toContain(`agent start --dir ${dir}`);
    // V8's GC helper threads, its Node 24 GC sizing and glibc handing freed heap back to the kernel each slow
    // tunnels down (common/agent-runtime.ts).
    expect(unit).toMatch(
      /^ExecStart=\S+ --single-threaded-gc --scavenger-max-new-space-capacity-mb=8 --heap-growing-percent=200 \S+ agent start /m,
    );
    const environment = unit.match(/^Environment=(.*)$/m)?.[1] ?? '';
    expect(environment).toMatch(/^MALLOC_TRIM_THRESHOLD_=\d+ MALLOC_TOP_PAD_=\d+ MALLOC_MMAP_THRESHOLD_=\d+$/);
    // The printed command starts it as the unit does: the same variables, then the same command line.
    expect((i.json as { start: string }).start).toBe(`${environment} ${unit.match(/^ExecStart=(.*)$/m)![1]}`);
    expect(unit).toContain('NoNewPrivileges=yes');
    expect(unit).not.toContain('MemoryDenyWriteExecute');
    d.agents.set('eng1', { dir });
    await d.startAgent('eng1');
    const row = await until('engine online', async () =>
      ((await d.cli(['engines', '--json'])).json as EngineRow[]).find(
        (e) => e.name === 'eng1' && e.status === 'online',
      ),
    );
    expect(row.tenant).toBe('cust');
    const ping = await d.cli(['engines', 'ping', 'eng1', '--json']);
    expect(ping.json).toMatchObject({ state: 'done', result: { pong: true, kind: 'engine' } });
  });

  it('refuses an engine bundle without a tenant, or for an unknown tenant, and a host bundle with one', async () => {
    const out = join(d.dir, 'x.tar.gz');
    const noTenant = await d.cli(['installer', 'create', '--kind', 'engine', '--name', 'eng2', '--out', out, '--json']);
    expect(noTenant.code).toBe(2);
    expect((noTenant.json as { error: { code: string } }).error.code).toBe('ERR_ENGINE_TENANT');
    const unknown = await d.cli([
      'installer',
      'create',
      '--kind',
      'engine',
      '--name',
      'eng2',
      '--tenant',
      'nobody',
      '--out',
      out,
      '--json',
    ]);
    expect(unknown.code).toBe(2);
    expect((unknown.json as { error: { code: string } }).error.code).toBe('ERR_TENANT_NOT_FOUND');
    const hostWithTenant = await d.cli([
      'installer',
      'create',
      '--kind',
      'host',
      '--name',
      'h9',
      '--tenant',
      'cust',
      '--out',
      out,
      '--json',
    ]);
    expect(hostWithTenant.code).toBe(2);
  });

  it('a malformed --allow entry is refused at install with exit 2 and nothing written', async () => {
    const bundle = join(d.dir, 'eng3.tar.gz');
    expect(
      (
        await d.cli([
          'installer',
          'create',
          '--kind',
          'engine',
          '--name',
          'eng3',
          '--tenant',
          'cust',
          '--out',
          bundle,
          '--json',
        ])
      ).code,
    ).toBe(0);
    const dir = join(d.dir, 'engine-eng3');
    const r = await runCli(['agent', 'install', '--bundle', bundle, '--dir', dir, '--allow', '10.0.0.0/33', '--json']);
    expect(r.code).toBe(2);
    expect((r.json as { error: { code: string; message: string } }).error).toMatchObject({ code: 'ERR_BAD_ALLOW' });
    await expect(readFile(join(dir, 'agent.json'))).rejects.toThrow();
  });

  it("--engine-listen and --engine-advertise land in a host's agent.json and in the output", async () => {
    const dir = join(d.dir, 'host-hx');
    const i = await runCli([
      'agent',
      'install',
      '--bundle',
      await bundleFor('host', 'hx'),
      '--dir',
      dir,
      '--engine-listen',
      '0.0.0.0:7443',
      '--engine-advertise',
      'gw.example.net:17443',
      '--json',
    ]);
    expect(i.code, i.stdout + i.stderr).toBe(0);
    expect(i.json).toMatchObject({
      kind: 'host',
      engineListen: '0.0.0.0:7443',
      engineAdvertise: 'gw.example.net:17443',
    });
    expect(JSON.parse(await readFile(join(dir, 'agent.json'), 'utf8'))).toMatchObject({
      kind: 'host',
      engineListen: '0.0.0.0:7443',
      engineAdvertise: 'gw.example.net:17443',
    });
    // Without the flags nothing is written (the agent's default applies) and the output says what that is.
    const plainDir = join(d.dir, 'host-hy');
    const plain = await runCli(['agent', 'install', '--bundle', await bundleFor('host', 'hy'), '--dir', plainDir]);
    expect(plain.code, plain.stdout + plain.stderr).toBe(0);
    expect(plain.stdout).toContain('engine port: 127.0.0.1:0 (default: engines on this machine only)');
    const cfg = JSON.parse(await readFile(join(plainDir, 'agent.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg.engineListen).toBeUndefined();
    expect(cfg.engineAdvertise).toBeUndefined();
  });

  it('an engine installed with --no-direct writes direct: false and relays through main though its host offers the direct path', async () => {
    const dir = join(d.dir, 'engine-eng4');
    const i = await runCli([
      'agent',
      'install',
      '--bundle',
      await bundleFor('engine', 'eng4'),
      '--dir',
      dir,
      '--no-direct',
    ]);
    expect(i.code, i.stdout + i.stderr).toBe(0);
    expect(i.stdout).toContain('direct path: off (always relays through main)');
    expect(JSON.parse(await readFile(join(dir, 'agent.json'), 'utf8'))).toMatchObject({
      kind: 'engine',
      direct: false,
    });
    d.agents.set('eng4', { dir });
    await d.startAgent('eng4');
    const sessions = () => d.engineSessions('cust');
    const mine = await until('eng4 session', async () => (await sessions()).find((e) => e.name === 'eng4'), 30_000);
    expect(mine.transport).toBe('relay');
    expect((await sessions()).find((e) => e.name === 'eng1')?.transport).toBe('direct'); // the host does offer it
  });

  it('a direct-path flag for the other kind of agent exits 2 with one line naming the flag, and creates nothing', async () => {
    const engineBundle = await bundleFor('engine', 'eng5');
    const hostBundle = await bundleFor('host', 'hz');
    const cases: [string, string[], string, string][] = [
      [
        engineBundle,
        ['--engine-listen', '0.0.0.0:7443'],
        'ERR_FLAG_HOST_ONLY',
        '--engine-listen applies to hosts only',
      ],
      [
        engineBundle,
        ['--engine-advertise', 'gw.example.net:7443'],
        'ERR_FLAG_HOST_ONLY',
        '--engine-advertise applies to hosts only',
      ],
      [hostBundle, ['--no-direct'], 'ERR_FLAG_ENGINE_ONLY', '--no-direct applies to engines only'],
    ];
    for (const [bundle, flags, code, message] of cases) {
      const dir = join(d.dir, `refused-${flags[0].slice(2)}`);
      const r = await runCli(['agent', 'install', '--bundle', bundle, '--dir', dir, ...flags]);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect(r.stderr).toBe(`palisade: ${message} (${code})\n`);
      expect(await exists(dir), dir).toBe(false);
    }
  });

  it('a bad --engine-listen or --engine-advertise exits 2 naming the flag, and creates nothing', async () => {
    const bundle = await bundleFor('host', 'hw');
    const cases: [string[], string, string][] = [
      [['--engine-listen', 'gw.example.net:7443'], 'ERR_BAD_ENGINE_LISTEN', '--engine-listen "gw.example.net:7443"'],
      [['--engine-listen', '0.0.0.0:99999'], 'ERR_BAD_ENGINE_LISTEN', '--engine-listen "0.0.0.0:99999"'],
      [['--engine-advertise', 'gw.example.net:0'], 'ERR_BAD_ENGINE_ADVERTISE', '--engine-advertise "gw.example.net:0"'],
      [
        ['--engine-listen', 'off', '--engine-advertise', 'gw.example.net:7443'],
        'ERR_BAD_ENGINE_ADVERTISE',
        '--engine-advertise has no effect with --engine-listen off',
      ],
    ];
    for (const [flags, code, message] of cases) {
      const dir = join(d.dir, 'host-hw');
      const r = await runCli(['agent', 'install', '--bundle', bundle, '--dir', dir, ...flags, '--json']);
      expect(r.code, r.stdout + r.stderr).toBe(2);
      expect((r.json as CliError).error.code).toBe(code);
      expect((r.json as CliError).error.message).toContain(message);
      expect(await exists(dir), dir).toBe(false);
    }
    // The same bundle installs once the value is fixed: the refusals consumed nothing.
    const ok = await runCli([
      'agent',
      'install',
      '--bundle',
      bundle,
      '--dir',
      join(d.dir, 'host-hw'),
      '--engine-listen',
      'off',
      '--json',
    ]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.json).toMatchObject({ kind: 'host', engineListen: 'off' });
  });
});
