/**
 * CLI verbs for a tenant's sites (docs/sites.md): `sites create|list|activate|deactivate S --tenant T`.
 * `deactivate` removes the site's data, so without `--yes` it changes nothing: the tenant answers what would be
 * removed, printed as one line, and the exit code is 2. Not the tenant's API: agent/tenant/sites/site-routes.ts.
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { checkName } from '#common/names.js';
import { describeRemoval, type SitePurgeCounts, type SiteView } from '#common/sites.js';

type Opts = Common & { tenant: string; yes?: boolean };

const at = (tenant: string, rest = '') => `/tenants/${checkName(tenant, 'tenant')}/api/sites${rest}`;
const named = (tenant: string, site: string, verb: string) => at(tenant, `/${checkName(site, 'site')}/${verb}`);

const row = (s: SiteView) => ({
  name: s.name,
  active: s.active ? 'yes' : 'no',
  'sync status': s.syncStatus,
  'last synced': s.lastSynced ?? 'never',
});

export function registerSiteCommands(program: Command): void {
  const sites = program
    .command('sites')
    .description("a tenant's sites: shares reach every active one; deactivating one removes its data");
  const base = (cmd: Command) => withClientOptions(cmd).requiredOption('--tenant <tenant>', 'the tenant');

  base(sites.command('create <site>').description('add an active site to the tenant')).action((site: string, o: Opts) =>
    runAction(o, async () => {
      const s = await adminClient(o).request<SiteView>('POST', at(o.tenant), { name: checkName(site, 'site') });
      printResult(s, o, () => `site ${s.name} created in tenant ${o.tenant} (active, ${s.syncStatus})`);
    }),
  );

  base(sites.command('list').description('each site: active, sync status, last synced')).action((o: Opts) =>
    runAction(o, async () => {
      const rows = await adminClient(o).request<SiteView[]>('GET', at(o.tenant));
      printResult(rows, o, () => table(rows.map(row), ['name', 'active', 'sync status', 'last synced']));
    }),
  );

  base(
    sites.command('activate <site>').description('make a site active again (empty; the next share reaches it)'),
  ).action((site: string, o: Opts) =>
    runAction(o, async () => {
      const s = await adminClient(o).request<SiteView>('POST', named(o.tenant, site, 'activate'), {});
      printResult(s, o, () => `site ${s.name} is active in tenant ${o.tenant} (${s.syncStatus})`);
    }),
  );

  base(
    sites
      .command('deactivate <site>')
      .description('make a site inactive and remove its data (its incidents, their runs and timelines)')
      .option('--yes', 'confirm: without it nothing changes and the command says what would be removed'),
  ).action((site: string, o: Opts) =>
    runAction(o, async () => {
      const r = await adminClient(o).request<{ site: SiteView; removed: SitePurgeCounts }>(
        'POST',
        named(o.tenant, site, 'deactivate'),
        o.yes ? { confirm: true } : {},
      );
      printResult(
        r,
        o,
        () => `site ${r.site.name} deactivated in tenant ${o.tenant}; removed ${describeRemoval(r.removed)}`,
      );
    }),
  );
}
