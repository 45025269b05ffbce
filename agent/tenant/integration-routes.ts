/**
 * A tenant's integrations API (`/api/v1/integrations`, reached through main as `/api/v1/tenants/T/api/
 * integrations`): instances are created, listed, shown and removed; `POST …/:inst/test` checks an instance
 * works (for aws: GetCallerIdentity) and `POST …/:inst/run {"command","args"}` runs one command. Every run and
 * test is audited with its caller, command, recordable args, outcome and duration, never the result.
 * `show` answers the tenant's AWS ExternalId for the customer's trust policy. Not running: integration-runner.ts.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NAME_PARAMS, NAME_PATTERN } from '#common/names.js';
import { BadParameterError, isPalisadeError } from '#common/errors.js';
import { describedPattern } from '#common/pattern-text.js';
import type { ConnectionResolver } from './connection-resolve.js';
import { checkConnectionFits, type IntegrationCatalog } from './integration-catalog.js';
import type { IntegrationStore, IntegrationInstance } from './integration-store.js';
import { auditableArgs, type IntegrationRunner } from './integration-runner.js';
import type { IncidentFetcher } from './incident-fetch.js';
import type { FetchScheduler } from './fetch-scheduler.js';
import { parseRunOn } from './tunnels/engine-target.js';
import {
  FETCH_BODY_PROPERTIES,
  fetchSettings,
  registerFetchRoutes,
  type FetchSettings,
} from './integration-fetch-routes.js';

const NAME = NAME_PATTERN.slice(1, -1);
/** Where an instance runs: the tenant itself, one engine, or a group of engines. */
const RUN_ON_PATTERN = describedPattern(
  `^(?:tenant|engine:${NAME}|group:${NAME})$`,
  'tenant, engine:NAME or group:NAME (NAME an engine or engine group name)',
);
/** The command each integration's test runs. */
const TEST_COMMANDS: Readonly<Record<string, { command: string; args?: Record<string, unknown> }>> = {
  aws: { command: 'sts.get-caller-identity' },
  http: { command: 'request', args: { method: 'GET', path: '/' } },
};

const by = (req: FastifyRequest) => req.caller?.name || req.caller?.id || '';

export interface IntegrationServices {
  instances: IntegrationStore;
  catalog: IntegrationCatalog;
  connections: Pick<ConnectionResolver, 'get'>;
  runner: IntegrationRunner;
  fetcher: IncidentFetcher;
  scheduler: FetchScheduler;
  /** The engines with a session now (TunnelEndpoint.engines), to warn of a `runOn` no engine answers to yet. */
  engines?: () => { name: string; group: string | null }[];
}

export function registerIntegrationRoutes(app: FastifyInstance, s: IntegrationServices): void {
  app.get('/api/v1/integrations', { config: { tenantPermission: 'integrations:read' } }, async () =>
    Promise.all((await s.instances.list()).map((i) => withLastFetch(s, i))),
  );
  app.get(
    '/api/v1/integrations/:name',
    { config: { tenantPermission: 'integrations:read' }, schema: { params: NAME_PARAMS } },
    async (req) => show(s, await s.instances.get((req.params as { name: string }).name)),
  );

  app.post(
    '/api/v1/integrations',
    {
      config: { tenantPermission: 'integrations:write' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'integration', 'connection'],
          properties: {
            name: { type: 'string', pattern: NAME_PATTERN },
            integration: { type: 'string', minLength: 1, maxLength: 63 },
            connection: { type: 'string', pattern: NAME_PATTERN },
            runOn: { type: 'string', pattern: RUN_ON_PATTERN },
            ...FETCH_BODY_PROPERTIES,
          },
        },
      },
    },
    async (req, reply) => reply.code(201).send(await create(s, req)),
  );

  app.delete(
    '/api/v1/integrations/:name',
    { config: { tenantPermission: 'integrations:write' }, schema: { params: NAME_PARAMS } },
    async (req) => {
      const name = (req.params as { name: string }).name;
      const removed = await s.instances.remove(name);
      s.scheduler.remove(name);
      await s.fetcher.forget(removed);
      req.auditAs = { action: 'integration.remove', target: name };
      return { name, deleted: true };
    },
  );

  registerRunRoutes(app, s);
  registerFetchRoutes(app, s.scheduler);
}

/** Running: one command, or the integration's test command; both audited whatever their outcome. */
function registerRunRoutes(app: FastifyInstance, s: IntegrationServices): void {
  app.post(
    '/api/v1/integrations/:name/run',
    {
      config: { tenantPermission: 'integrations:run' },
      schema: {
        params: NAME_PARAMS,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['command'],
          properties: {
            command: { type: 'string', minLength: 1, maxLength: 128 },
            args: { type: 'object' },
            // Main's fan-out sets it (main/search/fanout.ts): only a read-only command may then run.
            fanout: { type: 'boolean' },
          },
        },
      },
    },
    async (req) => {
      const b = req.body as { command: string; args?: Record<string, unknown>; fanout?: boolean };
      const fanout = b.fanout === true ? { fanout: true } : {};
      return audited(req, 'integration.run', b.command, b.args, fanout, () =>
        s.runner.run((req.params as { name: string }).name, b.command, b.args, { readOnly: b.fanout === true }),
      );
    },
  );

  app.post(
    '/api/v1/integrations/:name/test',
    { config: { tenantPermission: 'integrations:run' }, schema: { params: NAME_PARAMS } },
    async (req) => {
      const name = (req.params as { name: string }).name;
      const instance = await s.instances.get(name);
      const def = await s.catalog.resolve(instance.integration);
      const t = TEST_COMMANDS[def.connectionType];
      return audited(req, 'integration.test', t.command, t.args, {}, () => s.runner.run(name, t.command, t.args));
    },
  );
}

