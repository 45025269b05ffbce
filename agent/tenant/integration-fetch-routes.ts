/**
 * Fetching incidents at a tenant's integrations API: the checks of an instance's fetch settings at create
 * (`fetchIncidents`, `fetchInterval`, `fetchArgs`: each refusal a 400 naming its field; a header or query key
 * named like a secret is refused, since fetchArgs are stored and shown, and auth belongs in the connection) and
 * `POST /api/v1/integrations/:name/fetch`, "fetch now", which answers that fetch's outcome and is audited
 * as `integration.fetch` with its caller. Not the fetch itself (incident-fetch.ts) nor its timing
 * (fetch-scheduler.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NAME_PARAMS } from '#common/names.js';
import { BadParameterError, isPalisadeError } from '#common/errors.js';
import { argsChecker } from '#common/integration-definition.js';
import type { ResolvedDefinition } from './integration-catalog.js';
import { SECRET_NAMED } from './integration-runner.js';
import type { IntegrationInstance } from './integration-store.js';
import { DEFAULT_FETCH_INTERVAL, fetchIntervalMs, type FetchScheduler } from './fetch-scheduler.js';

/** The create body's fetch fields (their JSON Schema is FETCH_BODY_PROPERTIES). */
export interface FetchSettings {
  fetchIncidents?: boolean;
  fetchInterval?: string;
  fetchArgs?: Record<string, unknown>;
}
export const FETCH_BODY_PROPERTIES = {
  fetchIncidents: { type: 'boolean' },
  fetchInterval: { type: 'string', minLength: 1, maxLength: 32 },
  fetchArgs: { type: 'object' },
} as const;

/** The instance's fetch fields to store, checked against its definition, or a 400 naming the field. */
export function fetchSettings(def: ResolvedDefinition, b: FetchSettings): Partial<IntegrationInstance> {
  if (!b.fetchIncidents) {
    const stray = (['fetchInterval', 'fetchArgs'] as const).find((k) => b[k] !== undefined);
    if (stray)
      throw new BadParameterError('ERR_BAD_REQUEST', `${stray}: only with fetchIncidents: true`, { field: stray });
    return {};
  }
  if (!def.fetch)
    throw new BadParameterError(
      'ERR_INTEGRATION_FETCH_UNSUPPORTED',
      `fetchIncidents: ${def.name} declares no fetch, so its instances cannot fetch incidents`,
      { field: 'fetchIncidents' },
    );
  const fetchInterval = b.fetchInterval ?? DEFAULT_FETCH_INTERVAL;
  fetchIntervalMs(fetchInterval);
  const command = def.commands.find((c) => c.name === def.fetch!.command)!;
  try {
    argsChecker(command.args)(b.fetchArgs ?? {});
  } catch (e) {
    if (isPalisadeError(e))
      throw new BadParameterError('ERR_INTEGRATION_ARGS', `fetchArgs (the args of ${command.name}): ${e.message}`, {
        field: 'fetchArgs',
      });
    throw e;
  }
  refuseSecrets(b.fetchArgs ?? {});
  return { fetchIncidents: true, fetchInterval, ...(b.fetchArgs ? { fetchArgs: b.fetchArgs } : {}) };
}

/**
 * fetchArgs are stored with the instance and shown to every reader of it, unlike a connection's secret
 * (sealed, never answered), so a header or query key named like a secret is refused rather than kept.
 */
function refuseSecrets(args: Record<string, unknown>): void {
  for (const part of ['headers', 'query'] as const) {
    const v = args[part];
    if (typeof v !== 'object' || v === null) continue;
    const named = Object.keys(v).find((k) => SECRET_NAMED.test(k));
    if (named)
      throw new BadParameterError(
        'ERR_INTEGRATION_ARGS',
        `fetchArgs: ${part} "${named}" looks like a secret, and fetchArgs are stored and shown; ` +
          "put the service's auth in the connection (authType, authHeader and its secret)",
        { field: 'fetchArgs' },
      );
  }
}

export function registerFetchRoutes(app: FastifyInstance, scheduler: FetchScheduler): void {
  app.post(
    '/api/v1/integrations/:name/fetch',
    { config: { tenantPermission: 'integrations:run' }, schema: { params: NAME_PARAMS } },
    async (req: FastifyRequest) => {
      const name = (req.params as { name: string }).name;
      req.auditAs = { action: 'integration.fetch', target: name };
      const state = await scheduler.fetchNow(name);
      req.auditAs = {
        action: 'integration.fetch',
        target: name,
        detail: { outcome: state.outcome, created: state.created, ...(state.error ? { code: state.error.code } : {}) },
      };
      return { instance: name, ...state };
    },
  );
}
