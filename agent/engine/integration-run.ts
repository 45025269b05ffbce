/**
 * Runs an integration call a tenant sent down its sealed session (`integration.run`, agent/integrations/
 * engine-call.ts) with the same libraries the tenant uses (agent/integrations/aws, agent/integrations/http), but
 * from the customer's network and confined to this engine's allow-list: every socket those libraries open goes
 * through AllowListAgents. The one socket they do not open through a transport is the AWS SDK's instance metadata
 * client, so a connection without keys is first checked here: its endpoint (the SDK's own choice, from
 * AWS_EC2_METADATA_SERVICE_ENDPOINT or the profile, default http://169.254.169.254:80) must be allowed, which for
 * that link-local address means an entry naming it exactly (allow-list.ts refuses it to any broader CIDR). Unlike on
 * a tenant, such a connection may then use the engine's instance role: the engine is the customer's machine.
 * A refused destination fails the call with the allow-list's error (403, naming the destination) and is reported
 * through `report`. Not the session, and not the older per-destination commands (integration-commands.ts).
 */
import { getInstanceMetadataEndpoint } from '@smithy/credential-provider-imds';
import { AccessDeniedError, errorMessage } from '#common/errors.js';
import { argsChecker } from '#common/integration-definition.js';
import { readIntegrationCall, type IntegrationCallResult } from '../integrations/engine-call.js';
import { ENGINE_DEFAULT_BUDGET_MS } from '../integrations/call-limits.js';
import { checkAwsConnection } from '../integrations/aws/connection.js';
import { runAwsCommand } from '../integrations/aws/run.js';
import {
  HTTP_REQUEST_ARGS,
  runHttpRequest,
  type HttpConnectionInput,
  type HttpRequestArgs,
} from '../integrations/http/run.js';
import type { AllowList } from './allow-list.js';
import { AllowListAgents, type RefusalReport } from './allow-list-agents.js';

const checkHttpArgs = argsChecker({ ...HTTP_REQUEST_ARGS });

export async function runIntegrationCall(
  allow: AllowList,
  raw: unknown,
  report: RefusalReport,
): Promise<IntegrationCallResult> {
  const call = readIntegrationCall(raw);
  const budgetMs = call.budgetMs ?? ENGINE_DEFAULT_BUDGET_MS;
  const agents = new AllowListAgents(allow, report);
  try {
    if (call.type === 'aws') {
      const connection = { ...call.settings, ...(call.secret !== undefined ? { secret: call.secret } : {}) };
      if (!checkAwsConnection(connection, call.tenant).keys) await checkInstanceMetadata(agents);
      const r = await runAwsCommand({
        connection,
        tenant: call.tenant,
        externalId: call.externalId,
        command: call.runs,
        args: call.args,
        transport: agents,
        instanceRole: 'allowed',
        budgetMs,
      });
      return { assumedRoleArn: r.assumedRoleArn, result: r.result };
    }
    const http = { ...call.settings, secret: call.secret } as unknown as HttpConnectionInput;
    const args = checkHttpArgs(call.args) as unknown as HttpRequestArgs;
    return { result: await runHttpRequest(http, args, agents, budgetMs) };
  } catch (e) {
    // The SDK retries and rewraps a failed socket; the reason the call failed is the allow-list's refusal.
    throw agents.refusal ?? e;
  } finally {
    agents.destroy();
  }
}

/** The endpoint the SDK's instance metadata client will dial must be allowed (it dials without our agents). */
async function checkInstanceMetadata(agents: AllowListAgents): Promise<void> {
  const ep = await getInstanceMetadataEndpoint();
  const port = ep.port ?? (ep.protocol === 'https:' ? 443 : 80);
  try {
    await agents.check(ep.hostname, port);
  } catch (e) {
    agents.refusal = new AccessDeniedError(
      'ERR_TUNNEL_NOT_ALLOWED',
      `the connection has no access keys, so it would use the engine's instance role, but ${errorMessage(e)}: ` +
        `instance metadata is reachable only when the allow-list names ${ep.hostname}:${port} exactly`,
      { cause: e },
    );
    throw agents.refusal;
  }
}
