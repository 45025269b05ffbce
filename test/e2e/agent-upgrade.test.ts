/**
 * Agent upgrades by ring, end to end: main, and two hosts (h1 in the canary ring from its installer bundle, h2
 * in default) installed
 * as releases (ROOT/releases/A, current, committed, state) and run through the launcher as their unit will
 * run them. Releases B (works) and C (its agent exits at start) are added with `agents releases add`.
 * `agents upgrade --ring canary` moves only h1 to B; `--ring all` then moves h2; C on h2 rolls back to B
 * by itself, and main reports why. A tenant on h1 answers after h1's upgrade, with its data. The release
 * directories are built by test/harness/agent-releases.ts (a fake of the packaging, not of the agent).
 */
import { readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_ENV } from '#common/agent-runtime.js';
import { Deployment } from '../harness/deployment.js';
import { Proc, runCli, until } from '../harness/processes.js';
import { layOutInstall, packRelease, writeRelease } from '../harness/agent-releases.js';
import { allIncidents, createIncident, tenantAnswering } from '../harness/tenant-api.js';

interface UpgradeRow {
  agent: string;
  from: string | null;
  to: string;
  version: string | null;
  state: string;
  reason: string | null;
}
interface HostRow {
  name: string;
  status: string;
  version: string | null;
  ring: string;
  lastUpgrade: { version: string; ok: boolean; reason: string | null } | null;
}

let d: Deployment;
const root = (name: string) => join(d.dir, 'opt', name);

/** Installs host `name` into ROOT/state from a bundle naming its ring, as `installer create --ring` makes it. */
async function installHost(name: string, ring?: 'canary'): Promise<void> {
  const bundle = join(d.dir, `${name}.tar.gz`);
  const c = await d.cli([
    'installer',
    'create',
    '--kind',
    'host',
    '--name',
    name,
    '--out',
    bundle,
    '--json',
    ...(ring ? ['--ring', ring] : []),
  ]);
  if (c.code !== 0) throw new Error(`installer create failed: ${c.stdout}${c.stderr}`);
  const dir = join(root(name), 'state');
  const i = await runCli(['agent', 'install', '--bundle', bundle, '--dir', dir, '--json']);
  if (i.code !== 0) throw new Error(`agent install failed: ${i.stdout}${i.stderr}`);
  d.agents.set(name, { dir });
}

/** Starts the launcher of host `name` from its committed release, as its unit does; waits until connected. */
async function startLauncher(name: string): Promise<Proc> {
  const r = root(name);
  const p = d.track(
    new Proc(`launcher ${name}`, ['--root', r], AGENT_ENV, [], undefined, join(r, 'committed', 'app', 'launcher.mjs')),
  );
  d.agents.get(name)!.proc = p;
  await p.waitFor(/connected to/, 60_000);
  return p;
}

async function host(name: string): Promise<HostRow> {
  const r = await d.api<HostRow>('GET', `/hosts/${name}`);
  if (r.status !== 200) throw new Error(`GET /hosts/${name}: ${r.status} ${r.raw}`);
  return r.body;
}

/** `agents upgrade … --wait --json`: the CLI's exit code and each chosen agent's final row. */
async function upgrade(args: string[]): Promise<{ code: number; rows: UpgradeRow[] }> {
  const c = await d.cli(['agents', 'upgrade', ...args, '--deadline', '60s', '--wait', '--timeout', '3m', '--json']);
  if (!Array.isArray(c.json)) throw new Error(`agents upgrade ${args.join(' ')}: ${c.code} ${c.stdout}${c.stderr}`);
  return { code: c.code, rows: (c.json as UpgradeRow[]).sort((a, b) => a.agent.localeCompare(b.agent)) };
}

const linked = async (name: string, link: 'current' | 'committed') => readlink(join(root(name), link));
const committedTo = (name: string, version: string) =>
  until(
    `${name} committed to ${version}`,
    async () => (await linked(name, 'committed')) === join('releases', version),
    20_000,
  );

