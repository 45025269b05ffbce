/**
 * `engines remove E` reaches the data plane, with real processes: E's live session with its tenant ends
 * within 10 s on the direct engine ⇄ host path and on the relay through main, a new connection through the
 * tunnel gets nowhere, and the tenant's audit log says why. What E's machine still holds — its tunnel key
 * and a statement main made for it, captured off the wire and valid for minutes here (main.json
 * directStatementTtlMs), so that revocation and not expiry is what stops it — opens no new session. And
 * when E's host is cut off from main at the moment E is removed (a network partition: its tenants keep
 * running, the stolen engine keeps its direct session), the session ends within 10 s of the host's return.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { freePort, readLog, until } from '../harness/processes.js';
import { TcpTap } from '../harness/tcp-tap.js';
import { capturedStatement, dialAsEngine } from '../harness/rogue-engine.js';
import { echoServer, holdThrough, openTunnel, refusedThrough, within } from '../harness/tunnel-hold.js';

let d: Deployment;
let echo: Server;
let echoPort = 0;
/** The host's engine port (the stolen engine dials it straight), and a tap in front of it (real engines dial that). */
let hostPort = 0;
let engineTap: TcpTap;
/** Between the host and main: refusing, it is a partition. */
let mainTap: TcpTap;

interface AuditRow {
  actor: string;
  action: string;
  target?: string;
  outcome: string;
  code?: string;
}

const engineDir = (name: string) => d.agents.get(name)!.dir;
const tenantLog = (tenant: string) => join(d.agents.get('rh')!.dir, 'tenants', tenant, 'logs', 'tenant.log');
const hostOnline = async () =>
  (await d.api<{ name: string; status: string }[]>('GET', '/hosts')).body.find((h) => h.name === 'rh')?.status ===
  'online';

async function startEngine(name: string, tenant: string, transport: 'direct' | 'relay'): Promise<void> {
  await d.startEngine(name, tenant, {
    allow: [`127.0.0.1:${echoPort}`],
    flags: transport === 'relay' ? ['--no-direct'] : [],
    transport,
  });
}

/** The tenant's own audit entries saying main revoked engine `name` and its session ended. */
async function revokedInAudit(tenant: string, name: string): Promise<AuditRow | undefined> {
  const rows = (await d.api<AuditRow[]>('GET', `/tenants/${tenant}/api/audit?action=tunnel.engine`)).body;
  return rows.find(
    (r) =>
      r.action === 'tunnel.engine.revoked' && r.target === `engine:${name}` && r.code === 'ERR_TUNNEL_ENGINE_REVOKED',
  );
}

/** How many direct connections the host refused as a revoked engine's, per its summary lines. */
async function refusedAsRevoked(): Promise<number> {
  return (await readLog(d.agentLog('rh')))
    .split('\n')
    .filter((l) => l.includes('engine connections refused before hand-off'))
    .reduce(
      (n, l) => n + ((JSON.parse(l) as { refused: Record<string, number> }).refused.ERR_DIRECT_ENGINE_REVOKED ?? 0),
      0,
    );
}

