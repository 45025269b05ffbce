/**
 * CLI verbs for automation rules in a tenant (docs/playbooks.md#automation-rules): `rules list --tenant T` (each rule,
 * shared or local, whether it is active there, and when it last fired) and `rules activate|deactivate RULE --tenant
 * T` (a local switch that a new shared version leaves alone). Not the tenant's API:
 * agent/tenant/playbooks/rule-routes.ts. Rules themselves are content (`palisade content`).
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { checkName } from '#common/names.js';

type Opts = Common & { tenant: string };
/** A rule's last firing: the run it started, or why it started none (a tenant before outcomes were kept: a run). */
interface Fired {
  at: string;
  incident: string;
  outcome?: 'started' | 'failed' | 'skipped';
  run?: string;
  error?: { code: string; message: string };
}
interface Rule {
  id: string;
  name: string;
  source: string;
  version: number;
  active: boolean;
  switched?: { active: boolean; by: string; at: string };
  playbook?: string;
  lastFired?: Fired;
  error?: string;
}

const at = (tenant: string, rest: string) => `/tenants/${checkName(tenant, 'tenant')}/api/rules${rest}`;

const row = (r: Rule) => ({
  id: r.id,
  name: r.name,
  source: r.source,
  active: `${r.active ? 'yes' : 'no'}${r.switched ? ' (local)' : ''}`,
  playbook: r.playbook ?? `invalid: ${r.error}`,
  'last fired': r.lastFired ? lastFired(r.lastFired) : 'never',
});

/** The LAST FIRED cell: when, on which incident, and the run started or why none was. */
export function lastFired(f: Fired): string {
  const how =
    f.outcome === 'failed'
      ? `failed: ${f.error?.code ?? 'ERR_INTERNAL'}`
      : f.outcome === 'skipped'
        ? 'skipped: too many rules matched'
        : `run ${f.run}`;
  return `${f.at} incident ${f.incident} ${how}`;
}

export function registerRuleCommands(program: Command): void {
  const rules = program.command('rules').description("a tenant's automation rules, and switching them on or off there");
  const base = (cmd: Command) => withClientOptions(cmd).requiredOption('--tenant <tenant>', 'the tenant');

  base(rules.command('list').description('every rule the tenant holds: source, active, playbook, last fired')).action(
    (o: Opts) =>
      runAction(o, async () => {
        const rows = await adminClient(o).request<Rule[]>('GET', at(o.tenant, ''));
        printResult(rows, o, () => table(rows.map(row), ['id', 'name', 'source', 'active', 'playbook', 'last fired']));
      }),
  );

  for (const verb of ['activate', 'deactivate'] as const)
    base(
      rules
        .command(`${verb} <rule>`)
        .description(`switch a rule (content id or name) ${verb === 'activate' ? 'on' : 'off'} in this tenant`),
    ).action((rule: string, o: Opts) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<Rule>('POST', at(o.tenant, `/${encodeURIComponent(rule)}/${verb}`), {});
        printResult(r, o, () => [`rule ${r.name} (${r.id}) is ${r.active ? 'active' : 'inactive'} in ${o.tenant}`]);
      }),
    );
}
