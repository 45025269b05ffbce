/**
 * CLI verbs for a tenant's domains (docs/events.md): `domains create|list|remove D --tenant T`,
 * `domains map|unmap D --tenant T (--log-source S | --log-source-group G | --event-collector ENGINE |
 * --property NAME=VALUE | --flow-source S | --vlan N)` and `domains settings --tenant T [--cep-fallthrough on|off]`.
 * Names are checked here (common/events.ts) so bad input exits 2 before anything is sent. Through main's relay to
 * the tenant's own API (agent/tenant/events/domain-routes.ts).
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';
import { checkName } from '#common/names.js';
import { checkDomainName, type MappingKind } from '#common/events.js';

type Opts = Common & { tenant: string };
type MapOpts = Opts & {
  logSource?: string;
  logSourceGroup?: string;
  eventCollector?: string;
  property?: string;
  flowSource?: string;
  vlan?: string;
};

export const tenantApi = (tenant: string, rest: string) => `/tenants/${checkName(tenant, 'tenant')}/api/${rest}`;
const domainPath = (tenant: string, name: string, rest = '') =>
  tenantApi(tenant, `domains/${encodeURIComponent(checkDomainName(name))}${rest}`);

interface DomainRow {
  id: string;
  name: string;
  description?: string;
  mappings?: { id: string }[];
}
interface Settings {
  cepFallthrough: boolean;
  retention: string;
}

const FLAGS: [keyof MapOpts, MappingKind][] = [
  ['property', 'property'],
  ['logSource', 'log-source'],
  ['logSourceGroup', 'log-source-group'],
  ['eventCollector', 'event-collector'],
  ['flowSource', 'flow-source'],
  ['vlan', 'vlan'],
];

/** The one mapping flag given, as the API's `{kind, value}`; exit 2 unless exactly one. */
function mappingOf(o: MapOpts): { kind: MappingKind; value: string } {
  const given = FLAGS.filter(([f]) => o[f] !== undefined);
  if (given.length !== 1)
    throw new BadParameterError(
      'ERR_CLI_MISSING',
      'give exactly one of --property NAME=VALUE, --log-source S, --log-source-group G, --event-collector ENGINE, ' +
        '--flow-source S, --vlan N',
      { field: 'kind' },
    );
  const [flag, kind] = given[0];
  const value = String(o[flag]);
  if (kind === 'property' && value.indexOf('=') <= 0)
    throw new BadParameterError('ERR_CLI_MISSING', '--property: give NAME=VALUE', { field: 'property' });
  return { kind, value };
}

export function onOff(v: string | undefined, flag: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (v !== 'on' && v !== 'off')
    throw new BadParameterError('ERR_CLI_BAD_CHOICE', `${flag} must be on or off`, { field: flag });
  return v === 'on';
}

export function registerDomainCommands(program: Command): void {
  const domains = program
    .command('domains')
    .description("a tenant's event domains (QRadar model): what each event is tagged with, and by which rule");
  const base = (cmd: Command) => withClientOptions(cmd).requiredOption('--tenant <tenant>', 'the tenant');
  const mapFlags = (cmd: Command) =>
    cmd
      .option('--property <name=value>', 'events whose custom property has this value')
      .option('--log-source <s>', 'events of this log source (IDENTIFIER@ENGINE, see log-sources list)')
      .option('--log-source-group <g>', 'events of log sources in this group')
      .option('--event-collector <engine>', 'events received by this engine')
      .option('--flow-source <s>', 'records whose flow source (kv flowSource=, CEF csN labelled flowSource) is this')
      .option('--vlan <n>', 'records whose VLAN (kv vlan=, CEF csN/cnN labelled vlan) is this');

  base(domains.command('create <domain>').description('create a domain'))
    .option('--description <text>', 'what it is for')
    .action((name: string, o: Opts & { description?: string }) =>
      runAction(o, async () => {
        const body = { name: checkDomainName(name), ...(o.description ? { description: o.description } : {}) };
        const r = await adminClient(o).request<DomainRow>('POST', tenantApi(o.tenant, 'domains'), body);
        printResult(r, o, () => `domain "${r.name}" created in tenant ${o.tenant} (id ${r.id})`);
      }),
    );

  base(domains.command('list').description('list domains with their mappings')).action((o: Opts) =>
    runAction(o, async () => {
      const r = await adminClient(o).request<{ items: DomainRow[] }>('GET', tenantApi(o.tenant, 'domains'));
      printResult(r, o, () =>
        table(
          r.items.map((d) => ({ ...d, mappings: (d.mappings ?? []).map((m) => m.id).join(' ') })),
          ['id', 'name', 'mappings'],
        ),
      );
    }),
  );

  base(domains.command('remove <domain>').description('remove a domain and its mappings')).action(
    (name: string, o: Opts) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<{ name: string; mappingsRemoved: number }>(
          'DELETE',
          domainPath(o.tenant, name),
        );
        printResult(r, o, () => `domain "${r.name}" removed from tenant ${o.tenant} (${r.mappingsRemoved} mappings)`);
      }),
  );

  mapFlags(base(domains.command('map <domain>').description('map a source of events to the domain'))).action(
    (name: string, o: MapOpts) =>
      runAction(o, async () => {
        const body = mappingOf(o);
        const r = await adminClient(o).request<{ id: string }>('POST', domainPath(o.tenant, name, '/mappings'), body);
        printResult(r, o, () => `${r.id} mapped to domain "${name}" in tenant ${o.tenant}`);
      }),
  );

  mapFlags(base(domains.command('unmap <domain>').description('remove one mapping of the domain'))).action(
    (name: string, o: MapOpts) =>
      runAction(o, async () => {
        const body = mappingOf(o);
        const r = await adminClient(o).request<{ id: string }>('POST', domainPath(o.tenant, name, '/unmap'), body);
        printResult(r, o, () => `${r.id} unmapped from domain "${name}" in tenant ${o.tenant}`);
      }),
  );

  base(domains.command('settings').description('show or change domain tagging settings'))
    .option('--cep-fallthrough <on|off>', "QRadar's DOMAIN_CEP_FALLTHROUGH: an unmatched property value falls through")
    .action((o: Opts & { cepFallthrough?: string }) =>
      runAction(o, async () => {
        const on = onOff(o.cepFallthrough, '--cep-fallthrough');
        const c = adminClient(o);
        const path = tenantApi(o.tenant, 'events/settings');
        const r = await (on === undefined
          ? c.request<Settings>('GET', path)
          : c.request<Settings>('PATCH', path, { cepFallthrough: on }));
        printResult(r, o, () => `tenant ${o.tenant}: cep-fallthrough ${r.cepFallthrough ? 'on' : 'off'}`);
      }),
    );
}
