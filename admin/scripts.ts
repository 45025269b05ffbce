/**
 * CLI verbs for scripts (content items of type script): `scripts run NAME_OR_ID --tenant T [--input JSON]
 * [--incident ID]` runs one in the tenant's sandbox with the caller's permissions and prints its logs, then its
 * result. Scripts are written and shared as content (`content create --type script`); not the tenant's route:
 * agent/tenant/scripts/script-routes.ts.
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { jsonLines, printResult, runAction } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';
import { checkName } from '#common/names.js';

type Opts = Common & { tenant: string; input?: string; incident?: string };
interface RunAnswer {
  script: { id: string; name: string; version: number };
  result: unknown;
  logs: string[];
  logsDropped: number;
  durationMs: number;
}

/** `--input '{"ip":"192.0.2.1"}'`: any JSON value, or exit 2 before anything is sent. */
function inputOf(text: string | undefined): { input?: unknown } {
  if (text === undefined) return {};
  try {
    return { input: JSON.parse(text) as unknown };
  } catch {
    throw new BadParameterError('ERR_CLI_BAD_JSON', `--input: not JSON, e.g. '{"ip":"192.0.2.1"}'`, {
      field: 'input',
    });
  }
}

function runLines(r: RunAnswer): string[] {
  const dropped = r.logsDropped ? [`log: (${r.logsDropped} more lines not kept)`] : [];
  return [
    ...r.logs.map((l) => `log: ${l}`),
    ...dropped,
    ...jsonLines(r.result),
    `(script ${r.script.name} v${r.script.version}, ${r.durationMs} ms)`,
  ];
}

export function registerScriptCommands(program: Command): void {
  const scripts = program.command('scripts').description('scripts (content of type script) run in a tenant');
  withClientOptions(
    scripts.command('run <script>').description("run a script the tenant holds (name or id) in the tenant's sandbox"),
  )
    .requiredOption('--tenant <tenant>', 'the tenant to run it in, with its integrations and incidents')
    .option('--input <json>', 'the value the script gets as `input`')
    .option('--incident <id>', 'the incident palisade.incident.get/update act on')
    .action((script: string, o: Opts) =>
      runAction(o, async () => {
        const body = { script, ...inputOf(o.input), ...(o.incident !== undefined ? { incident: o.incident } : {}) };
        const path = `/tenants/${checkName(o.tenant, 'tenant')}/api/scripts/run`;
        const r = await adminClient(o).request<RunAnswer>('POST', path, body);
        printResult(r, o, () => runLines(r));
      }),
    );
}
