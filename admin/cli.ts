/**
 * The admin verbs: everything `palisade` does by talking to a running main over REST (hosts, engines,
 * tenants, content, search, users and keys, installers, audit). Each group registers itself from its own
 * module; this one wires them together and holds the few that fit nowhere else.
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { registerAgentAdmin } from './agents.js';
import { registerTenantCommands } from './tenants.js';
import { registerEngineWorkCommands } from './engines.js';
import { registerSearchCommands } from './search.js';
import { registerAccessCommands } from './access.js';
import { registerContentCommands } from './content.js';
import { registerConnectionCommands } from './connections.js';
import { registerIntegrationCommands } from './integrations.js';
import { registerScriptCommands } from './scripts.js';
import { registerPlaybookCommands } from './playbooks.js';
import { registerRuleCommands } from './rules.js';
import { registerSiteCommands } from './sites.js';
import { registerInstallerAdmin } from './installers.js';
import { registerUpgradeCommands } from './upgrades.js';
import { registerEventCommands } from './events.js';
import { registerProfileCommands } from './profiles.js';
import { registerObfuscationCommands } from './obfuscation.js';

export function registerAdminCommands(program: Command): void {
  for (const kind of ['host', 'engine'] as const) registerAgentAdmin(program, kind);
  registerTenantCommands(program);
  registerEngineWorkCommands(program);
  registerSearchCommands(program);
  registerAccessCommands(program);
  registerContentCommands(program);
  registerConnectionCommands(program);
  registerIntegrationCommands(program);
  registerScriptCommands(program);
  registerPlaybookCommands(program);
  registerRuleCommands(program);
  registerSiteCommands(program);
  registerInstallerAdmin(program);
  registerUpgradeCommands(program);
  registerEventCommands(program); // after registerSearchCommands: it adds `search events`
  registerProfileCommands(program);
  registerObfuscationCommands(program);

  withClientOptions(
    program.command('audit').description("recent audit entries on main, or in one tenant's own log with --tenant"),
  )
    .option('--limit <n>', 'how many', '50')
    .option('--action <prefix>', 'only actions starting with this')
    .option('--tenant <tenant>', "the tenant's own audit log (kept in the tenant, not on main)")
    .action((o: Common & { limit: string; action?: string; tenant?: string }) =>
      runAction(o, async () => {
        const q = new URLSearchParams({ limit: o.limit, ...(o.action ? { action: o.action } : {}) });
        const path = o.tenant ? `/tenants/${encodeURIComponent(o.tenant)}/api/audit?${q}` : `/audit?${q}`;
        const rows = await adminClient(o).request<Record<string, unknown>[]>('GET', path);
        printResult(rows, o, () =>
          table(
            rows,
            o.tenant
              ? ['at', 'actor', 'action', 'outcome', 'status', 'from']
              : ['at', 'actor', 'action', 'target', 'outcome', 'remote'],
          ),
        );
      }),
    );
}