beforeAll(async () => {
  d = await Deployment.create();
  for (const name of ['h1', 'h2']) {
    await layOutInstall(root(name), 'A');
    await installHost(name, name === 'h1' ? 'canary' : undefined);
    await startLauncher(name);
  }
  await writeRelease(join(d.dir, 'src', 'B'), 'B');
  await writeRelease(join(d.dir, 'src', 'C'), 'C', 'exits-at-start');
  for (const v of ['B', 'C']) {
    const add = await d.cli([
      'agents',
      'releases',
      'add',
      await packRelease(join(d.dir, 'src', v), join(d.dir, `${v}.tar.gz`)),
      '--json',
    ]);
    if (add.code !== 0) throw new Error(`releases add ${v}: ${add.stdout}${add.stderr}`);
  }
  await d.createTenant('acme', 'h1');
}, 240_000);
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('agent upgrades', () => {
  it('main holds the added releases, signed, and hosts report the release they run', async () => {
    const list = await d.cli(['agents', 'releases', 'list', '--json']);
    const rows = list.json as { version: string; sha256: string; signature: string; node: string }[];
    expect(rows.map((r) => r.version)).toEqual(['B', 'C']);
    for (const r of rows) {
      expect(r.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(Buffer.from(r.signature, 'base64')).toHaveLength(64);
      expect(r.node).toBe(process.version);
    }
    expect(await host('h1')).toMatchObject({ version: 'A', ring: 'canary', lastUpgrade: null });
    expect(await host('h2')).toMatchObject({ version: 'A', ring: 'default' });
    const table = await d.cli(['hosts']);
    expect(table.stdout).toMatch(/^h1\s+online\s+A\s/m);
  });

  it('--ring canary upgrades only the canary; its tenant answers afterwards with its data', async () => {
    const before = await tenantAnswering(d, 'acme');
    const incident = await createIncident(d, 'acme', { name: 'kept across the upgrade' });
    const { code, rows } = await upgrade(['--version', 'B', '--ring', 'canary']);
    expect(code).toBe(0);
    expect(rows).toEqual([
      expect.objectContaining({ agent: 'h1', from: 'A', to: 'B', version: 'B', state: 'upgraded' }),
    ]);
    // The launcher commits once the new agent was accepted and the new launcher loads: just after main says so.
    await committedTo('h1', 'B');
    expect(await linked('h1', 'current')).toBe(join('releases', 'B'));
    expect(await host('h1')).toMatchObject({ status: 'online', version: 'B', lastUpgrade: { version: 'B', ok: true } });
    // The tenant's process was a child of the old host: a new one answers within seconds, with the same data.
    await tenantAnswering(d, 'acme', before.pid!, 30_000);
    expect((await allIncidents(d, 'acme')).map((i) => i.id)).toContain(incident.id);
    // Only the canary moved.
    expect(await host('h2')).toMatchObject({ status: 'online', version: 'A' });
    expect(await linked('h2', 'current')).toBe(join('releases', 'A'));
  });

  it('--ring all then upgrades the rest (the canary, already on B, stays)', async () => {
    const { code, rows } = await upgrade(['--version', 'B', '--ring', 'all']);
    expect(code).toBe(0);
    expect(rows.map((r) => [r.agent, r.state, r.version])).toEqual([
      ['h1', 'upgraded', 'B'],
      ['h2', 'upgraded', 'B'],
    ]);
    await committedTo('h2', 'B');
    expect(await host('h2')).toMatchObject({ status: 'online', version: 'B' });
  });

  it('a broken release (its agent exits at start) rolls back by itself, and main reports why', async () => {
    const { code, rows } = await upgrade(['--version', 'C', '--hosts', 'h2']);
    expect(code).toBe(1);
    expect(rows).toEqual([expect.objectContaining({ agent: 'h2', to: 'C', version: 'B', state: 'rolled-back' })]);
    expect(rows[0].reason).toMatch(/exited with code 3 before main accepted it/);
    expect(await linked('h2', 'current')).toBe(join('releases', 'B'));
    expect(await linked('h2', 'committed')).toBe(join('releases', 'B'));
    expect(await host('h2')).toMatchObject({
      status: 'online',
      version: 'B',
      lastUpgrade: { version: 'C', ok: false, reason: expect.stringMatching(/exited with code 3/) },
    });
    const audit = await until('the rollback in main’s audit log', async () => {
      const r = await d.api<{ action: string; target: string; outcome: string }[]>(
        'GET',
        '/audit?action=agent.upgrade-rollback',
      );
      return r.body.find((e) => e.target === 'host:h2');
    });
    expect(audit.outcome).toBe('failed');
    // The tenant on the canary kept answering meanwhile.
    await tenantAnswering(d, 'acme');
  });

  it('refuses an upgrade to a release main does not hold, and a canary upgrade when no agent is a canary', async () => {
    const none = await d.cli(['agents', 'upgrade', '--version', 'Z', '--json']);
    expect(none.code).toBe(2);
    expect(none.json).toMatchObject({ error: { code: 'ERR_RELEASE_NOT_FOUND' } });
    const ring = await d.cli(['agents', 'ring', 'h1', '--ring', 'default', '--json']);
    expect(ring.json).toEqual({ ring: 'default', agents: ['h1'] });
    expect(await host('h1')).toMatchObject({ ring: 'default' });
    const noCanary = await d.cli(['agents', 'upgrade', '--version', 'B', '--ring', 'canary', '--json']);
    expect(noCanary.json).toMatchObject({ error: { code: 'ERR_UPGRADE_NO_AGENTS' } });
  });
});
