/**
 * Runs one command of a tenant's integration instance, in the tenant process: resolves the instance's
 * definition and command, checks the caller's args against the command's schema (a 400 naming the field),
 * opens the connection's secret in memory for this call only, and hands the call to the built-in runner of
 * the connection's type (agent/integrations/aws or http). What an audit line may say of the args is
 * `auditableArgs` here: never a header's value, a body, or anything named like a secret.
 * An instance bound to an engine or group (`runOn` engine:E|group:G) is run there instead: the call, secret
 * included, goes down the sealed engine session as `integration.run` (agent/integrations/engine-call.ts) to one
 * of the engines the target allows, failing over inside it only for read-only commands (a write never runs twice).
 * Every call, here or on an engine, failover included, runs within one budget (integrations/call-limits.ts).
 * Not the HTTP edge (integration-routes.ts).
 */
import { hkdfSync } from 'node:crypto';
import { AccessDeniedError, BadParameterError, UnavailableError } from '#common/errors.js';
import { argsChecker, type IntegrationCommand } from '#common/integration-definition.js';
import { deriveExternalId } from '../integrations/aws/external-id.js';
import { INTEGRATION_RUN, type IntegrationCall, type IntegrationCallResult } from '../integrations/engine-call.js';
import { runAwsCommand } from '../integrations/aws/run.js';
import { CALL_BUDGET_MS, timeLeft } from '../integrations/call-limits.js';
import {
  HTTP_REQUEST_ARGS,
  runHttpRequest,
  type HttpConnectionInput,
  type HttpRequestArgs,
} from '../integrations/http/run.js';
import type { ConnectionForCall, ConnectionResolver } from './connection-resolve.js';
import { checkConnectionFits, type IntegrationCatalog, type ResolvedDefinition } from './integration-catalog.js';
import type { IntegrationInstance, IntegrationStore } from './integration-store.js';
import type { TunnelEndpoint } from './tunnel-endpoint.js';
import { parseRunOn } from './tunnels/engine-target.js';

export interface RunResult {
  instance: string;
  integration: string;
  command: string;
  durationMs: number;
  /** For aws: the role the call was made as, when one was assumed. */
  assumedRoleArn?: string;
  result: unknown;
  /** Where it ran, for an instance bound to an engine or group; the engines that ended before answering, if any. */
  engine?: string;
  group?: string | null;
  failedOver?: string[];
}

type CallOutcome = Omit<RunResult, 'instance' | 'integration' | 'command' | 'durationMs'>;

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
/** Names (of args, headers, query keys) that hold a secret: never recorded, and refused in stored fetchArgs. */
export const SECRET_NAMED = /secret|token|password|passwd|credential|authori[sz]ation|api[-_]?key/i;

export class IntegrationRunner {
  private readonly checkers = new Map<string, (args: unknown) => Record<string, unknown>>();
  private readonly checkHttpArgs = argsChecker({ ...HTTP_REQUEST_ARGS });
  readonly externalId: string;

  constructor(
    private readonly tenant: string,
    tenantSecretKey: Uint8Array,
    private readonly instances: IntegrationStore,
    private readonly catalog: IntegrationCatalog,
    private readonly connections: Pick<ConnectionResolver, 'openForCall'>,
    /** The tenant's engine sessions, for instances bound to an engine or group. */
    private readonly engines?: Pick<TunnelEndpoint, 'runCommand'>,
  ) {
    this.externalId = tenantExternalId(tenantSecretKey, tenant);
  }

  /**
   * `opts.readOnly`: refuse any command its definition does not mark read-only (fan-out and fetching ask it);
   * `opts.site`: the site of the incident it runs for, which picks a site-scoped connection (connection-resolve.ts).
   */
  async run(
    name: string,
    commandName: string,
    args: unknown,
    opts: { readOnly?: boolean; site?: string } = {},
  ): Promise<RunResult> {
    const instance = await this.instances.get(name);
    const def = await this.catalog.resolve(instance.integration);
    const command = commandOf(def, commandName);
    if (opts.readOnly && !command.readOnly)
      throw new AccessDeniedError(
        'ERR_INTEGRATION_WRITE_IN_FANOUT',
        `command: ${def.name}'s ${command.name} may write, and only read-only commands run across tenants`,
        { field: 'command' },
      );
    const checked = this.checker(def, command)(args ?? {});
    const started = performance.now();
    const deadline = started + CALL_BUDGET_MS;
    const out = await this.call(instance, def, command, { ...checked, ...command.with }, deadline, opts.site);
    return {
      instance: name,
      integration: def.name,
      command: command.name,
      durationMs: Math.round(performance.now() - started),
      ...out,
    };
  }

