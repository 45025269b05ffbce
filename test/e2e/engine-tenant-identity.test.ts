/**
 * Offboarding revokes a tenant's engines, and engines are bound to their tenant's identity (its public
 * key), not its name, with real processes: `tenant remove acme` revokes acme's engines and voids its
 * unused engine enrolment keys (and says so); the voided bundle enrols nothing; an engine of the removed
 * acme never gets a session with a later tenant also called acme, even with the new tenant's public key
 * written into its config — refused at connect since it is revoked, and, were it still enrolled (as an
 * engine offboarded before offboarding revoked engines would be), refused by main for its identity and
 * audited.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { readLog, runCli, until } from '../harness/processes.js';
import { Registry } from '../../main/registry.js';
import { mainPaths } from '../../main/data-dir.js';

let d: Deployment;
let unusedKeyId = '';

interface AuditRow {
  actor: string;
  action: string;
  target?: string;
  outcome: string;
  detail?: Record<string, unknown>;
}

const audit = async (action: string) => (await d.api<AuditRow[]>('GET', `/audit?action=${action}&limit=1000`)).body;
const hostOnline = async () =>
  (await d.api<{ name: string; status: string }[]>('GET', '/hosts')).body.find((h) => h.name === 'ih')?.status ===
  'online';

async function createAcme(): Promise<string> {
  return (await d.createTenant('acme', 'ih')).publicKey;
}

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'ih');
  await d.startAgent('ih');
  await createAcme();
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('offboarding and engines', () => {
  it("tenant remove revokes the tenant's engines and voids its unused engine keys, and says so; the voided bundle enrols nothing", async () => {
    await d.startEngine('ae', 'acme');
    const bundle = join(d.dir, 'ae2.tar.gz');
    const c = await d.cli([
      'installer',
      'create',
      '--kind',
      'engine',
      '--name',
      'ae2',
      '--tenant',
      'acme',
      '--out',
      bundle,
      '--json',
    ]);
    expect(c.code, c.stdout + c.stderr).toBe(0);
    unusedKeyId = (c.json as { enrolKeyId: string }).enrolKeyId;

    const r = await d.cli(['tenant', 'remove', 'acme', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((r.json as { removed: string[] }).removed).toEqual(
      expect.arrayContaining([
        'engine ae (certificate revoked, sessions ended)',
        `unused engine enrolment key ${unusedKeyId} (voided)`,
      ]),
    );
    // The engine is told it was revoked and stops for good; main lists it no more.
    expect(await d.agents.get('ae')!.proc!.waitExit()).toBe(2);
    expect(((await d.cli(['engines', '--json'])).json as { name: string }[]).map((e) => e.name)).not.toContain('ae');
    expect((await audit('agent.revoke')).find((a) => a.target === 'engine:ae')).toMatchObject({
      outcome: 'ok',
      detail: { reason: 'tenant acme removed' },
    });

    const dir = join(d.dir, 'engine-ae2');
    const i = await runCli(['agent', 'install', '--bundle', bundle, '--dir', dir, '--json']);
    expect(i.code, i.stdout + i.stderr).toBe(0);
    const e = await runCli(['agent', 'start', '--dir', dir, '--json']);
    expect(e.code).toBe(2);
    expect((JSON.parse(e.stdout) as { error: { code: string } }).error.code).toBe('ERR_ENROL_KEY_REVOKED');
  });

  it("an engine of the removed acme never gets a session with a new acme, even carrying the new acme's public key", async () => {
    const newKey = await createAcme();
    d.configure('ae', { tenantPublicKey: newKey });
    const p = await d.startAgent('ae', false);
    expect(await p.waitExit()).toBe(2);
    expect(p.output).toContain('ERR_AGENT_REVOKED');
    expect((await audit('agent.connect')).find((a) => a.target === 'engine:ae')).toMatchObject({
      outcome: 'denied',
      detail: { code: 'ERR_AGENT_REVOKED' },
    });
    expect(await d.engineSessions('acme')).toEqual([]);
  });

  it('bound by identity, not by name: the same engine still enrolled (not revoked) is refused by main for the new acme, and audited', async () => {
    // An engine left enrolled for the earlier acme, as one offboarded before offboarding revoked engines would be.
    await d.main!.stop();
    const registry = new Registry(mainPaths(d.mainDir).registry);
    await registry.open();
    const ae = (await registry.listAgents('engine')).find((a) => a.name === 'ae')!;
    await registry.agents.put(ae.id, { ...ae, revokedAt: undefined });
    await registry.agentNames.put('engine:ae', ae.id);
    await registry.close();
    await d.startMain();
    await until('the host back', hostOnline, 60_000);

    const p = await d.startAgent('ae');
    const refused = await until(
      'main to refuse its hello',
      async () => (await audit('engine.tunnel')).find((a) => a.actor === 'engine:ae'),
      30_000,
    );
    expect(refused).toMatchObject({
      outcome: 'denied',
      target: 'tenant:acme',
      detail: { code: 'ERR_TUNNEL_TENANT_IDENTITY' },
    });
    // Its hello is never answered: the engine gives up on it, and the new acme never had a session with it.
    await until(
      'the engine to give up its hello',
      async () => (await readLog(d.agentLog('ae'))).includes('ERR_TUNNEL_HANDSHAKE_TIMEOUT'),
      30_000,
    );
    expect(await d.engineSessions('acme')).toEqual([]);
    expect(p.running).toBe(true);
  });
});
