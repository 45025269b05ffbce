/**
 * The `integration.run` engine command: one integration call a tenant hands to its engine (an instance created
 * with `--run-on engine:E|group:G`), as it travels inside the sealed engine session. It carries everything the
 * engine needs and nothing it keeps: the connection (type, settings and its opened secret), the tenant's name and
 * AWS ExternalId, the built-in command to run and the args the tenant already checked against the command's schema.
 * The secret is only ever in this sealed command: never in a field main or the host can read, never in a log.
 * Tenant and engine both use this module (they may not import each other); not how either runs the call.
 */
import { BadParameterError } from '#common/errors.js';
import { CONNECTION_TYPES, type ConnectionType } from '#common/connections.js';
import { CALL_BUDGET_MS } from './call-limits.js';

export const INTEGRATION_RUN = 'integration.run';

export interface IntegrationCall {
  type: ConnectionType;
  /** The connection's settings as stored (no secret among them). */
  settings: Record<string, unknown>;
  /** The connection's secret, opened for this call; absent when the connection has none. */
  secret?: string;
  tenant: string;
  /** The tenant's AWS ExternalId (sent with every AssumeRole); the engine cannot derive it. */
  externalId: string;
  /** The built-in command of the connection type's integration (`s3.list-buckets`, `request`). */
  runs: string;
  /** The caller's args, checked by the tenant, with the command's fixed `with` args on top. */
  args: Record<string, unknown>;
  /**
   * How long the engine's work may take, in ms from when it reads the call (call-limits.ts): what is left of the
   * tenant's budget less the answer's way back. A tenant of an earlier version sends none: ENGINE_DEFAULT_BUDGET_MS.
   */
  budgetMs?: number;
}

/** What the engine answers. */
export interface IntegrationCallResult {
  assumedRoleArn?: string;
  result: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads the command's args on the engine; a malformed one (a tenant of another version?) is refused by field. */
export function readIntegrationCall(raw: unknown): IntegrationCall {
  const bad = (field: string, what: string) =>
    new BadParameterError('ERR_BAD_ARGS', `${INTEGRATION_RUN}: args.${field} must be ${what}`, {
      field: `args.${field}`,
    });
  if (!isObject(raw)) throw bad('', 'an object');
  if (!(CONNECTION_TYPES as readonly unknown[]).includes(raw.type)) throw bad('type', CONNECTION_TYPES.join(' or '));
  for (const f of ['tenant', 'externalId', 'runs'] as const) if (typeof raw[f] !== 'string') throw bad(f, 'a string');
  if (raw.secret !== undefined && typeof raw.secret !== 'string') throw bad('secret', 'a string');
  if (!isObject(raw.settings)) throw bad('settings', 'an object');
  if (!isObject(raw.args)) throw bad('args', 'an object');
  const budget = raw.budgetMs;
  if (
    budget !== undefined &&
    !(Number.isInteger(budget) && (budget as number) >= 0 && (budget as number) <= CALL_BUDGET_MS)
  )
    throw bad('budgetMs', `a whole number of ms from 0 to ${CALL_BUDGET_MS}`);
  return raw as unknown as IntegrationCall;
}
