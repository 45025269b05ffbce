/**
 * CLI verbs for the bird's-eye view: `search incidents` (across tenants, merged newest first, paged),
 * `search indicators` (across tenants, newest lastSeen first, not paged) and `commands run` (one
 * read-only or write command on many tenants). All go through main's REST API.
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';
import { MAX_SEARCH_LIMIT } from '#common/events.js';
import { INDICATOR_TYPES, REPUTATIONS } from '#common/indicators.js';

interface TenantErr {
  tenant: string;
  code: string;
  message: string;
}
interface IndicatorPage {
  items: Record<string, unknown>[];
  errors: TenantErr[];
  next: null;
}
interface Page {
  items: Record<string, unknown>[];
  errors: TenantErr[];
  next: string | null;
}
interface CommandResults {
  results: { tenant: string; ok: boolean; result?: unknown; error?: { code: string; message: string } }[];
}

type Selection = { tenants?: string; labels?: string };

function names(v: string, flag: string): string[] {
  const list = v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  if (list.length === 0)
    throw new BadParameterError('ERR_CLI_BAD_LIST', `${flag}: give at least one name`, { field: flag });
  return list;
}

function exclusive(o: Selection): void {
  if (o.tenants !== undefined && o.labels !== undefined)
    throw new BadParameterError('ERR_SELECTOR_CONFLICT', 'give --tenants or --labels, not both', { field: 'tenants' });
}

function wholeNumber(v: string | undefined, flag: string): string | undefined {
  if (v !== undefined && !/^[0-9]{1,6}$/.test(v))
    throw new BadParameterError('ERR_CLI_BAD_NUMBER', `${flag} must be a whole number`, { field: flag });
  return v;
}

/** `--limit`, checked against the route's range before asking (exit 2 with one line saying the range). */
export function limitFlag(v: string | undefined, max: number): string | undefined {
  if (v === undefined) return undefined;
  if (!/^[0-9]+$/.test(v) || Number(v) < 1 || Number(v) > max)
    throw new BadParameterError('ERR_CLI_BAD_NUMBER', `--limit must be a whole number from 1 to ${max}`, {
      field: '--limit',
    });
  return String(Number(v));
}

const errorLines = (errors: TenantErr[]) => errors.map((e) => `tenant ${e.tenant}: ${e.message} (${e.code})`);

/** The selection and the deadline/limit flags every search shares, as query parameters. */
function commonQuery(o: Selection & { limit?: string; timeout?: string }): URLSearchParams {
  exclusive(o);
  const qs = new URLSearchParams();
  if (o.tenants !== undefined) qs.set('tenants', names(o.tenants, '--tenants').join(','));
  if (o.labels !== undefined) qs.set('labels', names(o.labels, '--labels').join(','));
  const limit = limitFlag(o.limit, MAX_SEARCH_LIMIT);
  const timeout = wholeNumber(o.timeout, '--timeout');
  if (limit !== undefined) qs.set('limit', limit);
  if (timeout !== undefined) qs.set('timeoutMs', timeout);
  return qs;
}

function oneOf(v: string | undefined, allowed: readonly string[], flag: string): string | undefined {
  if (v !== undefined && !allowed.includes(v))
    throw new BadParameterError('ERR_CLI_BAD_CHOICE', `${flag} must be one of ${allowed.join(', ')}`, { field: flag });
  return v;
}