  /**
   * Runs a command of definition `integration` with the tenant's connection `connection`, in the tenant: what a
   * shared playbook's integration task does, so one playbook uses each tenant's own credentials (docs/playbooks.md).
   */
  async runWithConnection(integration: string, connection: string, commandName: string, args: unknown, site?: string) {
    const def = await this.catalog.resolve(integration);
    const command = commandOf(def, commandName);
    const checked = this.checker(def, command)(args ?? {});
    const started = performance.now();
    const instance = { name: '', integration: def.name, connection, runOn: 'tenant', createdAt: '', createdBy: '' };
    const out = await this.call(
      instance,
      def,
      command,
      { ...checked, ...command.with },
      started + CALL_BUDGET_MS,
      site,
    );
    const durationMs = Math.round(performance.now() - started);
    return { integration: def.name, connection, command: command.name, durationMs, ...out };
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
    deadline: number,
    site?: string,
  ): Promise<CallOutcome> {
    const { resolution: _resolution, ...c } = await this.connections.openForCall(instance.connection, site);
    checkConnectionFits(c, def);
    if (instance.runOn !== 'tenant') return this.onEngine(instance.runOn, c, command, args, deadline);
    if (c.type === 'aws') {
      const connection = { ...c.settings, ...(c.secret !== undefined ? { secret: c.secret } : {}) };
      const r = await runAwsCommand({
        connection,
        tenant: this.tenant,
        externalId: this.externalId,
        command: command.runs,
        args,
        budgetMs: timeLeft(deadline),
      });
      return { assumedRoleArn: r.assumedRoleArn, result: r.result };
    }
    const http = { ...c.settings, secret: c.secret } as unknown as HttpConnectionInput;
    const checked = this.checkHttpArgs(args) as unknown as HttpRequestArgs;
    return { result: await runHttpRequest(http, checked, {}, timeLeft(deadline)) };
  }

  /** Sends the call to an engine `runOn` allows, in the sealed session (the secret with it, and nowhere else). */
  private async onEngine(
    runOn: string,
    c: ConnectionForCall,
    command: IntegrationCommand,
    args: Record<string, unknown>,
    deadline: number,
  ): Promise<CallOutcome> {
    if (!this.engines) throw new UnavailableError('ERR_NO_ENGINE', `tenant ${this.tenant} has no engine sessions`);
    const call: IntegrationCall = {
      type: c.type,
      settings: c.settings,
      ...(c.secret !== undefined ? { secret: c.secret } : {}),
      tenant: this.tenant,
      externalId: this.externalId,
      runs: command.runs,
      // Checked here too, so a bad request is refused before any engine is asked.
      args: c.type === 'http' ? this.checkHttpArgs(args) : args,
    };
    const r = await this.engines.runCommand(INTEGRATION_RUN, call, parseRunOn(runOn), {
      deadline,
      retrySafe: command.readOnly,
    });
    const out = r.result as IntegrationCallResult;
    return {
      ...(out.assumedRoleArn !== undefined ? { assumedRoleArn: out.assumedRoleArn } : {}),
      result: out.result,
      engine: r.engine,
      group: r.group,
      ...(r.failedOver ? { failedOver: r.failedOver } : {}),
    };
  }
}

/** The definition's command of that name, or a 400 naming the commands it has. */
export function commandOf(def: ResolvedDefinition, name: string): IntegrationCommand {
  const command = def.commands.find((c) => c.name === name);
  if (!command)
    throw new BadParameterError(
      'ERR_COMMAND_UNKNOWN',
      `command: ${def.name} has no command ${JSON.stringify(name)}; it has ` +
        def.commands.map((c) => c.name).join(', '),
      { field: 'command' },
    );
  return command;
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
