/**
 * A running main: registry, PKI, enrolment, agent gateway, outbox and the HTTPS API on one port.
 * `startMain` wires them; `close()` shuts down in order: stop accepting, tell agents to come back
 * later, drain HTTP, close the store. Commands in flight stay in the outbox for the next start.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import { errorMessage, UnavailableError } from '#common/errors.js';
import { createRootLogger, type LogDestination, type Logger } from '#common/logging.js';
import { tlsProfile } from '#common/tls-profile.js';
import { AGENT_DEREGISTER_EVENT } from '#common/protocol-version.js';
import { mainPaths } from './data-dir.js';
import { loadMainConfig, HELLO_TIMEOUT_MS, type MainConfig } from './config.js';
import { Registry } from './registry.js';
import { AuditLog } from './access/audit.js';
import { Enrolment } from './enrolment/enrolment.js';
import { AgentGateway } from './agents/gateway.js';
import { CommandOutbox } from './agents/outbox.js';
import { buildApp } from './http/app.js';
import { loadSigningKey } from './tenants/signing-key.js';
import { registerSystemRoutes } from './http/routes-system.js';
import { registerAgentRoutes } from './http/routes-agents.js';
import { registerInstallerRoutes } from './http/routes-installers.js';
import { registerTenantRoutes } from './http/routes-tenants.js';
import { registerSearchRoutes } from './http/routes-search.js';
import { registerEventSearchRoute } from './http/routes-search-events.js';
import { registerAccessRoutes } from './http/routes-access.js';
import { registerContentRoutes } from './http/routes-content.js';
import { registerContentTestRoute } from './http/routes-content-test.js';
import { integrationRules } from './content/integration-rules.js';
import { connectionRules } from './content/connection-rules.js';
import { tenantPlaces } from './content/scope-places.js';
import { scriptRules } from './content/script-rules.js';
import { playbookRules } from './content/playbook-rules.js';
import { automationRuleRules } from './content/rule-rules.js';
import { correlationRuleRules } from './content/rule-correlation-rules.js';
import { dependencyRules } from './content/dependency-rules.js';
import { ContentLibrary } from './content/library.js';
import { ContentPropagation } from './content/propagation.js';
import { MainRoles } from './access/roles.js';
import { AuthFailureThrottle, DEFAULT_THROTTLE } from './access/auth-throttle.js';
import { SecretBox } from './access/secret-box.js';
import { ConnectionGuard } from './agents/connection-guard.js';
import { ServerCertificate, serverCertNames } from './tls/server-certificate.js';
import { TicketKeys } from './tls/ticket-keys.js';
import { TenantService } from './tenants/tenants.js';
import { RpcClient } from './agents/rpc.js';
import { TunnelRouter } from './tunnels/router.js';
import { EngineRevocations } from './agents/engine-revocations.js';
import { deregisterAgent } from './agents/agent-admin.js';
import type { MainServices } from './services.js';
import { MainMetrics } from './metrics.js';
import { BackupSocket } from './backup/backup-socket.js';
import { ReleaseStore } from './agents/releases.js';
import { AgentUpgrades } from './agents/upgrades.js';
import { registerReleaseRoutes } from './http/routes-releases.js';
import { registerConsoleRoutes } from './http/console-static.js';
import { SessionStore } from './access/sessions.js';
import { registerSessionRoutes } from './http/routes-session.js';
import { registerCredentialRoutes } from './http/routes-credentials.js';
import { registerOverviewRoutes } from './http/routes-overview.js';

export interface StartOptions {
  data: string;
  port?: number;
  bind?: string;
  logLevel?: string;
  /** Default 'file' (DATA/logs/main.log); the service unit says 'stdout'. Ignored when `log` is given. */
  logTo?: LogDestination;
  log?: Logger;
  configOverrides?: Partial<MainConfig>;
}

export interface RunningMain {
  url: string;
  port: number;
  services: MainServices;
  close(): Promise<void>;
}