export function registerSearchCommands(program: Command): void {
  const search = program.command('search').description('search across tenants (nothing is copied to main)');
  withClientOptions(
    search
      .command('incidents')
      .description(
        'incidents of many tenants, merged newest first; a tenant that is down is reported, the rest still answer',
      ),
  )
    .option('--q <text>', 'text in name or details')
    .option('--tenants <a,b>', 'only these tenants')
    .option('--labels <x,y>', 'only tenants carrying any of these labels')
    .option('--status <status>', 'open or closed')
    .option('--severity <0-4>', 'severity')
    .option('--type <type>', 'incident type')
    .option('--limit <n>', 'page size (1-200)')
    .option('--cursor <c>', 'next page: the cursor printed by the previous one (repeat the same filters)')
    .option('--timeout <ms>', 'per-tenant deadline in ms (default 3000)')
    .action(
      (
        o: Common &
          Selection & {
            q?: string;
            status?: string;
            severity?: string;
            type?: string;
            limit?: string;
            cursor?: string;
            timeout?: string;
          },
      ) =>
        runAction(o, async () => {
          const qs = commonQuery(o);
          for (const k of ['q', 'status', 'severity', 'type', 'cursor'] as const)
            if (o[k] !== undefined) qs.set(k, o[k]!);
          const r = await adminClient(o).request<Page>('GET', `/search/incidents?${qs}`);
          printResult(r, o, () => [
            ...table(r.items, ['tenant', 'id', 'severity', 'status', 'type', 'name', 'created']),
            ...errorLines(r.errors),
            ...(r.next ? [`more: --cursor ${r.next}`] : []),
          ]);
        }),
    );

  withClientOptions(
    search
      .command('indicators')
      .description(
        'indicators of many tenants, newest lastSeen first (not paged: narrow the filters); a tenant that is down is reported, the rest still answer',
      ),
  )
    .option('--value <v>', 'exact indicator value, in any type unless --type is given')
    .option('--type <type>', INDICATOR_TYPES.join(', '))
    .option('--reputation <r>', REPUTATIONS.join(', '))
    .option('--tenants <a,b>', 'only these tenants')
    .option('--labels <x,y>', 'only tenants carrying any of these labels')
    .option('--limit <n>', 'most matches to show, the newest (1-200, default 50)')
    .option('--timeout <ms>', 'per-tenant deadline in ms (default 3000)')
    .action(
      (
        o: Common &
          Selection & { value?: string; type?: string; reputation?: string; limit?: string; timeout?: string },
      ) =>
        runAction(o, async () => {
          if (o.value === undefined && o.type === undefined && o.reputation === undefined) {
            throw new BadParameterError(
              'ERR_SEARCH_TOO_BROAD',
              'give at least one of --value, --type or --reputation',
              { field: 'value' },
            );
          }
          const qs = commonQuery(o);
          if (o.value !== undefined) qs.set('value', o.value);
          const type = oneOf(o.type, INDICATOR_TYPES, '--type');
          const reputation = oneOf(o.reputation, REPUTATIONS, '--reputation');
          if (type !== undefined) qs.set('type', type);
          if (reputation !== undefined) qs.set('reputation', reputation);
          const r = await adminClient(o).request<IndicatorPage>('GET', `/search/indicators?${qs}`);
          printResult(r, o, () => [
            ...table(
              r.items.map((i) => ({ ...i, incidents: Array.isArray(i.incidents) ? i.incidents.length : undefined })),
              ['tenant', 'type', 'value', 'reputation', 'lastSeen', 'firstSeen', 'incidents'],
            ),
            ...errorLines(r.errors),
          ]);
        }),
    );

  const commands = program.command('commands').description('run a command across tenants');
  withClientOptions(
    commands
      .command('run <command>')
      .description(
        'incidents.count, incidents.stats, indicators.lookup, or integration:INSTANCE.COMMAND (a read-only ' +
          "command of each tenant's own instance); or, with commands:write, users:sync, roles:sync, list:share " +
          'or playbook:publish; on every chosen tenant at once, each outcome on its own',
      ),
  )
    .option('--args <json>', 'the command\'s arguments as a JSON object, e.g. \'{"status":"open"}\'')
    .option('--tenants <a,b>', 'these tenants')
    .option('--labels <x,y>', 'tenants carrying any of these labels')
    .option(
      '--timeout <ms>',
      'per-tenant deadline in ms (default 3000; 25000 for integration commands, 15000 for write commands)',
    )
    .action((command: string, o: Common & Selection & { args?: string; timeout?: string }) =>
      runAction(o, async () => {
        exclusive(o);
        if (o.tenants === undefined && o.labels === undefined)
          throw new BadParameterError('ERR_CLI_SELECTOR', 'give --tenants or --labels: where to run the command', {
            field: 'tenants',
          });
        let args: unknown;
        if (o.args !== undefined) {
          try {
            args = JSON.parse(o.args);
          } catch (e) {
            throw new BadParameterError('ERR_CLI_BAD_ARGS', `--args is not JSON: ${(e as Error).message}`, {
              field: 'args',
            });
          }
          if (args === null || typeof args !== 'object' || Array.isArray(args))
            throw new BadParameterError('ERR_CLI_BAD_ARGS', '--args must be a JSON object', { field: 'args' });
        }
        const timeout = wholeNumber(o.timeout, '--timeout');
        const r = await adminClient(o).request<CommandResults>('POST', '/commands', {
          command,
          ...(args ? { args } : {}),
          ...(o.tenants !== undefined
            ? { tenants: names(o.tenants, '--tenants') }
            : { labels: names(o.labels!, '--labels') }),
          ...(timeout !== undefined ? { timeoutMs: Number(timeout) } : {}),
        });
        printResult(r, o, () =>
          table(
            r.results.map((x) => ({
              tenant: x.tenant,
              ok: x.ok ? 'ok' : 'failed',
              answer: x.ok ? JSON.stringify(x.result) : `${x.error?.message} (${x.error?.code})`,
            })),
            ['tenant', 'ok', 'answer'],
          ),
        );
        if (r.results.some((x) => !x.ok)) process.exitCode = 1;
      }),
    );
}
