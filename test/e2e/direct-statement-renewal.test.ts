/**
 * A direct engine ⇄ host session lives only as long as main's statement about the engine, with real
 * processes and statements of a few seconds (main.json directStatementTtlMs): the engine renews its
 * statement halfway through its life and hands it to the tenant over the session (renewal records on the
 * wire), so a session outlives many statements. An engine that brings no fresh statement — here one in
 * an attacker's hands, with the real engine's key and the newest statement seen on the wire, which main
 * never hears of and so never tells anyone about — loses its session when that statement expires: a
 * session cannot outlive its statement by more than one renewal period, whether or not the tenant hears
 * anything from main. (An engine whose own connection to main drops loses its session at once: main tells
 * the tenant it is gone.)
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Server } from 'node:net';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { freePort, readLog, until } from '../harness/processes.js';
import { TcpTap, directRecords } from '../harness/tcp-tap.js';
import { echoServer, holdThrough, openTunnel, within, type Held } from '../harness/tunnel-hold.js';
import { capturedStatement, dialAsEngine } from '../harness/rogue-engine.js';
import { RECORD_RENEWAL } from '../../agent/tunnel/tunnel-records.js';

/** Statements last 8 s: the engine renews every 4 s. */
const TTL_MS = 8_000;
const RENEWAL_PERIOD_MS = TTL_MS / 2;

let d: Deployment;
let echo: Server;
let echoPort = 0;
/** In front of the host's engine port: the direct connection's bytes. */
let engineTap: TcpTap;
let hostPort = 0;
/** Between the engine and main: refusing, the engine is cut off from main. */
let mainTap: TcpTap;
let tunnelPort = 0;
let held: Held;

const sessions = () => d.engineSessions('nt');
const tenantLog = () => join(d.agents.get('nh')!.dir, 'tenants', 'nt', 'logs', 'tenant.log');

beforeAll(async () => {
  ({ server: echo, port: echoPort } = await echoServer());
  d = await Deployment.create({ mainConfig: { directStatementTtlMs: TTL_MS } });
  hostPort = await freePort();
  engineTap = new TcpTap(hostPort);
  await d.install('host', 'nh');
  d.configure('nh', { engineListen: `127.0.0.1:${hostPort}`, engineAdvertise: `127.0.0.1:${await engineTap.start()}` });
  await d.startAgent('nh');
  await d.createTenant('nt', 'nh');
  mainTap = new TcpTap(d.port);
  await mainTap.start();
  await d.startEngine('ne', 'nt', {
    allow: [`127.0.0.1:${echoPort}`],
    config: { mainUrls: [`https://127.0.0.1:${mainTap.port}`] },
    transport: 'direct',
  });
  tunnelPort = await openTunnel(d, 'nt', echoPort);
});
afterAll(async () => {
  held?.sock.destroy();
  await d?.stop();
  echo?.close();
  engineTap?.close();
  mainTap?.close();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe("a direct session and main's statement", () => {
  it('renewals keep the session past many statements: the same session and connection after 2.5 statement lifetimes', async () => {
    const first = (await sessions())[0];
    held = await holdThrough(tunnelPort);
    const until25 = Date.now() + 2.5 * TTL_MS;
    while (Date.now() < until25) {
      expect((await sessions()).map((s) => s.since)).toEqual([first.since]);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(held.open).toBe(true);
    const echoed = new Promise<string>((r) => held.sock.once('data', (c: Buffer) => r(c.toString())));
    held.sock.write('again');
    expect(await within(echoed, 5_000, 'the echo')).toBe('again');
    const up = directRecords(Buffer.concat(engineTap.connections.at(-1)!.toHost), true);
    expect(up.filter((r) => r[0] === RECORD_RENEWAL).length).toBeGreaterThanOrEqual(3);
  });

  it('a session whose statement is not renewed ends when the statement expires, and the tenant log says why', async () => {
    // The engine's machine is copied: its key, and the newest statement main made for it (just renewed).
    const statement = await until(
      'a fresh statement on the wire',
      () => {
        const st = capturedStatement(engineTap, 'ne');
        return st.expiresAtMs - Date.now() > 0.8 * TTL_MS ? st : undefined;
      },
      2 * TTL_MS,
      50,
    );
    // The real engine loses main (and with it, as main tells the tenant, its session); it cannot start another.
    mainTap.refusing = true;
    mainTap.cutAll();
    await until("the real engine's session to end", async () => (await sessions()).length === 0, 10_000);
    await within(held.closed, 5_000, 'the tunnel connection to end');
    const logFrom = (await readLog(tenantLog())).length;
    const stolen = await dialAsEngine(d.agents.get('ne')!.dir, hostPort, statement);
    expect(await stolen.answered).toBe(true);
    expect((await sessions()).map((s) => s.name)).toEqual(['ne']);
    // Nobody renews it: the tenant ends it at the statement's expiry, whatever main says or does not.
    const ended = await within(stolen.closed, TTL_MS + RENEWAL_PERIOD_MS, 'the unrenewed session to end');
    expect(ended).toBeGreaterThanOrEqual(statement.expiresAtMs - 1_000);
    expect(ended).toBeLessThan(statement.expiresAtMs + RENEWAL_PERIOD_MS);
    expect(await sessions()).toEqual([]);
    expect((await readLog(tenantLog())).slice(logFrom)).toContain(
      "engine session ended: main's statement for it expired without renewal",
    );
    // Back in touch with main, the real engine gets a new session, and tunnels work again.
    mainTap.refusing = false;
    await until('a new direct session', async () => (await sessions()).some((s) => s.transport === 'direct'), 60_000);
    (await holdThrough(tunnelPort)).sock.destroy();
  });
});
