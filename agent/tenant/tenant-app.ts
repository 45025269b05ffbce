/**
 * A tenant's HTTP app and directory layout: the signature guard in front of the SOC data routes.
 * The process around it is tenant-main.ts.
 */
import { join } from 'node:path';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { createRootLogger } from '#common/logging.js';
import { clientErrorHandler, frameworkErrors, installErrorHandlers } from '#common/http-errors.js';
import { installEmptyQueryRule } from '#common/http-input.js';
import { publicKeyFromBase64 } from '#common/signed-request.js';
import type { TenantStore } from './store.js';
import { installSignatureGuard } from './signature-guard.js';
import { installBodyParsers } from './body-parsers.js';
import { registerIncidentRoutes } from './incident-routes.js';
import { registerTunnelRoutes } from './tunnel-routes.js';
import { AccessStore } from './access-store.js';
import { AuditStore } from './audit-store.js';
import { registerAccessRoutes } from './access-routes.js';
import { registerCommandRoutes } from './command-routes.js';
import { ContentStore } from './content-store.js';
import { registerContentRoutes } from './content-routes.js';
import { RoleStore } from './role-store.js';
import { PersistentReplayCache } from './replay-store.js';
import { registerRoleRoutes } from './role-routes.js';
import { registerSyncRoutes } from './sync-routes.js';
import type { TunnelEndpoint } from './tunnel-endpoint.js';
import { ConnectionStore } from './connection-store.js';
import { registerConnectionResolveRoute, registerConnectionRoutes } from './connection-routes.js';
import { SharedConnections } from './shared-connections.js';
import { ConnectionResolver } from './connection-resolve.js';
import { IntegrationStore } from './integration-store.js';
import { IntegrationCatalog } from './integration-catalog.js';
import { IntegrationRunner } from './integration-runner.js';
import { registerIntegrationRoutes } from './integration-routes.js';
import { IncidentFetcher } from './incident-fetch.js';
import { FetchScheduler } from './fetch-scheduler.js';
import { registerScriptRoutes } from './scripts/script-routes.js';
import { IncidentTimeline } from './incident-timeline.js';
import { RunStore } from './playbooks/run-store.js';
import { PlaybookRunner } from './playbooks/playbook-runner.js';
import { registerPlaybookRoutes } from './playbooks/playbook-routes.js';
import { AutomationRules } from './playbooks/automation-rules.js';
import { registerRuleRoutes } from './playbooks/rule-routes.js';
import { createEventPipeline, type EventPipeline } from './events/event-pipeline.js';
import { registerEventRoutes } from './events/event-routes.js';
import { registerDomainRoutes } from './events/domain-routes.js';
import { Correlator } from './events/correlation.js';
import { ProfileStore } from './profiles.js';
import { installProfileScope } from './profile-scope.js';
import { registerProfileRoutes } from './profile-routes.js';
import { Obfuscation } from './events/obfuscation.js';
import { registerObfuscationRoutes } from './events/obfuscation-routes.js';
import { SiteStore } from './sites/site-store.js';
import { SitePurge } from './sites/site-purge.js';
import { registerSiteRoutes } from './sites/site-routes.js';

export interface TenantConfig {
  name: string;
  port: number;
  mainPublicKey: string;
  publicKey: string;
  createdAt: string;
}

export function tenantPaths(dir: string) {
  return {
    dir,
    config: join(dir, 'tenant.json'),
    key: join(dir, 'tenant-key.json'),
    store: join(dir, 'store'),
    log: join(dir, 'logs', 'tenant.log'),
  };
}

/** 8 MiB: room for a batch of 1 000 incidents; the relay's frame limit bounds what arrives via main anyway. */
const TENANT_BODY_LIMIT = 8 * 1024 * 1024;