beforeAll(async () => {
  ({ server: echo, port: echoPort } = await echoServer());
  d = await Deployment.create({ mainConfig: { directStatementTtlMs: 5 * 60_000 } });
  hostPort = await freePort();
  engineTap = new TcpTap(hostPort);
  mainTap = new TcpTap(d.port);
  await mainTap.start();
  await d.install('host', 'rh');
  d.configure('rh', {
    engineListen: `127.0.0.1:${hostPort}`,
    engineAdvertise: `127.0.0.1:${await engineTap.start()}`,
    mainUrls: [`https://127.0.0.1:${mainTap.port}`],
  });
  await d.startAgent('rh');
  for (const tenant of ['dt', 'rt', 'pt']) await d.createTenant(tenant, 'rh');
});
afterAll(async () => {
  await d?.stop();
  echo?.close();
  engineTap?.close();
  mainTap?.close();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('engines remove', () => {
  it('direct path: the live tunnel connection ends within 10 s, a new one fails, and the stolen key with a valid statement opens nothing', async () => {
    await startEngine('de', 'dt', 'direct');
    const port = await openTunnel(d, 'dt', echoPort);
    const held = await holdThrough(port);
    const statement = capturedStatement(engineTap, 'de');
    const t0 = Date.now();
    const r = await d.cli(['engines', 'remove', 'de', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((await within(held.closed, 10_000, 'the tunnel connection to end')) - t0).toBeLessThan(10_000);
    expect(await refusedThrough(port)).toBe(true);
    expect(await d.engineSessions('dt')).toEqual([]);
    // The statement main made for de is good for minutes more: the host refuses it for de's revocation.
    const stolen = await dialAsEngine(engineDir('de'), hostPort, statement);
    expect(await stolen.answered).toBe(false);
    await until('the host to count the refusal', async () => (await refusedAsRevoked()) >= 1, 20_000);
    expect(await revokedInAudit('dt', 'de')).toMatchObject({ actor: 'main', outcome: 'ok' });
    expect(await readLog(tenantLog('dt'))).toContain('engine revoked by main; its session ends');
    expect(await d.engineSessions('dt')).toEqual([]);
    expect(await within(d.agents.get('de')!.proc!.waitExit(), 10_000, 'the revoked engine to stop')).toBe(2);
  });

  it('relay path: the live tunnel connection ends within 10 s, a new one fails, and the tenant says why', async () => {
    await startEngine('re', 'rt', 'relay');
    const port = await openTunnel(d, 'rt', echoPort);
    const held = await holdThrough(port);
    const t0 = Date.now();
    const r = await d.cli(['engines', 'remove', 're', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((await within(held.closed, 10_000, 'the tunnel connection to end')) - t0).toBeLessThan(10_000);
    expect(await refusedThrough(port)).toBe(true);
    expect(await d.engineSessions('rt')).toEqual([]);
    expect(await revokedInAudit('rt', 're')).toMatchObject({ actor: 'main', outcome: 'ok' });
    // The engine itself is refused by main from then on, and stops for good.
    expect(await within(d.agents.get('re')!.proc!.waitExit(), 10_000, 'the revoked engine to stop')).toBe(2);
  });

  it("host cut off from main when the engine is removed: the stolen engine's session ends within 10 s of the host's return, and its hellos are refused", async () => {
    await startEngine('pe', 'pt', 'direct');
    const statement = capturedStatement(engineTap, 'pe');
    // The engine's machine is stolen: its key and statement copied, the real engine stops.
    await d.agents.get('pe')!.proc!.stop();
    await until("pe's session to end", async () => (await d.engineSessions('pt')).length === 0, 15_000);
    const stolen = await dialAsEngine(engineDir('pe'), hostPort, statement);
    expect(await stolen.answered).toBe(true);
    await until(
      'the stolen session',
      async () => (await d.engineSessions('pt')).find((s) => s.name === 'pe' && s.transport === 'direct'),
      10_000,
    );
    // The host loses main; main removes pe meanwhile, and cannot tell the host.
    mainTap.refusing = true;
    mainTap.cutAll();
    await until('main to see the host offline', async () => !(await hostOnline()), 15_000);
    const r = await d.cli(['engines', 'remove', 'pe', '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(stolen.open).toBe(true); // the host has not heard yet
    mainTap.refusing = false;
    await until('the host back online', hostOnline, 60_000);
    const back = Date.now();
    expect(
      (await within(stolen.closed, 10_000, "the stolen session to end after the host's return")) - back,
    ).toBeLessThan(10_000);
    const again = await dialAsEngine(engineDir('pe'), hostPort, statement);
    expect(await again.answered).toBe(false);
    expect(await d.engineSessions('pt')).toEqual([]);
    expect(await revokedInAudit('pt', 'pe')).toMatchObject({ actor: 'main', outcome: 'ok' });
  });
});