export async function startMain(opts: StartOptions): Promise<RunningMain> {
  const paths = mainPaths(resolve(opts.data));
  const config = Object.freeze({ ...(await loadMainConfig(paths.config)), ...opts.configOverrides });
  const file = opts.logTo === 'stdout' ? undefined : paths.logFile;
  const log = opts.log ?? createRootLogger({ file, level: opts.logLevel, name: 'main' });
  const registry = new Registry(paths.registry);
  try {
    await registry.open();
  } catch (e) {
    const locked = (e as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED';
    throw locked
      ? new UnavailableError('ERR_MAIN_ALREADY_RUNNING', `another main is already running on ${paths.dir}`)
      : e;
  }
  const [caPem, caKeyPem] = await Promise.all([paths.caCert, paths.caKey].map((p) => readFile(p, 'utf8')));
  const ca = { certPem: caPem, keyPem: caKeyPem };
  const tlsLog = log.child({ component: 'tls' });
  const serverCert = new ServerCertificate(paths, ca, serverCertNames(config.hostname), tlsLog);
  const { certPem, keyPem } = await serverCert.load();
  const ticketKeys = new TicketKeys(paths.ticketKeys, config.ticketKeyRotationMs, tlsLog);
  const ticketKey = await ticketKeys.load();
  const port = opts.port ?? config.port;
  const bind = opts.bind ?? config.bind;
  const signingKey = await loadSigningKey(paths.signingKey);
  const audit = new AuditLog(registry, log.child({ component: 'audit' }));
  const metrics = new MainMetrics();
  const authThrottle = new AuthFailureThrottle(
    { ...DEFAULT_THROTTLE, maxFailures: config.authFailuresPerMinute },
    Date.now,
    metrics,
  );
  const enrolment = new Enrolment(registry, ca, audit);
  const sessions = new SessionStore(registry);
  const secretBox = await SecretBox.load(paths.secretsKey);
  const limits = {
    maxFrameBytes: config.maxFrameBytes,
    heartbeatIntervalMs: config.heartbeatIntervalMs,
    deadPeerTimeoutMs: config.deadPeerTimeoutMs,
    helloTimeoutMs: HELLO_TIMEOUT_MS,
    signingPublicKey: signingKey.publicKeyBase64,
  };
  const gateway = new AgentGateway(
    registry,
    enrolment,
    audit,
    authThrottle,
    limits,
    log.child({ component: 'gateway' }),
    metrics,
  );
  const outbox = new CommandOutbox(
    registry,
    gateway,
    config.maxPendingCommands,
    Math.floor(config.maxFrameBytes / 2),
    log.child({ component: 'outbox' }),
    metrics,
  );
  await outbox.init();
  const tenants = new TenantService(registry, outbox, gateway, audit, signingKey, metrics);
  await tenants.init();
  const revocations = new EngineRevocations(registry, gateway, tenants);
  await revocations.init();
  const tunnels = new TunnelRouter(
    gateway,
    tenants,
    signingKey,
    audit,
    log.child({ component: 'tunnels' }),
    config.maxFrameBytes,
    revocations,
    config.directStatementTtlMs,
    metrics,
  );
  const releases = new ReleaseStore(paths.releases, signingKey);
  const upgrades = new AgentUpgrades(registry, outbox, releases, audit, log.child({ component: 'upgrades' }));
  await upgrades.init();
  metrics.observe({
    agentsByKind: () => gateway.connectedByKind(),
    pendingCommands: () => outbox.pendingTotal(),
    openRelayedSessions: () => tunnels.relay.openSessions(),
    tenants: async () => (await tenants.list()).map((t) => ({ host: t.host, status: t.status })),
  });
  gateway.events = {
    // A host learns the engines of its tenants main revoked while it was away before it admits any engine.
    welcomeExtras: (agent) => (agent.kind === 'host' ? { revokedEngines: revocations.forHost(agent.id) } : {}),
    onAgentReady: (id, hello, agent) => {
      if (agent)
        void upgrades
          .onHello(agent, hello)
          .catch((e: unknown) => log.error({ err: errorMessage(e), agentId: id }, 'recording the hello failed'));
      void outbox
        .flush(id)
        .catch((e: unknown) => log.error({ err: errorMessage(e), agentId: id }, 'outbox flush failed'));
    },
    onResult: (id, env) => {
      if (RpcClient.owns(env.replyTo)) tenants.rpc.onResult(id, env);
      else
        void outbox
          .onResult(id, env)
          .catch((e: unknown) => log.error({ err: errorMessage(e), agentId: id }, 'storing result failed'));
    },
    onEvent: (id, env) => {
      if (env.event?.type === AGENT_DEREGISTER_EVENT) {
        // services exists by then: events arrive only once main listens, after it is built below.
        void deregisterAgent(services, id).catch((e: unknown) =>
          log.error({ err: errorMessage(e), agentId: id }, 'deregistering an agent failed'),
        );
        return;
      }
      tenants.onHostEvent(id, env);
      tunnels.engineEvent(id, env);
    },
    onAgentGone: (id, agent) => {
      tenants.rpc.failAgent(id);
      tunnels.agentGone(id, agent);
    },
    onTunnel: (agent, env) => tunnels.route(agent, env),
  };

  // The public URL needs the bound port when --port 0 is used, so routes read it through the services object.
  const roles = new MainRoles(registry, audit);
  await roles.load();
  const content = new ContentLibrary(registry, audit, [
    roles,
    integrationRules,
    connectionRules(registry, tenantPlaces(tenants)),
    scriptRules,
    playbookRules,
    automationRuleRules,
    correlationRuleRules,
    dependencyRules(registry),
  ]);
  const services: MainServices = {
    config,
    publicUrl: config.publicUrl ?? `https://${config.hostname}:${port}`,
    caPem: bundleTrust(caPem, certPem),
    registry,
    audit,
    enrolment,
    gateway,
    outbox,
    tenants,
    revocations,
    roles,
    content,
    authThrottle,
    sessions,
    secretBox,
    relay: tunnels.relay,
    releases,
    upgrades,
    metrics,
    log,
  };
  const guard = new ConnectionGuard(config, log.child({ component: 'connections' }));
  const app = await buildApp({
    keyPem,
    certPem,
    caPem,
    ticketKeys: ticketKey,
    publicUrl: services.publicUrl,
    bodyLimit: config.bodyLimitBytes,
    registry,
    audit,
    roles: roles.lookup,
    throttle: authThrottle,
    sessions,
    timeouts: { handshakeMs: config.tlsHandshakeTimeoutMs, headersMs: config.headersTimeoutMs },
    onAuthenticated: (socket) => guard.authenticated(socket),
    log: log.child({ component: 'http' }),
  });
  const tlsServer = app.server as unknown as TlsServer;
  guard.attach(tlsServer);
  gateway.onAuthenticated = (socket) => guard.authenticated(socket);
  registerSystemRoutes(app, services);
  registerAgentRoutes(app, services);
  registerReleaseRoutes(app, services);
  registerInstallerRoutes(app, services);
  registerTenantRoutes(app, services);
  registerEventSearchRoute(app, services);
  registerAccessRoutes(app, services);
  registerSessionRoutes(app, services);
  registerCredentialRoutes(app, services);
  const overviewStreams = registerOverviewRoutes(app, services);
  const propagation = new ContentPropagation(content, tenants, log.child({ component: 'content' }));
  registerSearchRoutes(app, services, propagation);
  registerContentRoutes(app, content, propagation);
  registerContentTestRoute(app, content, tenants);
  registerConsoleRoutes(app);
  app.server.on('upgrade', (req, socket, head) => gateway.handleUpgrade(req, socket, head));
  try {
    await listen(app, port, bind);
  } catch (e) {
    await registry.close();
    throw new UnavailableError('ERR_LISTEN', `cannot listen on ${bind}:${port}: ${errorMessage(e)}`, { cause: e });
  }
  const actualPort = (app.server.address() as AddressInfo).port;
  if (!config.publicUrl) services.publicUrl = `https://${config.hostname}:${actualPort}`;
  const backupSocket = new BackupSocket(paths.dir, registry, audit, log.child({ component: 'backup' }));
  await backupSocket.start();
  gateway.start();
  propagation.start();
  // Renewed certificates and rotated ticket keys go into the running server: no restart, no dropped agent.
  // setSecureContext builds the context anew with the ticket key the server was created with unless told
  // otherwise: a renewal must keep the key in use now (and on file), not bring back the start-up one.
  let ticketKeyInUse = ticketKey;
  serverCert.start(config.serverCertCheckMs, (pair) =>
    tlsServer.setSecureContext({
      key: pair.keyPem,
      cert: pair.certPem,
      ca: caPem,
      ticketKeys: ticketKeyInUse,
      ...tlsProfile(),
    }),
  );
  ticketKeys.start((key) => {
    ticketKeyInUse = key;
    tlsServer.setTicketKeys(key);
  });
  log.info({ port: actualPort, bind }, 'main listening');

  let closing: Promise<void> | undefined;
  return {
    url: services.publicUrl,
    port: actualPort,
    services,
    close: () =>
      (closing ??= (async () => {
        log.info('main shutting down');
        serverCert.close();
        ticketKeys.close();
        guard.close();
        propagation.close();
        overviewStreams.close();
        await gateway.close();
        await app.close();
        await backupSocket.close();
        await registry.close();
        log.info('main stopped');
        log.flush();
      })()),
  };
}

async function listen(app: Awaited<ReturnType<typeof buildApp>>, port: number, bind: string): Promise<void> {
  try {
    await app.listen({ port, host: bind });
  } catch (e) {
    // '::' fails where IPv6 is off; all IPv4 interfaces is the next best default.
    if (bind === '::' && (e as { code?: string }).code === 'EAFNOSUPPORT') await app.listen({ port, host: '0.0.0.0' });
    else throw e;
  }
}

/**
 * What agents pin (the bundle's ca.pem): main's CA, which issues their client certificates and, by
 * default, main's server certificate — plus, when the admin brought their own server certificate, the
 * issuing chain found after the leaf in that PEM file (give the full chain up to your root).
 */
export function bundleTrust(caPem: string, serverCertPem: string): string {
  const certs = serverCertPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const chain = certs.slice(1).filter((c) => !caPem.includes(c));
  return [caPem.trim(), ...chain].join('\n') + '\n';
}