export async function buildTenantApp(
  cfg: TenantConfig,
  store: TenantStore,
  log: ReturnType<typeof createRootLogger>,
  keys: { publicKey: Uint8Array; secretKey: Uint8Array },
  tunnels?: TunnelEndpoint,
  events: EventPipeline = createEventPipeline({ db: store.db, log: log.child({ component: 'events' }) }),
): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: TENANT_BODY_LIMIT,
    routerOptions: { maxParamLength: 256 },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    frameworkErrors,
    clientErrorHandler,
  }) as unknown as FastifyInstance;
  // First: `?domain=&q=` is no domain and no q for every later hook and schema; main's relay forwards the URL
  // as it came (its signature covers it), so the tenant applies the rule itself (common/http-input.ts).
  installEmptyQueryRule(app);
  const access = new AccessStore(store.db, cfg.name);
  const audit = new AuditStore(store.db);
  const content = new ContentStore(store.db);
  const roles = new RoleStore(store.db, content);
  await roles.load();
  content.onSharedRoleChange = () => roles.loadShared();
  const replay = new PersistentReplayCache(store.db);
  await replay.open();
  app.addHook('onClose', async () => replay.close());
  installBodyParsers(app); // before the guard: it checks main's signature over the exact body bytes
  installSignatureGuard(app, {
    tenant: cfg.name,
    mainKey: publicKeyFromBase64(cfg.mainPublicKey),
    log,
    roles,
    replay,
    access,
    audit,
  });
  const profiles = new ProfileStore(store.db);
  await profiles.load();
  const late: { runs?: RunStore } = {}; // the run store opens further down
  // Before the routes: it learns the scoped routes as they are added (profile-scope.ts).
  installProfileScope(app, { profiles, store, runs: () => late.runs });
  app.get(
    '/api/v1/audit',
    {
      config: { tenantPermission: 'audit:read' },
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'string', pattern: '^[0-9]{1,5}$' }, action: { type: 'string', maxLength: 64 } },
        },
      },
    },
    async (req) => {
      const q = req.query as { limit?: string; action?: string };
      return audit.list(Math.min(10_000, Number(q.limit ?? 100) || 100), q.action);
    },
  );
  registerAccessRoutes(app, access, roles, profiles);
  registerProfileRoutes(app, { profiles, access, config: events.config });
  registerRoleRoutes(app, roles, access);
  registerSyncRoutes(app, access, roles);
  const sites = new SiteStore(store.db);
  registerIncidentRoutes(app, store, cfg.name, keys.publicKey, sites);
  const connections = new ConnectionStore(store.db, cfg.name, keys.secretKey);
  const shared = new SharedConnections(store.db, cfg.name, keys.secretKey);
  content.sharedConnections = shared;
  const resolver = new ConnectionResolver(cfg.name, connections, shared, sites);
  registerConnectionResolveRoute(app, resolver); // before /connections/:name, so `resolve` is this route
  registerConnectionRoutes(app, connections, cfg.name, keys.secretKey);
  const instances = new IntegrationStore(store.db);
  const catalog = new IntegrationCatalog(content);
  const runner = new IntegrationRunner(cfg.name, keys.secretKey, instances, catalog, resolver, tunnels);
  const fetcher = new IncidentFetcher(store, instances, catalog, runner, log.child({ component: 'fetch' }));
  const scheduler = new FetchScheduler(fetcher, instances, log.child({ component: 'fetch' }));
  app.addHook('onClose', async () => {
    await scheduler.close();
    await fetcher.close();
  });
  registerIntegrationRoutes(app, {
    instances,
    catalog,
    connections: resolver,
    runner,
    fetcher,
    scheduler,
    ...(tunnels ? { engines: () => tunnels.engines() } : {}),
  });
  registerScriptRoutes(app, { content, store, runner, audit });
  const timeline = new IncidentTimeline(store.db, (id) => store.createdSinceOpen(id));
  const runs = new RunStore(store.db);
  await runs.open();
  late.runs = runs;
  const runnerDeps = {
    runs,
    timeline,
    store,
    content,
    integrations: runner,
    instances,
    catalog,
    audit,
    log: log.child({ component: 'playbooks' }),
  };
  const playbooks = new PlaybookRunner(runnerDeps);
  const rules = new AutomationRules({
    db: store.db,
    content,
    runner: playbooks,
    timeline,
    log: log.child({ component: 'rules' }),
  });
  store.onCreate = rules;
  app.addHook('onClose', async () => {
    await rules.close();
    await playbooks.close();
  });
  registerPlaybookRoutes(app, { runner: playbooks, runs, timeline, store, deps: runnerDeps, sites });
  registerRuleRoutes(app, rules);
  registerSiteRoutes(app, sites, new SitePurge({ store, runs, runner: playbooks, timeline, rules }));
  registerCommandRoutes(app, store);
  const correlator = new Correlator({ content, store, log: log.child({ component: 'correlation' }) });
  events.stages.afterStore = (stored) => correlator.observe(stored); // rules of type `rule` (events/correlation.ts)
  events.stages.observes = () => correlator.observes();
  const obfuscation = new Obfuscation(store.db);
  await obfuscation.load();
  events.stages.rewrites = () => obfuscation.active;
  events.stages.beforeStore = (e) => obfuscation.apply(e); // values sealed before the store (events/obfuscation.ts)
  await events.start(); // the syslog batches of its engines (events/event-pipeline.ts), and retention
  app.addHook('onClose', async () => {
    await events.close();
    await correlator.close();
  });
  registerEventRoutes(app, events);
  registerDomainRoutes(app, events, profiles);
  registerObfuscationRoutes(app, obfuscation, events);
  registerContentRoutes(app, content, sites);
  if (tunnels) {
    tunnels.audit = audit; // refused inbound tunnel streams go to this same log
    tunnels.events.sink = events; // engines' syslog batches (events.batch over their sessions)
    registerTunnelRoutes(app, tunnels);
  }
  installErrorHandlers(app);
  await fetcher.start();
  await scheduler.start();
  await playbooks.resume(); // runs the tenant was in the middle of go on (playbook-runner.ts says how)
  void rules.drain(); // rules recorded pending with their incident, whose run was not stored yet, start now
  return app;
}
