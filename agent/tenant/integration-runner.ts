/**
 * Runs one command of a tenant's integration instance, in the tenant process: resolves the instance's
 * definition and command, checks the caller's args against the command's schema (a 400 naming the field),
 * opens the connection's secret in memory for this call only, and hands the call to the built-in runner of
 * the connection's type (agent/integrations/aws or http). What an audit line may say of the args is
 * `auditableArgs` here: never a header's value, a body, or anything named like a secret.
 * Engines and groups do not run instances yet (issue 17 item 5): such an instance answers
 * ERR_INTEGRATION_RUN_ON. Not the HTTP edge (integration-routes.ts).
 */
import { hkdfSync } from 'node:crypto';
import { AccessDeniedError, BadParameterError } from '#common/errors.js';
import { argsChecker, type IntegrationCommand } from '#common/integration-definition.js';
import { deriveExternalId } from '../integrations/aws/external-id.js';
import { runAwsCommand } from '../integrations/aws/run.js';
import {
  HTTP_REQUEST_ARGS,
  runHttpRequest,
  type HttpConnectionInput,
  type HttpRequestArgs,
} from '../integrations/http/run.js';
import type { ConnectionStore } from './connection-store.js';
import { checkConnectionFits, type IntegrationCatalog, type ResolvedDefinition } from './integration-catalog.js';
import type { IntegrationInstance, IntegrationStore } from './integration-store.js';

export interface RunResult {
  instance: string;
  integration: string;
  command: string;
  durationMs: number;
  /** For aws: the role the call was made as, when one was assumed. */
  assumedRoleArn?: string;
  result: unknown;
}

/**
 * The tenant's ExternalId key: HKDF of its own secret key under a label of its own (as connection-sealing.ts
 * derives the data key under another), so the id and the data key never share key material.
 */
export function tenantExternalId(tenantSecretKey: Uint8Array, tenant: string): string {
  const key = hkdfSync('sha256', tenantSecretKey, '', `palisade aws external-id key v1 ${tenant}`, 32);
  return deriveExternalId(Buffer.from(key), tenant);
}

/**
 * Compiled arg checkers are kept by definition version and command, so a schema compiles once, not per call;
 * the bound keeps definitions republished over months from growing the map without end.
 */
const MAX_CACHED_CHECKERS = 500;
const SECRET_NAMED = /secret|token|password|passwd|credential|authori[sz]ation|api[-_]?key/i;

export class IntegrationRunner {
  private readonly checkers = new Map<string, (args: unknown) => Record<string, unknown>>();
  private readonly checkHttpArgs = argsChecker({ ...HTTP_REQUEST_ARGS });
  readonly externalId: string;

  constructor(
    private readonly tenant: string,
    tenantSecretKey: Uint8Array,
    private readonly instances: IntegrationStore,
    private readonly catalog: IntegrationCatalog,
    private readonly connections: ConnectionStore,
  ) {
    this.externalId = tenantExternalId(tenantSecretKey, tenant);
  }

  /** `opts.readOnly`: refuse any command its definition does not mark read-only (fan-out and fetching ask it). */
  async run(name: string, commandName: string, args: unknown, opts: { readOnly?: boolean } = {}): Promise<RunResult> {
    const instance = await this.instances.get(name);
    if (instance.runOn !== 'tenant')
      throw new BadParameterError(
        'ERR_INTEGRATION_RUN_ON',
        `instance ${name} runs on ${instance.runOn}, and running on engines and groups is not available yet: ` +
          `recreate it with --run-on tenant`,
        { field: 'runOn' },
      );
    const def = await this.catalog.resolve(instance.integration);
    const command = def.commands.find((c) => c.name === commandName);
    if (!command)
      throw new BadParameterError(
        'ERR_COMMAND_UNKNOWN',
        `command: ${def.name} has no command ${JSON.stringify(commandName)}; it has ` +
          def.commands.map((c) => c.name).join(', '),
        { field: 'command' },
      );
    if (opts.readOnly && !command.readOnly)
      throw new AccessDeniedError(
        'ERR_INTEGRATION_WRITE_IN_FANOUT',
        `command: ${def.name}'s ${command.name} may write, and only read-only commands run across tenants`,
        { field: 'command' },
      );
    const checked = this.checker(def, command)(args ?? {});
    const started = performance.now();
    const out = await this.call(instance, def, command, { ...checked, ...command.with });
    return {
      instance: name,
      integration: def.name,
      command: command.name,
      durationMs: Math.round(performance.now() - started),
      ...out,
    };
  }

  private checker(def: ResolvedDefinition, command: IntegrationCommand) {
    const key = `${def.contentId ?? def.name}@${def.version ?? 0}:${command.name}`;
    let check = this.checkers.get(key);
    if (!check) {
      if (this.checkers.size >= MAX_CACHED_CHECKERS) this.checkers.clear();
      check = argsChecker(command.args);
      this.checkers.set(key, check);
    }
    return check;
  }

  private async call(
    instance: IntegrationInstance,
    def: ResolvedDefinition,
    command: IntegrationCommand,
    args: Record<string, unknown>,
  ): Promise<{ assumedRoleArn?: string; result: unknown }> {
    const c = await this.connections.openForCall(instance.connection);
    checkConnectionFits(c, def);
    if (c.type === 'aws') {
      const connection = { ...c.settings, ...(c.secret !== undefined ? { secret: c.secret } : {}) };
      const r = await runAwsCommand({
        connection,
        tenant: this.tenant,
        externalId: this.externalId,
        command: command.runs,
        args,
      });
      return { assumedRoleArn: r.assumedRoleArn, result: r.result };
    }
    const http = { ...c.settings, secret: c.secret } as unknown as HttpConnectionInput;
    return { result: await runHttpRequest(http, this.checkHttpArgs(args) as unknown as HttpRequestArgs) };
  }
}

/** The args as an audit line may hold them: header names without values, no body, nothing named like a secret. */
export function auditableArgs(args: unknown): Record<string, unknown> {
  if (typeof args !== 'object' || args === null || Array.isArray(args)) return {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(args)) {
    // Header names only; a query's values only where not named like a secret (`?api_key=` is a common way in).
    if (k === 'headers' && typeof v === 'object' && v !== null) out[k] = Object.keys(v);
    else if (k === 'query' && typeof v === 'object' && v !== null)
      out[k] = Object.fromEntries(
        Object.entries(v).map(([q, x]) => [q, SECRET_NAMED.test(q) ? '(not recorded)' : (x as unknown)]),
      );
    else if (k === 'body' || SECRET_NAMED.test(k)) out[k] = '(not recorded)';
    else out[k] = JSON.stringify(v).length > 1000 ? '(too long to record)' : v;
  }
  return out;
}
