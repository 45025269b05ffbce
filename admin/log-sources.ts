/**
 * CLI verbs for a tenant's log sources (docs/events.md): `log-sources list --tenant T` and
 * `log-sources group S --tenant T --group G [--remove]`. A log source is IDENTIFIER@ENGINE: the syslog header's
 * hostname (else the sender's address) and the engine that received it; naming one not seen yet records it.
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { checkGroupName, checkLogSourceName } from '#common/events.js';
import { tenantApi } from './domains.js';

type Opts = Common & { tenant: string };
interface Source {
  id: string;
  name: string;
  groups: string[];
  firstSeen?: string;
  lastSeen?: string;
}

export function registerLogSourceCommands(program: Command): void {
  const ls = program.command('log-sources').description("a tenant's log sources: who sends it events, by engine");
  const base = (cmd: Command) => withClientOptions(cmd).requiredOption('--tenant <tenant>', 'the tenant');

  base(ls.command('list').description('list log sources')).action((o: Opts) =>
    runAction(o, async () => {
      const r = await adminClient(o).request<{ items: Source[] }>('GET', tenantApi(o.tenant, 'log-sources'));
      printResult(r, o, () =>
        table(
          r.items.map((s) => ({ ...s, groups: s.groups.join(',') || undefined })),
          ['id', 'name', 'groups', 'firstSeen', 'lastSeen'],
        ),
      );
    }),
  );

  base(ls.command('group <source>').description('put a log source in a group (or take it out with --remove)'))
    .requiredOption('--group <g>', 'the group')
    .option('--remove', 'take the log source out of the group')
    .action((name: string, o: Opts & { group: string; remove?: boolean }) =>
      runAction(o, async () => {
        const path = tenantApi(
          o.tenant,
          `log-sources/${encodeURIComponent(checkLogSourceName(name, 'source'))}/groups`,
        );
        const group = checkGroupName(o.group, '--group');
        const c = adminClient(o);
        const r = o.remove
          ? await c.request<Source>('DELETE', `${path}/${encodeURIComponent(group)}`)
          : await c.request<Source>('POST', path, { group });
        printResult(r, o, () => `log source ${r.name} in groups: ${r.groups.join(', ') || '(none)'}`);
      }),
    );
}
