/**
 * Engines enrol like hosts but are bound to one tenant: the bundle names the tenant and carries its
 * public key, the allow-list is written at install, and `palisade engines` shows the binding.
 * (Tunnels themselves are issue 4.)
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { runCli, until } from '../harness/processes.js';

let d: Deployment;
let tenantKey = '';

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'eh');
  await d.startAgent('eh');
  const t = await d.cli(['tenant', 'create', 'cust', '--host', 'eh', '--json']);
  if (t.code !== 0) throw new Error(t.stdout + t.stderr);
  tenantKey = (t.json as { publicKey: string }).publicKey;
});
afterAll(async () => { await d?.stop(); });
afterEach((ctx) => { if (ctx.task.result?.state === 'fail') console.error(d.logs()); });

interface EngineRow { name: string; status: string; tenant: string | null }

describe('engine enrolment', () => {
  it('an engine bundle carries its tenant and key; install writes the allow-list; the engine enrols and shows online for its tenant', async () => {
    const bundle = join(d.dir, 'eng.tar.gz');
    const c = await d.cli(['installer', 'create', '--kind', 'engine', '--name', 'eng1', '--tenant', 'cust', '--out', bundle, '--json']);
    expect(c.code, c.stdout + c.stderr).toBe(0);
    expect(c.json).toMatchObject({ kind: 'engine', name: 'eng1', bundle });
    const dir = join(d.dir, 'engine-eng1');
    const i = await runCli(['agent', 'install', '--bundle', bundle, '--dir', dir, '--allow', '10.0.0.0/24:389', '--allow', 'mail.corp:25', '--json']);
    expect(i.code, i.stdout + i.stderr).toBe(0);
    const cfg = JSON.parse(await readFile(join(dir, 'agent.json'), 'utf8')) as { kind: string; tenant: string; tenantPublicKey: string; allow: string[] };
    expect(cfg).toMatchObject({ kind: 'engine', tenant: 'cust', tenantPublicKey: tenantKey, allow: ['10.0.0.0/24:389', 'mail.corp:25'] });
    const unit = await readFile(join(dir, 'palisade-engine-eng1.service'), 'utf8');
    expect(unit).toContain(`agent start --dir ${dir}`);
    // V8's GC helper threads would halve tunnel throughput on a small box (common/node-flags.ts).
    expect(unit).toMatch(/^ExecStart=\S+ --single-threaded-gc \S+ agent start /m);
    expect(unit).toContain(`ExecStart=${(i.json as { start: string }).start}\n`);
    expect(unit).toContain('NoNewPrivileges=yes');
    expect(unit).not.toContain('MemoryDenyWriteExecute');
    d.agents.set('eng1', { dir });
    await d.startAgent('eng1');
    const row = await until('engine online', async () => ((await d.cli(['engines', '--json'])).json as EngineRow[]).find((e) => e.name === 'eng1' && e.status === 'online'));
    expect(row.tenant).toBe('cust');
    const ping = await d.cli(['engines', 'ping', 'eng1', '--json']);
    expect(ping.json).toMatchObject({ state: 'done', result: { pong: true, kind: 'engine' } });
  });

  it('refuses an engine bundle without a tenant, or for an unknown tenant, and a host bundle with one', async () => {
    const out = join(d.dir, 'x.tar.gz');
    const noTenant = await d.cli(['installer', 'create', '--kind', 'engine', '--name', 'eng2', '--out', out, '--json']);
    expect(noTenant.code).toBe(2);
    expect((noTenant.json as { error: { code: string } }).error.code).toBe('ERR_ENGINE_TENANT');
    const unknown = await d.cli(['installer', 'create', '--kind', 'engine', '--name', 'eng2', '--tenant', 'nobody', '--out', out, '--json']);
    expect(unknown.code).toBe(2);
    expect((unknown.json as { error: { code: string } }).error.code).toBe('ERR_TENANT_NOT_FOUND');
    const hostWithTenant = await d.cli(['installer', 'create', '--kind', 'host', '--name', 'h9', '--tenant', 'cust', '--out', out, '--json']);
    expect(hostWithTenant.code).toBe(2);
  });

  it('a malformed --allow entry is refused at install with exit 2 and nothing written', async () => {
    const bundle = join(d.dir, 'eng3.tar.gz');
    expect((await d.cli(['installer', 'create', '--kind', 'engine', '--name', 'eng3', '--tenant', 'cust', '--out', bundle, '--json'])).code).toBe(0);
    const dir = join(d.dir, 'engine-eng3');
    const r = await runCli(['agent', 'install', '--bundle', bundle, '--dir', dir, '--allow', '10.0.0.0/33', '--json']);
    expect(r.code).toBe(2);
    expect((r.json as { error: { code: string; message: string } }).error).toMatchObject({ code: 'ERR_BAD_ALLOW' });
    await expect(readFile(join(dir, 'agent.json'))).rejects.toThrow();
  });
});
