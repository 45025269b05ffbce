/**
 * Enrolment and the agent channel, end to end with real processes: one-time keys, mTLS, status,
 * commands through the CLI, revocation.
 */
import { afterAll, beforeAll, afterEach, describe, expect, it } from 'vitest';
import { cp, writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { runCli, until, Proc } from '../harness/processes.js';

let d: Deployment;

beforeAll(async () => {
  d = await Deployment.create();
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

interface HostView {
  name: string;
  status: string;
  lastSeen: string | null;
  sysinfo: Record<string, unknown> | null;
  pendingCommands: number;
}

describe('enrolment and status', () => {
  it('a host installed from a bundle enrols, connects and shows online with system info', async () => {
    await d.install('host', 'h1');
    const p = await d.startAgent('h1');
    expect(p.output).toMatch(/enrolled as hst_/);
    const hosts = await until('h1 online with sysinfo', async () => {
      const r = await d.cli(['hosts', '--json']);
      const list = r.json as HostView[];
      const h = list.find((x) => x.name === 'h1');
      return h?.status === 'online' && h.sysinfo ? list : undefined;
    });
    const h1 = hosts.find((x) => x.name === 'h1')!;
    expect(h1.sysinfo).toMatchObject({
      cpuCores: expect.any(Number),
      memTotal: expect.any(Number),
      os: expect.any(String),
      agentVersion: '0.1.0',
    });
    expect(Date.parse(h1.lastSeen!)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('hosts ping round-trips through the command channel', async () => {
    const r = await d.cli(['hosts', 'ping', 'h1', '--json']);
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ state: 'done', result: { pong: true, agent: 'h1' } });
    const rest = await d.api<{ state: string; result: { hostname: string } }>('POST', '/hosts/h1/commands', {
      command: 'sysinfo',
    });
    expect(rest.status).toBe(200);
    expect(rest.body.result.hostname).toEqual(expect.any(String));
  });

  it('re-using a consumed enrolment key is refused and audited', async () => {
    // A second install of the same bundle: the key inside was consumed by h1's enrolment.
    const dir = join(d.dir, 'h1-again');
    const i = await runCli(['agent', 'install', '--bundle', join(d.dir, 'host-h1.tar.gz'), '--dir', dir, '--json']);
    expect(i.code).toBe(0);
    const r = await runCli(['agent', 'start', '--dir', dir, '--json']);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('ERR_ENROL_KEY_USED');
    const audit = await d.api<{ action: string; outcome: string; detail?: { code?: string } }[]>(
      'GET',
      '/audit?action=agent.enrol',
    );
    expect(audit.body.some((a) => a.outcome === 'denied' && a.detail?.code === 'ERR_ENROL_KEY_USED')).toBe(true);
  });

  it('an unknown enrolment key is refused', async () => {
    const dir = await d.install('host', 'h-forged');
    await writeFile(join(dir, 'enrol-key'), 'pek_AAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n');
    const r = await runCli(['agent', 'start', '--dir', dir, '--json']);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('ERR_ENROL_KEY_UNKNOWN');
  });

  it('an expired enrolment key is refused', async () => {
    const bundle = join(d.dir, 'short.tar.gz');
    // Long enough for `agent install` (which refuses an already expired bundle) on a loaded CI machine.
    const c = await d.cli([
      'installer',
      'create',
      '--kind',
      'host',
      '--name',
      'h-short',
      '--ttl',
      // Long enough for installer create and agent install on a loaded machine, short enough to wait out.
      '15s',
      '--out',
      bundle,
      '--json',
    ]);
    expect(c.code).toBe(0);
    const expiresAt = Date.parse((c.json as { expiresAt: string }).expiresAt);
    const dir = join(d.dir, 'h-short');
    const i = await runCli(['agent', 'install', '--bundle', bundle, '--dir', dir, '--json']);
    expect(i.code, i.stdout + i.stderr).toBe(0);
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now()) + 500));
    const r = await runCli(['agent', 'start', '--dir', dir, '--json']);
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('ERR_ENROL_KEY_EXPIRED');
  });

  it('a removed host is disconnected and refused at its next connect', async () => {
    await d.install('host', 'h-doomed');
    const p = await d.startAgent('h-doomed');
    const dirCopy = join(d.dir, 'h-doomed-copy');
    const rm1 = await d.cli(['hosts', 'remove', 'h-doomed', '--json']);
    expect(rm1.code).toBe(0);
    // The live agent is told it was revoked and stops with a permanent error (exit 2).
    expect(await p.waitExit()).toBe(2);
    expect(p.output).toContain('ERR_AGENT_REVOKED');
    // Starting it again (its certificate is still on disk) is refused at connect.
    await cp(d.agents.get('h-doomed')!.dir, dirCopy, { recursive: true });
    await rm(join(dirCopy, 'data'), { recursive: true, force: true });
    const again = new Proc('h-doomed again', ['agent', 'start', '--dir', dirCopy]);
    expect(await again.waitExit()).toBe(2);
    expect(again.output).toContain('ERR_AGENT_REVOKED');
    const list = (await d.cli(['hosts', '--json'])).json as HostView[];
    expect(list.map((h) => h.name)).not.toContain('h-doomed');
  });
});
