/**
 * CLI verbs for a tenant's security profiles (docs/events.md#security-profiles): `profiles create P --tenant T
 * --domains a,b`, `profiles list --tenant T`, `profiles remove P --tenant T`. A user is given one with `users create
 * NAME --tenant T --profile P` (a customer user on main) or `users create NAME --in-tenant T --profile P`. Names are
 * checked here so bad input exits 2 before anything is sent; through main's relay to agent/tenant/profile-routes.ts.
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';
import { checkDomainName } from '#common/events.js';
import { tenantApi } from './domains.js';

type Opts = Common & { tenant: string };
interface ProfileRow {
  id: string;
  name: string;
  domains: string[];
}

const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
function checkProfileName(v: string): string {
  if (!PROFILE_NAME.test(v))
    throw new BadParameterError('ERR_CLI_BAD_CHOICE', "profile: 1-63 letters, digits, '.', '_' or '-'", {
      field: 'profile',
    });
  return v;
}

export function registerProfileCommands(program: Command): void {
  const profiles = program
    .command('profiles')
    .description("a tenant's security profiles: the domains a user who carries one may see");
  const base = (cmd: Command) => withClientOptions(cmd).requiredOption('--tenant <tenant>', 'the tenant');

  base(profiles.command('create <profile>').description('create a profile limited to some domains'))
    .requiredOption('--domains <a,b>', 'the domains its users see (comma-separated)')
    .action((name: string, o: Opts & { domains: string }) =>
      runAction(o, async () => {
        const domains = o.domains
          .split(',')
          .map((d) => d.trim())
          .filter(Boolean)
          .map((d) => checkDomainName(d, 'domains'));
        if (domains.length === 0)
          throw new BadParameterError('ERR_CLI_MISSING', '--domains: give at least one domain', { field: 'domains' });
        const body = { name: checkProfileName(name), domains };
        const r = await adminClient(o).request<ProfileRow>('POST', tenantApi(o.tenant, 'profiles'), body);
        printResult(r, o, () => `profile "${r.name}" created in tenant ${o.tenant} (${r.domains.join(', ')})`);
      }),
    );

  base(profiles.command('list').description('list profiles and their domains')).action((o: Opts) =>
    runAction(o, async () => {
      const r = await adminClient(o).request<{ items: ProfileRow[] }>('GET', tenantApi(o.tenant, 'profiles'));
      printResult(r, o, () =>
        table(
          r.items.map((p) => ({ ...p, domains: p.domains.join(',') })),
          ['id', 'name', 'domains'],
        ),
      );
    }),
  );

  base(profiles.command('remove <profile>').description('remove a profile no user carries')).action(
    (name: string, o: Opts) =>
      runAction(o, async () => {
        const path = tenantApi(o.tenant, `profiles/${encodeURIComponent(checkProfileName(name))}`);
        const r = await adminClient(o).request<ProfileRow>('DELETE', path);
        printResult(r, o, () => `profile "${r.name}" removed from tenant ${o.tenant}`);
      }),
  );
}
