/**
 * CLI verbs for events (docs/events.md): `events search --tenant T [--domain D] [--q TEXT] [--from ISO] [--to ISO]
 * [--limit N] [--before ID]`, `events settings --tenant T [--retention 30d] [--fsync on|off]`, and across tenants
 * `search events [--tenants a,b | --labels x] …` (merged newest first, partial when a tenant is down). Also
 * registers the domains, log-sources and properties verbs, so the CLI's root adds one line for all of issue 19.
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';
import { parseDuration } from '#common/duration.js';
import { MAX_CROSS_TENANT_EVENTS, MAX_EVENT_SEARCH_LIMIT, checkDomainName } from '#common/events.js';
import { onOff, registerDomainCommands, tenantApi } from './domains.js';
import { revealSearch } from './obfuscation.js';
import { registerLogSourceCommands } from './log-sources.js';
import { registerPropertyCommands } from './properties.js';
import { limitFlag } from './search.js';

type Filters = { domain?: string; q?: string; from?: string; to?: string; limit?: string };
type Row = Record<string, unknown>;
interface TenantErr {
  tenant: string;
  code: string;
  message: string;
}

const COLUMNS = ['time', 'domain', 'logSource', 'severity', 'sourceAddress', 'destinationAddress', 'message'];

/**
 * The filters every event search takes, checked (exit 2) and as query parameters; `maxLimit` is the most the route
 * answers (one tenant's, or main's across tenants).
 */
function filterQuery(o: Filters, maxLimit: number): URLSearchParams {
  const qs = new URLSearchParams();
  if (o.domain !== undefined) qs.set('domain', checkDomainName(o.domain, '--domain'));
  if (o.q !== undefined) qs.set('q', o.q);
  for (const k of ['from', 'to'] as const) {
    const v = o[k];
    if (v === undefined) continue;
    if (!Number.isFinite(Date.parse(v)))
      throw new BadParameterError('ERR_CLI_BAD_TIME', `--${k}: not an ISO 8601 time, e.g. 2026-12-01T00:00:00Z`, {
        field: k,
      });
    qs.set(k, new Date(Date.parse(v)).toISOString());
  }
  const limit = limitFlag(o.limit, maxLimit);
  if (limit !== undefined) qs.set('limit', limit);
  return qs;
}

const filterFlags = (cmd: Command) =>
  cmd
    .option('--domain <d>', 'only events of this domain')
    .option('--q <text>', 'text in the message, host or app (case-insensitive)')
    .option('--from <iso>', 'received at or after this time')
    .option('--to <iso>', 'received at or before this time')
    .option('--limit <n>', 'most events to show, newest first (default 100)');

const eventRows = (items: Row[]) => items.map((e) => ({ ...e, message: String(e.message ?? '').slice(0, 200) }));

export function registerEventCommands(program: Command): void {
  const events = program.command('events').description("a tenant's events (syslog from its engines)");
  filterFlags(withClientOptions(events.command('search').description('search one tenant’s events, newest first')))
    .requiredOption('--tenant <tenant>', 'the tenant')
    .option('--before <id>', 'older than this event id (the "more:" line of the previous page)')
    .option('--reveal-key-file <file>', 'open values an obfuscation rule sealed, with its key (needs events:reveal)')
    .action((o: Common & Filters & { tenant: string; before?: string; revealKeyFile?: string }) =>
      runAction(o, async () => {
        const qs = filterQuery(o, MAX_EVENT_SEARCH_LIMIT);
        if (o.before !== undefined) qs.set('before', o.before);
        type Page = { items: Row[]; next: string | null };
        const r =
          o.revealKeyFile !== undefined
            ? await revealSearch<Page>(o, qs, o.revealKeyFile)
            : await adminClient(o).request<Page>('GET', tenantApi(o.tenant, `events?${qs}`));
        printResult(r, o, () => [
          ...table(eventRows(r.items), COLUMNS),
          ...(r.next ? [`more: --before ${r.next}`] : []),
        ]);
      }),
    );

  withClientOptions(events.command('settings').description('show or change event settings (retention, fsync)'))
    .requiredOption('--tenant <tenant>', 'the tenant')
    .option('--retention <duration>', 'keep events this long, e.g. 30d (1h to 3650d); older ones are purged hourly')
    .option(
      '--fsync <on|off>',
      'fsync each batch before acknowledging it to its engine (on unless turned off: survives a power loss)',
    )
    .action((o: Common & { tenant: string; retention?: string; fsync?: string }) =>
      runAction(o, async () => {
        const c = adminClient(o);
        const path = tenantApi(o.tenant, 'events/settings');
        type Settings = { retention: string; cepFallthrough: boolean; fsync: boolean };
        const change: { retention?: string; fsync?: boolean } = {};
        if (o.retention !== undefined) {
          // The tenant keeps events from 1h to 3650d (agent/tenant/events/event-config.ts): say so before sending.
          const ms = parseDuration(o.retention, '--retention', '24h, 7d or 90d');
          if (ms < 3_600_000 || ms > 3650 * 86_400_000)
            throw new BadParameterError('ERR_BAD_DURATION', '--retention: from 1h to 3650d', { field: '--retention' });
          change.retention = o.retention;
        }
        const fsync = onOff(o.fsync, '--fsync');
        if (fsync !== undefined) change.fsync = fsync;
        const r =
          Object.keys(change).length === 0
            ? await c.request<Settings>('GET', path)
            : await c.request<Settings>('PATCH', path, change);
        printResult(r, o, () => `tenant ${o.tenant}: retention ${r.retention}, fsync ${r.fsync ? 'on' : 'off'}`);
      }),
    );

  const search = program.commands.find((c) => c.name() === 'search') ?? program.command('search');
  filterFlags(
    withClientOptions(
      search
        .command('events')
        .description('events of many tenants, merged newest first; a tenant that is down is reported, the rest answer'),
    ),
  )
    .option('--tenants <a,b>', 'only these tenants')
    .option('--labels <x,y>', 'only tenants carrying any of these labels')
    .option('--timeout <ms>', 'per-tenant deadline in ms (default 3000)')
    .action((o: Common & Filters & { tenants?: string; labels?: string; timeout?: string }) =>
      runAction(o, async () => {
        if (o.tenants !== undefined && o.labels !== undefined)
          throw new BadParameterError('ERR_SELECTOR_CONFLICT', 'give --tenants or --labels, not both', {
            field: 'tenants',
          });
        const qs = filterQuery(o, MAX_CROSS_TENANT_EVENTS);
        for (const k of ['tenants', 'labels'] as const) {
          const v = o[k];
          if (v === undefined) continue;
          const list = v
            .split(',')
            .map((x) => x.trim())
            .filter(Boolean);
          if (!list.length)
            throw new BadParameterError('ERR_CLI_BAD_LIST', `--${k}: give at least one name`, { field: k });
          qs.set(k, list.join(','));
        }
        if (o.timeout !== undefined) {
          if (!/^[0-9]{1,5}$/.test(o.timeout))
            throw new BadParameterError('ERR_CLI_BAD_NUMBER', '--timeout must be a whole number', { field: 'timeout' });
          qs.set('timeoutMs', o.timeout);
        }
        const r = await adminClient(o).request<{ items: Row[]; errors: TenantErr[] }>('GET', `/search/events?${qs}`);
        printResult(r, o, () => [
          ...table(eventRows(r.items), ['tenant', ...COLUMNS]),
          ...r.errors.map((e) => `tenant ${e.tenant}: ${e.message} (${e.code})`),
        ]);
      }),
    );

  registerDomainCommands(program);
  registerLogSourceCommands(program);
  registerPropertyCommands(program);
}
