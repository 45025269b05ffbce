/**
 * CLI verbs for a tenant's custom event properties (docs/events.md): `properties create NAME --tenant T --regex RE`,
 * `properties list|remove`. A property's value is its regex's first capture group (else the whole match) in each
 * event's raw message; domains map `--property NAME=VALUE`.
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';
import { MAX_PROPERTY_REGEX, checkPropertyName } from '#common/events.js';
import { tenantApi } from './domains.js';

type Opts = Common & { tenant: string };
type Property = { id: string; name: string; regex: string };

export function registerPropertyCommands(program: Command): void {
  const props = program.command('properties').description("a tenant's custom event properties (regex on messages)");
  const base = (cmd: Command) => withClientOptions(cmd).requiredOption('--tenant <tenant>', 'the tenant');

  base(props.command('create <name>').description('define a custom property'))
    .requiredOption('--regex <re>', 'JavaScript regex; its first capture group (else the match) is the value')
    .action((name: string, o: Opts & { regex: string }) =>
      runAction(o, async () => {
        if (!o.regex || o.regex.length > MAX_PROPERTY_REGEX)
          throw new BadParameterError('ERR_PROPERTY_REGEX', `--regex: 1 to ${MAX_PROPERTY_REGEX} characters`, {
            field: 'regex',
          });
        try {
          new RegExp(o.regex);
        } catch (e) {
          throw new BadParameterError('ERR_PROPERTY_REGEX', `--regex: ${(e as Error).message}`, { field: 'regex' });
        }
        const body = { name: checkPropertyName(name), regex: o.regex };
        const r = await adminClient(o).request<Property>('POST', tenantApi(o.tenant, 'properties'), body);
        printResult(r, o, () => `property ${r.name} created in tenant ${o.tenant}`);
      }),
    );

  base(props.command('list').description('list custom properties')).action((o: Opts) =>
    runAction(o, async () => {
      const r = await adminClient(o).request<{ items: Property[] }>('GET', tenantApi(o.tenant, 'properties'));
      printResult(r, o, () => table(r.items, ['id', 'name', 'regex']));
    }),
  );

  base(props.command('remove <name>').description('remove a custom property no mapping uses')).action(
    (name: string, o: Opts) =>
      runAction(o, async () => {
        const path = tenantApi(o.tenant, `properties/${checkPropertyName(name)}`);
        const r = await adminClient(o).request<{ name: string }>('DELETE', path);
        printResult(r, o, () => `property ${r.name} removed from tenant ${o.tenant}`);
      }),
  );
}