/** An instance whose integration and connection resolve, and agree on the connection's type. */
async function create(s: IntegrationServices, req: FastifyRequest) {
  const b = req.body as { name: string; integration: string; connection: string; runOn?: string } & FetchSettings;
  const def = await s.catalog.resolve(b.integration);
  const c = await s.connections.get(b.connection).catch((e: unknown) => {
    if (isPalisadeError(e) && e.code === 'ERR_CONNECTION_NOT_FOUND')
      throw new BadParameterError('ERR_INTEGRATION_CONNECTION', `connection: no connection "${b.connection}"`, {
        field: 'connection',
      });
    throw e;
  });
  checkConnectionFits(c, def);
  const runOn = b.runOn ?? 'tenant';
  const fetch = fetchSettings(def, b);
  const i = await s.instances.create(
    { name: b.name, integration: def.name, connection: c.name, runOn, ...fetch },
    by(req),
  );
  if (i.fetchIncidents) await s.scheduler.add(i);
  req.auditAs = {
    action: 'integration.create',
    target: i.name,
    detail: { integration: i.integration, connection: i.connection, runOn, ...recordable(fetch) },
  };
  const warnings = runOnWarnings(s, runOn);
  return { ...(await show(s, i)), ...(warnings.length ? { warnings } : {}) };
}

/**
 * What to tell the creator of an instance bound to an engine or group that has no session with this tenant now: a
 * typo, or another tenant's engine, would otherwise be taken silently and fail at the first run as if an engine were
 * down. Not refused: an engine may be installed after its instances are made, and the tenant knows only live ones.
 */
function runOnWarnings(s: IntegrationServices, runOn: string): string[] {
  if (runOn === 'tenant' || !s.engines) return [];
  const t = parseRunOn(runOn);
  if (s.engines().some((e) => (t.engine ? e.name === t.engine : e.group === t.group))) return [];
  return [
    `runOn: no engine ${t.engine ? `named ${t.engine}` : `of group ${t.group}`} has a session with this tenant now; ` +
      "runs fail until one connects (an engine installed for this tenant: 'palisade engines')",
  ];
}

/** Runs `fn`, naming the call in the audit line whatever its outcome (the guard adds caller and status). */
async function audited<T extends { durationMs: number; engine?: string }>(
  req: FastifyRequest,
  action: string,
  command: string,
  args: unknown,
  extra: Record<string, unknown>,
  fn: () => Promise<T>,
): Promise<T> {
  const target = (req.params as { name: string }).name;
  const started = performance.now();
  try {
    const r = await fn();
    const where = r.engine ? { engine: r.engine } : {};
    req.auditAs = {
      action,
      target,
      detail: { command, args: auditableArgs(args), ...extra, durationMs: r.durationMs, ...where },
    };
    return r;
  } catch (e) {
    const durationMs = Math.round(performance.now() - started);
    req.auditAs = { action, target, detail: { command, args: auditableArgs(args), ...extra, durationMs } };
    throw e;
  }
}

/** An instance with its definition's commands, and the tenant's ExternalId where AWS is involved. */
async function show(s: IntegrationServices, i: IntegrationInstance) {
  const def = await s.catalog.resolve(i.integration).catch(() => undefined);
  return {
    ...(await withLastFetch(s, i)),
    ...(def
      ? {
          connectionType: def.connectionType,
          source: def.source,
          commands: def.commands.map((c) => ({ name: c.name, readOnly: c.readOnly })),
        }
      : { problem: `integration ${i.integration} is no longer shared to this tenant` }),
    ...(def?.connectionType === 'aws' ? { externalId: s.runner.externalId } : {}),
  };
}

/**
 * A fetching instance with its last fetch's time, outcome, count and error (null before the first) and when
 * it fetches next (null while a fetch runs); its fetchArgs as an audit line may hold them.
 */
async function withLastFetch(s: IntegrationServices, i: IntegrationInstance) {
  if (!i.fetchIncidents) return i;
  const lastFetch = (await s.fetcher.state(i.name)) ?? null;
  return { ...recordable(i), lastFetch, nextFetchAt: s.scheduler.nextFetchAt(i.name) ?? null };
}

/** Fetch settings with their args through `auditableArgs`: what audit lines, show, list and the CLI hold. */
function recordable<T extends { fetchArgs?: Record<string, unknown> }>(x: T): T {
  return x.fetchArgs ? { ...x, fetchArgs: auditableArgs(x.fetchArgs) } : x;
}
