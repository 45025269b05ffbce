/**
 * CLI verbs for a tenant's integration instances: `integrations create|list|show|remove|test|run|fetch --tenant T`.
 * An instance joins an integration (built-in `aws` or `http`, or one main shared) to a connection; `show`
 * prints the tenant's AWS ExternalId for the customer's trust policy, `test` proves the credentials work
 * (for aws: the account and ARN they act as), `run` runs one command with JSON args, `fetch` fetches incidents
 * now for an instance created with --fetch-incidents. Not the tenant's API:
 * agent/tenant/integration-routes.ts.
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { jsonLines, printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';
import { checkName } from '#common/names.js';

type Opts = Common & { tenant: string };
type CreateFlags = {
  integration: string;
  connection: string;
  runOn: string;
  fetchIncidents?: boolean;
  interval?: string;
  fetchArgs?: string;
};
type Instance = {
  name: string;
  integration: string;
  connection: string;
  runOn: string;
  fetchIncidents?: boolean;
  fetchInterval?: string;
  fetchArgs?: Record<string, unknown>;
  lastFetch?: FetchState | null;
  nextFetchAt?: string | null;
  externalId?: string;
  commands?: { name: string; readOnly: boolean }[];
};
interface FetchState {
  lastFetchAt: string;
  outcome: 'ok' | 'failed';
  created: number;
  pending: number;
  error?: { code: string; message: string };
}
interface RunAnswer {
  instance: string;
  command: string;
  durationMs: number;
  assumedRoleArn?: string;
  engine?: string;
  result: unknown;
}

const at = (tenant: string, rest = '') => `/tenants/${checkName(tenant, 'tenant')}/api/integrations${rest}`;
const named = (o: Opts, name: string, rest = '') => at(o.tenant, `/${encodeURIComponent(checkName(name))}${rest}`);

/** `--args '{"maxResults":5}'`: a JSON object, or exit 2 before anything is sent. */
function argsOf(text: string | undefined, flag = 'args'): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    v = undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new BadParameterError('ERR_INTEGRATION_ARGS', `--${flag}: must be a JSON object, e.g. '{"path":"/x"}'`, {
      field: flag,
    });
  return v as Record<string, unknown>;
}

function showLines(i: Instance): string[] {
  const lines = [
    `instance ${i.name}: ${i.integration} with connection ${i.connection}, runs on ${i.runOn}`,
    ...(i.commands ?? []).map((c) => `  ${c.name}${c.readOnly ? ' (read-only)' : ''}`),
  ];
  if (i.externalId) lines.push(`ExternalId for the role's trust policy (sts:ExternalId): ${i.externalId}`);
  if (i.fetchIncidents)
    lines.push(
      `fetches incidents every ${i.fetchInterval}${i.fetchArgs ? ` with ${JSON.stringify(i.fetchArgs)}` : ''}; ` +
        `last fetch: ${fetchLine(i.lastFetch)}${nextLine(i)}`,
    );
  return lines;
}

/** `2026-12-06T21:00:00.000Z ok, 3 created` / `… failed: why (CODE)` / `none yet`. */
function fetchLine(f: FetchState | null | undefined): string {
  if (!f) return 'none yet';
  if (f.outcome === 'failed') return `${f.lastFetchAt} failed: ${f.error?.message} (${f.error?.code})`;
  return `${f.lastFetchAt} ok, ${f.created} created${f.pending ? `, ${f.pending} left for the next fetch` : ''}`;
}

/** `; next attempt at T` after a failure (a retry, or the next interval), `; next fetch at T` else. */
function nextLine(i: Instance): string {
  if (!i.nextFetchAt) return '';
  return `; next ${i.lastFetch?.outcome === 'failed' ? 'attempt' : 'fetch'} at ${i.nextFetchAt}`;
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
    .option('--run-on <where>', 'where its commands and fetches run: tenant (default), engine:E or group:G', 'tenant')
    .option('--fetch-incidents', "pull the source's new items into incidents (the integration must declare a fetch)")
    .option('--interval <duration>', 'with --fetch-incidents: how often, from 30s to 24h (default 5m)')
    .option(
      '--fetch-args <json>',
      'with --fetch-incidents: the fetch command\'s args, e.g. \'{"path":"/alerts"}\' (auth goes in the connection)',
    )
    .action((name: string, o: Opts & CreateFlags) =>
      runAction(o, async () => {
        const fetchArgs = argsOf(o.fetchArgs, 'fetch-args');
        const body = {
          name: checkName(name),
          integration: o.integration,
          connection: o.connection,
          runOn: o.runOn,
          ...(o.fetchIncidents ? { fetchIncidents: true } : {}),
          ...(o.interval !== undefined ? { fetchInterval: o.interval } : {}),
          ...(fetchArgs ? { fetchArgs } : {}),
        };
        const r = await adminClient(o).request<Instance & { warnings?: string[] }>('POST', at(o.tenant), body);
        printResult(r, o, () => [...showLines(r), ...(r.warnings ?? []).map((w) => `warning: ${w}`)]);
      }),
    );

  base(integ.command('list').description('list instances')).action((o: Opts) =>
    runAction(o, async () => {
      const rows = await adminClient(o).request<Instance[]>('GET', at(o.tenant));
      const shown = rows.map((i) => ({
        ...i,
        fetch: i.fetchIncidents ? `every ${i.fetchInterval}; last: ${fetchLine(i.lastFetch)}${nextLine(i)}` : '',
      }));
      printResult(rows, o, () => table(shown, ['name', 'integration', 'connection', 'runOn', 'fetch']));
    }),
  );

  base(integ.command('show <instance>').description("one instance, its commands and the tenant's ExternalId")).action(
    (name: string, o: Opts) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<Instance>('GET', named(o, name));
        printResult(r, o, () => showLines(r));
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

  base(
    integ.command('fetch <instance>').description('fetch incidents now (as the interval would); prints the outcome'),
  ).action((name: string, o: Opts) =>
    runAction(o, async () => {
      const r = await adminClient(o).request<FetchState>('POST', named(o, name, '/fetch'), {});
      printResult(r, o, () => `instance ${name}: ${fetchLine(r)}`);
      if (r.outcome === 'failed') process.exitCode = 1;
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
  const took = `(${r.durationMs} ms${r.engine ? `, on engine ${r.engine}` : ''})`;
  if (id?.arn) return `ok: account ${id.account} as ${id.arn} ${took}`;
  return `ok: answered HTTP ${id?.status ?? '?'} ${took}`;
}
