/**
 * CLI verbs for a tenant's integration instances: `integrations create|list|show|remove|test|run --tenant T`.
 * An instance joins an integration (built-in `aws` or `http`, or one main shared) to a connection; `show`
 * prints the tenant's AWS ExternalId for the customer's trust policy, `test` proves the credentials work
 * (for aws: the account and ARN they act as), `run` runs one command with JSON args. Not the tenant's API:
 * agent/tenant/integration-routes.ts.
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { jsonLines, printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';
import { checkName } from '#common/names.js';

type Opts = Common & { tenant: string };
type Instance = {
  name: string;
  integration: string;
  connection: string;
  runOn: string;
  externalId?: string;
  commands?: { name: string; readOnly: boolean }[];
};
interface RunAnswer {
  instance: string;
  command: string;
  durationMs: number;
  assumedRoleArn?: string;
  result: unknown;
}

const at = (tenant: string, rest = '') => `/tenants/${checkName(tenant, 'tenant')}/api/integrations${rest}`;
const named = (o: Opts, name: string, rest = '') => at(o.tenant, `/${encodeURIComponent(checkName(name))}${rest}`);

/** `--args '{"maxResults":5}'`: a JSON object, or exit 2 before anything is sent. */
function argsOf(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new BadParameterError('ERR_INTEGRATION_ARGS', `--args: must be a JSON object, e.g. '{"maxResults":5}'`, {
      field: 'args',
    });
  return v as Record<string, unknown>;
}

function showLines(i: Instance): string[] {
  const lines = [
    `instance ${i.name}: ${i.integration} with connection ${i.connection}, runs on ${i.runOn}`,
    ...(i.commands ?? []).map((c) => `  ${c.name}${c.readOnly ? ' (read-only)' : ''}`),
  ];
  if (i.externalId) lines.push(`ExternalId for the role's trust policy (sts:ExternalId): ${i.externalId}`);
  return lines;
}

export function registerIntegrationCommands(program: Command): void {
  const integ = program
    .command('integrations')
    .description("a tenant's integration instances: an integration (aws, http or shared) with a connection");
  const base = (cmd: Command) =>
    withClientOptions(cmd).requiredOption('--tenant <tenant>', 'the tenant whose instance it is');

  base(integ.command('create <instance>').description('create an instance of an integration with a connection'))
    .requiredOption('--integration <name>', 'aws, http, or an integration main shared to the tenant')
    .requiredOption('--connection <name>', 'the connection whose credentials it uses')
    .option('--run-on <where>', 'tenant (default); engine:E or group:G are stored but do not run yet', 'tenant')
    .action((name: string, o: Opts & { integration: string; connection: string; runOn: string }) =>
      runAction(o, async () => {
        const body = { name: checkName(name), integration: o.integration, connection: o.connection, runOn: o.runOn };
        const r = await adminClient(o).request<Instance>('POST', at(o.tenant), body);
        printResult(r, o, () => showLines(r));
      }),
    );

  base(integ.command('list').description('list instances')).action((o: Opts) =>
    runAction(o, async () => {
      const rows = await adminClient(o).request<Instance[]>('GET', at(o.tenant));
      printResult(rows, o, () => table(rows, ['name', 'integration', 'connection', 'runOn']));
    }),
  );

  base(integ.command('show <instance>').description("one instance, its commands and the tenant's ExternalId")).action(
    (name: string, o: Opts) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<Instance>('GET', named(o, name));
        printResult(r, o, () => [...showLines(r), ...jsonLines(r)]);
      }),
  );

  base(integ.command('remove <instance>').description('delete an instance (its connection stays)')).action(
    (name: string, o: Opts) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<{ name: string }>('DELETE', named(o, name));
        printResult(r, o, () => `integration instance ${r.name} removed from tenant ${o.tenant}`);
      }),
  );

  base(integ.command('test <instance>').description('check the instance works (aws: the account and ARN)')).action(
    (name: string, o: Opts) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<RunAnswer>('POST', named(o, name, '/test'), {});
        printResult(r, o, () => testLine(r));
      }),
  );

  base(integ.command('run <instance> <command>').description('run one command of the instance'))
    .option('--args <json>', "the command's args as a JSON object")
    .action((name: string, command: string, o: Opts & { args?: string }) =>
      runAction(o, async () => {
        const args = argsOf(o.args);
        const body = { command, ...(args ? { args } : {}) };
        const r = await adminClient(o).request<RunAnswer>('POST', named(o, name, '/run'), body);
        printResult(r, o, () => jsonLines(r.result));
      }),
    );
}

function testLine(r: RunAnswer): string {
  const id = r.result as { account?: string; arn?: string; status?: number } | null;
  if (id?.arn) return `ok: account ${id.account} as ${id.arn} (${r.durationMs} ms)`;
  return `ok: answered HTTP ${id?.status ?? '?'} (${r.durationMs} ms)`;
}
