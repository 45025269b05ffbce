/**
 * Runs one command of the `aws` integration: checks the connection and the args, gets credentials (keys,
 * session token or IMDSv2 instance role; then AssumeRole with the tenant's ExternalId when a role is set
 * or given per call), calls the service, and returns plain JSON — or throws a PalisadeError with an
 * ERR_AWS_… code. The whole call, credentials included, is bounded by the connection's timeoutMs or the caller's
 * budget, whichever is sooner (call-limits.ts).
 * The one entry point the tenant and engine roles call; it knows neither (they pass the connection, the
 * tenant's name and ExternalId, and optionally a transport to route the SDK's HTTP through).
 */
import { configChecker } from '#common/config-check.js';
import { AccessDeniedError, BadParameterError, isPalisadeError } from '#common/errors.js';
import { CALL_BUDGET_MS, cappedJson, clampTimeout, MAX_RESULT_BYTES } from '../call-limits.js';
import { checkTargetHost } from '../target-guard.js';
import { awsFailure, type FailureContext, imdsFailure } from './aws-errors.js';
import {
  type AwsTransport,
  callHandler,
  type ClientSettings,
  hostOf,
  serviceSettings,
  stsSettings,
} from './client-config.js';
import { AWS_COMMANDS, type AwsCommand } from './commands.js';
import { type AwsConnection, type AwsConnectionInput, checkAwsConnection } from './connection.js';
import { callCredentials, CredentialStepFailure } from './credentials.js';

export interface AwsCallRequest {
  /** The tenant's connection of type `aws`, secret included. */
  connection: AwsConnectionInput;
  /** The tenant's name: the default role session name is `palisade-<tenant>`. */
  tenant: string;
  /** The tenant's ExternalId (external-id.ts), sent with every AssumeRole. */
  externalId: string;
  command: string;
  args?: unknown;
  /** Where the SDK's HTTP goes (client-config.ts); direct when absent. */
  transport?: AwsTransport;
  /**
   * Whether a connection without keys may use the instance role of the machine this runs on. Only where that
   * machine is the customer's (an engine): on a tenant it is the MSSP's host, whose role no customer may borrow.
   */
  instanceRole?: 'allowed';
  /** What is left of the call's budget (call-limits.ts); CALL_BUDGET_MS when absent. */
  budgetMs?: number;
}

export interface AwsCallResult {
  command: string;
  /** The role the call was made as, when one was assumed. */
  assumedRoleArn?: string;
  result: unknown;
}

const checkers = new Map(
  [...AWS_COMMANDS.values()].map((c) => [c.name, configChecker<Record<string, unknown>>(c.args)]),
);

export async function runAwsCommand(req: AwsCallRequest): Promise<AwsCallResult> {
  const command = AWS_COMMANDS.get(req.command);
  if (!command)
    throw new BadParameterError(
      'ERR_COMMAND_UNKNOWN',
      `the aws integration has no command ${JSON.stringify(req.command)}; it has ${[...AWS_COMMANDS.keys()].join(', ')}`,
    );
  const args = checkArgs(command, req.args ?? {});
  const connection = budgeted(checkAwsConnection(req.connection, req.tenant), req.budgetMs ?? CALL_BUDGET_MS);
  if (!connection.keys && req.instanceRole !== 'allowed')
    throw new AccessDeniedError(
      'ERR_AWS_INSTANCE_ROLE_REFUSED',
      'the connection has no keys, so it would use the instance role of the machine it runs on, which is the ' +
        "MSSP's host here: give it an access key and secret, or run the instance on the customer's engine",
      { field: 'accessKeyId' },
    );
  if (req.transport === undefined)
    for (const field of ['endpointUrl', 'stsEndpointUrl'] as const) {
      const url = connection[field];
      if (url) checkTargetHost(new URL(url).hostname, portOf(new URL(url)), field);
    }
  const handler = callHandler(connection, req.transport);
  const abortSignal = AbortSignal.timeout(connection.timeoutMs);
  try {
    const roleArn = args.roleArn as string | undefined;
    const creds = await credentialsOrFail({ connection, handler, externalId: req.externalId, roleArn, abortSignal });
    const settings: ClientSettings =
      command.service === 'sts'
        ? { ...stsSettings(connection, handler), credentials: creds.credentials }
        : serviceSettings(connection, handler, creds.credentials);
    try {
      const result = await command.run({ settings, abortSignal }, args);
      const capped = cappedJson(result, (bytes) => resultTooLarge(command, args, bytes));
      return { command: command.name, assumedRoleArn: creds.assumedRoleArn, result: capped };
    } catch (e) {
      const ctx = context(connection, settings, command.service, 'call');
      throw awsFailure(e, { ...ctx, action: command.action, roleArn: creds.assumedRoleArn });
    }
  } finally {
    handler.close();
  }
}

function checkArgs(command: AwsCommand, args: unknown): Record<string, unknown> {
  let checked: Record<string, unknown>;
  try {
    checked = checkers.get(command.name)!(args, `args of ${command.name}`);
  } catch (e) {
    if (isPalisadeError(e)) throw new BadParameterError('ERR_AWS_ARGS', e.message, { cause: e });
    throw e;
  }
  command.checkArgs?.(checked);
  return checked;
}

/**
 * The connection with its timeoutMs cut to the budget left, so the SDK gives up (ERR_AWS_TIMEOUT, naming the ms it
 * waited) before the caller's relay does.
 */
function budgeted(connection: AwsConnection, budgetMs: number): AwsConnection {
  const timeoutMs = clampTimeout(connection.timeoutMs, budgetMs);
  return timeoutMs === connection.timeoutMs ? connection : { ...connection, timeoutMs };
}

/** What to ask for instead: smaller pages, or with instanceIds (which AWS will not page) fewer ids. */
function resultTooLarge(command: AwsCommand, args: Record<string, unknown>, bytes: number): BadParameterError {
  const byIds = Array.isArray(args.instanceIds);
  const instead = byIds
    ? 'ask for fewer instanceIds at a time'
    : 'ask for smaller pages (args.maxResults) or fewer items (a filter), and follow nextToken';
  return new BadParameterError(
    'ERR_AWS_RESULT_TOO_LARGE',
    `${command.name} answered ${bytes} bytes of JSON, more than the ${MAX_RESULT_BYTES} a result may hold: ${instead}`,
    { field: byIds ? 'args.instanceIds' : 'args.maxResults' },
  );
}

async function credentialsOrFail(req: Parameters<typeof callCredentials>[0]): ReturnType<typeof callCredentials> {
  try {
    return await callCredentials(req);
  } catch (e) {
    if (!(e instanceof CredentialStepFailure)) throw e;
    if (e.step === 'imds') throw imdsFailure(e.cause);
    const ctx = context(req.connection, stsSettings(req.connection, req.handler), 'sts', e.step);
    throw awsFailure(e.cause, { ...ctx, ...e.detail, action: 'sts:AssumeRole' });
  }
}

function context(
  connection: AwsConnection,
  settings: ClientSettings,
  service: string,
  step: FailureContext['step'],
): FailureContext {
  return {
    step,
    host: hostOf(settings, service),
    region: settings.region,
    defaultHost: settings.endpoint === undefined,
    accessKeyId: connection.keys?.accessKeyId,
    timeoutMs: connection.timeoutMs,
    maxAttempts: connection.maxAttempts,
  };
}

/** The port a URL's requests go to. */
function portOf(url: URL): number {
  return Number(url.port) || (url.protocol === 'http:' ? 80 : 443);
}
