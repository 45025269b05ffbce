/**
 * Tunnel data flow and session admission end to end, with real processes and sockets: many parallel
 * streams where one slow reader must not stall the others or make anyone buffer without bound; bulk
 * transfers that arrive bit-exact both ways; and engines that may not get a session at all (a wrong
 * tenant key in the config, a copied certificate without the enrolled box key). Run once per path:
 * tunnel-flow.test.ts (direct engine ⇄ host connection) and tunnel-flow-relay.test.ts (through main).
 *
 * This module is the suite's one deployment and the order of its parts: the tests are in
 * tunnel-flow-data-suite.ts (flow control, bulk transfer) and tunnel-admission-suite.ts, which share the
 * deployment set up here (one per test file); the services behind the tunnels are
 * test/harness/tunnel-flow-services.ts.
 */
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { readLog } from '../harness/processes.js';
import { FlowServices } from '../harness/tunnel-flow-services.js';
import { openTunnel } from '../harness/tunnel-hold.js';
import { sessionAdmissionTests } from './tunnel-admission-suite.js';
import { BULK_BYTES, bulkTransferTests, flowControlTests } from './tunnel-flow-data-suite.js';

export type FlowPath = 'direct' | 'relay';

/** What the suite's parts share: set up in beforeAll, so read only inside tests (except `path`, `tenant`). */
export interface FlowWorld {
  readonly path: FlowPath;
  readonly tenant: string;
  d: Deployment;
  /** The services inside the customer network, and what they served and received so far. */
  readonly services: FlowServices;
  /** The tunnel listener in front of each service; clients only ever connect to these. */
  readonly tunnelPort: Record<'stream' | 'bulk' | 'sink', number>;
  /** The engines' allow-list: exactly the services. */
  readonly allow: string[];
  /** The tenant process's own log (the harness does not know where tenants log). */
  tenantLog(): string;
}

export function flowSuite(path: FlowPath): void {
  let hostDir = '';
  const w: FlowWorld = {
    path,
    tenant: 'flow',
    d: undefined as never,
    services: new FlowServices(BULK_BYTES),
    tunnelPort: { stream: 0, bulk: 0, sink: 0 },
    allow: [],
    tenantLog: () => join(hostDir, 'tenants', w.tenant, 'logs', 'tenant.log'),
  };
  /** The deployment's logs plus the tenant's own. */
  const allLogs = async () => `${w.d.logs()}\n--- tenant ${w.tenant}\n${(await readLog(w.tenantLog())).slice(-20_000)}`;

  beforeAll(async () => {
    // The services "inside the customer network"; the engines' allow-list names exactly these.
    const service = await w.services.start();
    w.allow.push(...Object.values(service).map((p) => `127.0.0.1:${p}`));
    w.d = await Deployment.create();
    hostDir = await w.d.install('host', 'fh');
    if (path === 'relay') w.d.configure('fh', { engineListen: 'off' });
    await w.d.startAgent('fh');
    await w.d.createTenant(w.tenant, 'fh');
    const fe1 = await w.d.startEngine('fe1', w.tenant, { allow: w.allow }).catch(async (e: unknown) => {
      console.error(await allLogs());
      throw e;
    });
    expect(fe1.transport).toBe(path);
    // One tunnel listener in front of each service; clients only ever connect to these.
    w.tunnelPort.stream = await openTunnel(w.d, w.tenant, service.stream);
    w.tunnelPort.bulk = await openTunnel(w.d, w.tenant, service.bulk);
    w.tunnelPort.sink = await openTunnel(w.d, w.tenant, service.sink);
  });
  afterAll(async () => {
    await w.d?.stop();
    w.services.close();
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(await allLogs());
  });

  flowControlTests(w);
  bulkTransferTests(w);
  sessionAdmissionTests(w);
}
