/**
 * The tenant process: one customer's self-contained Palisade instance. Started by its host as a child
 * (`node tenant-main.js --dir DIR`), it opens its own LevelDB, serves its API on its loopback port, and
 * acts only on requests signed by main for this tenant. It tells its host "ready" over IPC (agent/tenant-ipc.ts).
 */
import { readFile } from 'node:fs/promises';
import { createRootLogger } from '#common/logging.js';
import { UnavailableError, errorMessage } from '#common/errors.js';
import { TenantStore } from './store.js';
import { TunnelEndpoint } from './tunnel-endpoint.js';
import { publicKeyFromBase64 } from '#common/signed-request.js';
import { buildTenantApp, tenantPaths, type TenantConfig } from './tenant-app.js';
import { USAGE_REPORT_MS, onHostMessages, toHost } from '../tenant-ipc.js';
import { allowLocalTargets, loopbackAllowFromEnv } from '../integrations/target-guard.js';
import { createEventPipeline } from './events/event-pipeline.js';
import { EventRate } from './events/event-rate.js';

/** Longer than the host's own wait for the other tenants (2 s), so the host answers first. */
const LISTENER_CONFIRM_MS = 5_000;

async function main(): Promise<void> {
  const dirArg = process.argv.indexOf('--dir');
  if (dirArg < 0 || !process.argv[dirArg + 1]) throw new Error('usage: tenant-main --dir DIR');
  const paths = tenantPaths(process.argv[dirArg + 1]);
  // The host's own ports its operator lets integrations reach (agent.json integrationLoopbackAllow), else none.
  allowLocalTargets(loopbackAllowFromEnv());
  const cfg = JSON.parse(await readFile(paths.config, 'utf8')) as TenantConfig;
  const log = createRootLogger({ file: paths.log, name: 'tenant' }).child({ tenant: cfg.name });
  const store = new TenantStore(paths.store);
  await store.open();
  const keyPair = JSON.parse(await readFile(paths.key, 'utf8')) as { publicKey: string; secretKey: string };
  const keys = {
    publicKey: Buffer.from(keyPair.publicKey, 'base64'),
    secretKey: Buffer.from(keyPair.secretKey, 'base64'),
  };
  const tunnels = new TunnelEndpoint(
    cfg.name,
    keys,
    publicKeyFromBase64(cfg.mainPublicKey),
    (engineId, record) => {
      toHost.tunnel(engineId, record);
    }, // the host gone: nobody to relay to
    log.child({ component: 'tunnels' }),
  );
  // The host keeps every tenant's outbound listeners and sends back the others' ports (cross-tenant check);
  // a report is answered once the other tenants hold it, and a new listener serves nothing before.
  const listenerWaits = new Map<number, () => void>();
  let listenerSeq = 0;
  tunnels.onOutboundListeners = (listen) =>
    new Promise<void>((resolve, reject) => {
      if (!process.connected) {
        resolve();
        return;
      } // no host, no other tenants to protect
      const seq = ++listenerSeq;
      const timer = setTimeout(() => {
        listenerWaits.delete(seq);
        reject(new UnavailableError('ERR_TUNNEL_UNCONFIRMED', 'the host did not confirm the new tunnel listener'));
      }, LISTENER_CONFIRM_MS);
      listenerWaits.set(seq, () => {
        clearTimeout(timer);
        resolve();
      });
      toHost.listeners(listen, seq);
    });
  // The host's messages (agent/tenant-ipc.ts): tunnel records from engines (binary as is), direct connections, port
  // sets.
  onHostMessages(
    {
      // Main's list of our revoked engines, passed on by the host: their sessions end, their hellos are refused.
      enginesRevoked: (m) => tunnels.setRevoked(m.engineIds),
      foreignPorts: (m) => {
        tunnels.setForeignPorts(m.ports);
        toHost.foreignPortsHeld(m.version);
      },
      listenersOk: (m) => {
        const w = listenerWaits.get(m.seq);
        if (w) {
          listenerWaits.delete(m.seq);
          w();
        }
      },
      // An engine's direct connection, its preamble checked by the host (and again by the endpoint).
      tunnelDirect: (m, socket) => tunnels.onDirect(m.preamble, m.head, socket),
      tunnel: (m) => tunnels.onRecord(m), // empty record = engine gone
      stop: () => stop(),
    },
    log.child({ component: 'ipc' }),
  );
  // Where engines' syslog batches go (EventSink): the engine session's transport calls events.ingest(batch).
  const events = createEventPipeline({ db: store.db, log: log.child({ component: 'events' }) });
  const app = await buildTenantApp(cfg, store, log, keys, tunnels, events);
  await app.listen({ port: cfg.port, host: '127.0.0.1' });
  log.info({ port: cfg.port }, 'tenant serving');
  toHost.ready(cfg.port, process.pid);
  const usage = reportUsage(new EventRate(() => events.stored));
  let stopping = false;
  function stop(): void {
    if (stopping) process.exit(130);
    stopping = true;
    clearInterval(usage);
    tunnels.close();
    void app
      .close()
      .then(() => store.close())
      .then(
        () => {
          log.info('tenant stopped');
          log.flush();
          process.exit(0);
        },
        () => process.exit(1),
      );
  }
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // The host owns our lifetime: if it goes away without a signal, stop cleanly rather than linger orphaned.
  process.on('disconnect', stop);
}

/**
 * Tells the host this process's CPU time, RSS and event counts now and every USAGE_REPORT_MS (it cannot see our
 * /proc, and counts no events: they reach us from engines over sealed sessions it only relays).
 */
function reportUsage(events: EventRate): NodeJS.Timeout {
  const send = () => {
    const cpu = process.cpuUsage();
    toHost.usage({
      cpuMicros: cpu.user + cpu.system,
      uptimeMs: Math.round(process.uptime() * 1000),
      rssBytes: process.memoryUsage.rss(),
      events: events.sample(),
    });
  };
  send();
  return setInterval(send, USAGE_REPORT_MS).unref();
}

main().catch((e: unknown) => {
  process.stderr.write(`tenant failed to start: ${errorMessage(e)}\n`);
  toHost.failed(errorMessage(e), (e as { code?: unknown }).code);
  process.exit(1);
});
