/**
 * Outbound tunnels end to end with real processes: a client on the MSSP side reaches a service inside
 * the "customer network" only through the tenant's engine, only for allow-listed destinations, with the
 * engine ⇄ tenant session encrypted so main and the host relay only ciphertext. Run once per path
 * (tunnels.test.ts: direct engine ⇄ host connection, tunnels-relay.test.ts: relayed through main), with
 * the wire captured where that path's bytes travel: at main (relay) or on the engine ⇄ host TCP
 * connection itself (direct, through a forwarding tap the host advertises).
 *
 * This module is the suite's one deployment and the order of its parts: the tests themselves are in
 * tunnel-outbound-suite.ts (outbound tunnels, the engine group), tunnel-inbound-suite.ts and
 * tunnel-engine-commands-suite.ts, which share the deployment set up here (one per test file) and run in
 * the order registered, since later tests build on earlier ones (the tunnels they opened, the engine they add).
 */
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { createServer as createTcpServer } from 'node:net';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { Deployment, type EngineSession } from '../harness/deployment.js';
import { freePort, tempDir } from '../harness/processes.js';
import { TcpTap } from '../harness/tcp-tap.js';
import { engineCommandTests } from './tunnel-engine-commands-suite.js';
import { inboundTunnelTests } from './tunnel-inbound-suite.js';
import { engineGroupTests, outboundTunnelTests } from './tunnel-outbound-suite.js';

export type TunnelPath = 'direct' | 'relay';

/** What the suite's parts share: set up in beforeAll, so read only inside tests (except `path`). */
export interface TunnelWorld {
  readonly path: TunnelPath;
  d: Deployment;
  /** An HTTP service inside the customer network: the secret body on any path, 8 MiB of byte 7 on /big. */
  targetPort: number;
  /** A free port no engine is allowed to dial. */
  forbiddenPort: number;
  /** A service that accepts and holds connections open: for streams that must end when their engine dies. */
  holdPort: number;
  /** Where main writes every tunnel record it relays: [direction][length][record]… */
  tapFile: string;
  /** The capture on the direct engine ⇄ host connection (direct path only). */
  wireTap?: TcpTap;
  /** What the target answers: it must never show up in the clear at main, at the host or on the wire. */
  readonly secretBody: string;
  /** Starts an engine of the tenant `cust`, allowed to dial the target and the hold service. */
  startEngine(name: string): Promise<EngineSession>;
}

export interface AuditRow {
  actor: string;
  action: string;
  target?: string;
  outcome: string;
  detail?: Record<string, unknown>;
}

export function tunnelSuite(path: TunnelPath): void {
  let target: Server;
  let hold: ReturnType<typeof createTcpServer>;
  let tapDir = '';
  const w: TunnelWorld = {
    path,
    d: undefined as never,
    targetPort: 0,
    forbiddenPort: 0,
    holdPort: 0,
    tapFile: '',
    secretBody: `customer-internal-${randomBytes(8).toString('hex')}`,
    startEngine: (name) =>
      w.d.startEngine(name, 'cust', { allow: [`127.0.0.1:${w.targetPort}`, `127.0.0.1:${w.holdPort}`] }),
  };

  beforeAll(async () => {
    target = createServer((req, res) => {
      if (req.url === '/big') {
        res.end(Buffer.alloc(8 * 1024 * 1024, 7));
        return;
      }
      res.end(w.secretBody);
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    w.targetPort = (target.address() as { port: number }).port;
    w.forbiddenPort = await freePort();
    hold = createTcpServer((sock) => sock.on('error', () => undefined));
    await new Promise<void>((r) => hold.listen(0, '127.0.0.1', r));
    w.holdPort = (hold.address() as { port: number }).port;
    tapDir = await tempDir();
    w.tapFile = join(tapDir, 'tunnel-tap.bin');
    w.d = await Deployment.create({ mainEnv: { PALISADE_TUNNEL_TAP: w.tapFile } });
    // Set at install, as an operator would (`agent install --engine-listen/--engine-advertise`).
    if (path === 'relay') await w.d.install('host', 'th', ['--engine-listen', 'off']);
    else {
      // The host listens on a known port and tells engines to dial the tap in front of it: a wire capture.
      const hostPort = await freePort();
      w.wireTap = new TcpTap(hostPort);
      await w.d.install('host', 'th', [
        '--engine-listen',
        `127.0.0.1:${hostPort}`,
        '--engine-advertise',
        `127.0.0.1:${await w.wireTap.start()}`,
      ]);
    }
    await w.d.startAgent('th');
    await w.d.createTenant('cust', 'th');
    const te1 = await w.startEngine('te1');
    // The session runs on the path under test.
    expect(te1.transport).toBe(path);
  });
  afterAll(async () => {
    await w.d?.stop();
    target?.close();
    hold?.close();
    w.wireTap?.close();
    if (tapDir) await rm(tapDir, { recursive: true, force: true });
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(w.d.logs());
  });

  outboundTunnelTests(w);
  inboundTunnelTests(w);
  engineCommandTests(w);
  engineGroupTests(w);
}
