/**
 * CLI verbs for obfuscation (docs/events.md#obfuscation): `obfuscation create NAME --tenant T [--domain D]
 * (--field username | --regex RE)` prints the rule's key ONCE (`--json`: `{"key",…}`; keep it in a file, e.g.
 * `--json | jq -r .key > k`), `obfuscation list|remove`. `events search … --reveal-key-file F` (revealSearch) sends
 * the key in the signed body of `POST …/events/reveal` so the tenant opens that rule's values in the answer.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';
import { checkDomainName } from '#common/events.js';
import { tenantApi } from './domains.js';

type Opts = Common & { tenant: string };
type RuleRow = { id: string; name: string; domain?: string; field?: string; regex?: string; key?: string };

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const checkRuleName = (v: string) => {
  if (!NAME.test(v))
    throw new BadParameterError('ERR_CLI_BAD_CHOICE', "name: 1-63 letters, digits, '.', '_' or '-'", { field: 'name' });
  return v;
};

/** The key in `file` (base64 of 32 bytes, as create printed it), or exit 2 naming the flag. */
export function readRevealKey(file: string): string {
  let key: string;
  try {
    key = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new BadParameterError('ERR_CLI_MISSING', `--reveal-key-file: cannot read ${file} (${(e as Error).message})`, {
      field: 'reveal-key-file',
    });
  }
  if (Buffer.from(key, 'base64').length !== 32)
    throw new BadParameterError('ERR_CLI_BAD_CHOICE', '--reveal-key-file: not a key printed by obfuscation create', {
      field: 'reveal-key-file',
    });
  return key;
}

/** `events search` with --reveal-key-file: the same filters, in the body of POST …/events/reveal. */
export async function revealSearch<T>(o: Common & { tenant: string }, qs: URLSearchParams, file: string): Promise<T> {
  const key = readRevealKey(file);
  const body: Record<string, unknown> = { key };
  for (const [k, v] of qs) body[k] = k === 'limit' ? Number(v) : v;
  return adminClient(o).request<T>('POST', tenantApi(o.tenant, 'events/reveal'), body);
}

export function registerObfuscationCommands(program: Command): void {
  const ob = program
    .command('obfuscation')
    .description("a tenant's obfuscation rules: values encrypted before events are stored, opened only with the key");
  const base = (cmd: Command) => withClientOptions(cmd).requiredOption('--tenant <tenant>', 'the tenant');

  base(ob.command('create <name>').description('encrypt matching values from now on; prints the key once'))
    .option('--domain <d>', 'only events of this domain')
    .option(
      '--field <name>',
      'a user-name, address or port field, or a custom property (username covers user, suser, …)',
    )
    .option('--regex <re>', 'every match in the message (its first group if it has one)')
    .action((name: string, o: Opts & { domain?: string; field?: string; regex?: string }) =>
      runAction(o, async () => {
        if ((o.field === undefined) === (o.regex === undefined))
          throw new BadParameterError('ERR_CLI_MISSING', 'give exactly one of --field NAME or --regex RE', {
            field: 'field',
          });
        const body = {
          name: checkRuleName(name),
          ...(o.domain !== undefined ? { domain: checkDomainName(o.domain, 'domain') } : {}),
          ...(o.field !== undefined ? { field: o.field } : {}),
          ...(o.regex !== undefined ? { regex: o.regex } : {}),
        };
        const r = await adminClient(o).request<RuleRow>('POST', tenantApi(o.tenant, 'obfuscation'), body);
        printResult(r, o, () => [
          `obfuscation rule "${r.name}" created in tenant ${o.tenant}`,
          `key (shown once; keep it in a file for --reveal-key-file): ${r.key}`,
        ]);
      }),
    );

  base(ob.command('list').description('list obfuscation rules (never their keys)')).action((o: Opts) =>
    runAction(o, async () => {
      const r = await adminClient(o).request<{ items: RuleRow[] }>('GET', tenantApi(o.tenant, 'obfuscation'));
      printResult(r, o, () => table(r.items, ['id', 'name', 'domain', 'field', 'regex']));
    }),
  );

  base(ob.command('remove <name>').description('stop obfuscating (values already sealed stay sealed)')).action(
    (name: string, o: Opts) =>
      runAction(o, async () => {
        const path = tenantApi(o.tenant, `obfuscation/${encodeURIComponent(checkRuleName(name))}`);
        const r = await adminClient(o).request<RuleRow>('DELETE', path);
        printResult(r, o, () => `obfuscation rule "${r.name}" removed from tenant ${o.tenant}`);
      }),
  );
}
