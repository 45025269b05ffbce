/**
 * CLI verbs for the content library and its propagation: `content create|list|show|update|publish|share|
 * unshare|status`, and `tenant labels NAME --set a,b` (propagation labels of a tenant). All go through
 * main's REST API; `--json` prints the API's answer.
 */
import type { Command } from 'commander';
import { readOptionFile } from './option-file.js';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { jsonLines, printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';
import { CONTENT_TYPES } from '#common/content.js';

interface Item {
  id: string;
  type: string;
  name: string;
  labels: string[];
  version: number;
  published: number | null;
  shared: boolean;
  sharedVersion: number | null;
}
interface Status {
  id: string;
  rollup: string;
  problems?: string[];
  tenants: {
    tenant: string;
    state: string;
    version: number | null;
    target: number | null;
    reason: string | null;
    dependencies?: { type: string; name: string; version: number; held: number | null; present: boolean }[];
  }[];
  log: { at: string; action: string; outcome: string; tenant?: string; version?: number; reason?: string }[];
}

function labelsOf(v: string): string[] {
  return v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
}

async function bodyOf(o: { body?: string; bodyFile?: string }): Promise<string | undefined> {
  if (o.body !== undefined && o.bodyFile !== undefined)
    throw new BadParameterError('ERR_CLI_BODY_TWICE', 'give --body or --body-file, not both', { field: 'body' });
  if (o.bodyFile === undefined) return o.body;
  return readOptionFile(o.bodyFile, 'body-file', 'bodyFile');
}

const path = (id: string, rest = '') => `/content/${encodeURIComponent(id)}${rest}`;
const itemLine = (i: Item) =>
  `${i.id} ${i.type} "${i.name}" version ${i.version}, published ${i.published ?? 'none'}${i.shared ? `, shared at ${i.sharedVersion}` : ''}`;

type Dependency = NonNullable<Status['tenants'][number]['dependencies']>[number];

/** `present`, with the version the tenant holds when it is not the one the share took (a later share of the item). */
function dependencyState(d: Dependency): string {
  const holds = d.held === null ? 'none' : `v${d.held}`;
  if (!d.present) return `MISSING (holds ${holds})`;
  return d.held === d.version ? 'present' : `present (tenant holds ${holds})`;
}

function statusText(s: Status): string[] {
  const rows = s.tenants.map((t) => ({ ...t, reason: t.reason ?? '' }));
  const log = s.log
    .slice(-10)
    .map(
      (l) =>
        `  ${l.at} ${l.action}${l.tenant ? ` ${l.tenant}` : ''}${l.version ? ` v${l.version}` : ''} ${l.outcome}${l.reason ? `: ${l.reason}` : ''}`,
    );
  const deps = s.tenants.flatMap((t) =>
    (t.dependencies ?? []).map((d) => `  ${t.tenant}: ${d.type} "${d.name}" v${d.version} ${dependencyState(d)}`),
  );
  return [
    `${s.id}: ${s.rollup}`,
    ...(s.problems ?? []).map((p) => `problem: ${p}`),
    ...table(rows, ['tenant', 'state', 'version', 'target', 'reason']),
    ...(deps.length ? ['dependencies:', ...deps] : []),
    'log (latest):',
    ...log,
  ];
}

export function registerContentCommands(program: Command): void {
  const content = program
    .command('content')
    .description('content library: items, versions, publish, share to tenants by label');

  withClientOptions(content.command('create').description('create an item (version 1, unpublished)'))
    .requiredOption('--type <type>', `one of ${CONTENT_TYPES.join(', ')}`)
    .requiredOption('--name <name>', 'display name')
    .option('--body <text>', 'the item itself')
    .option('--body-file <file>', 'read the item from a file')
    .option('--labels <a,b>', 'propagation labels (`all` for every tenant)', '')
    .action((o: Common & { type: string; name: string; body?: string; bodyFile?: string; labels: string }) =>
      runAction(o, async () => {
        const body = await bodyOf(o);
        if (body === undefined)
          throw new BadParameterError('ERR_CLI_MISSING', '--body or --body-file is required', { field: 'body' });
        const r = await adminClient(o).request<Item>('POST', '/content', {
          type: o.type,
          name: o.name,
          body,
          labels: labelsOf(o.labels),
        });
        printResult(r, o, () => `created ${itemLine(r)}`);
      }),
    );

  withClientOptions(content.command('list').description('list items'))
    .option('--type <type>', 'only this type')
    .option('--label <label>', 'only items with this label')
    .action((o: Common & { type?: string; label?: string }) =>
      runAction(o, async () => {
        const q = new URLSearchParams({ ...(o.type ? { type: o.type } : {}), ...(o.label ? { label: o.label } : {}) });
        const rows = await adminClient(o).request<Item[]>('GET', `/content${q.size ? `?${q}` : ''}`);
        printResult(rows, o, () =>
          table(
            rows.map((r) => ({ ...r, labels: r.labels.join(','), shared: r.shared ? r.sharedVersion : '-' })),
            ['id', 'type', 'name', 'version', 'published', 'shared', 'labels'],
          ),
        );
      }),
    );

  withClientOptions(content.command('show <id>').description('show an item with its versions')).action(
    (id: string, o: Common) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<Item & { versions: unknown[] }>('GET', path(id));
        printResult(r, o, () => jsonLines(r));
      }),
  );

  withClientOptions(content.command('update <id>').description('edit an item: makes a new version'))
    .option('--name <name>', 'new name')
    .option('--body <text>', 'new body')
    .option('--body-file <file>', 'new body from a file')
    .option('--labels <a,b>', 'new propagation labels')
    .action((id: string, o: Common & { name?: string; body?: string; bodyFile?: string; labels?: string }) =>
      runAction(o, async () => {
        const body = await bodyOf(o);
        const patch = {
          ...(o.name !== undefined ? { name: o.name } : {}),
          ...(body !== undefined ? { body } : {}),
          ...(o.labels !== undefined ? { labels: labelsOf(o.labels) } : {}),
        };
        if (Object.keys(patch).length === 0)
          throw new BadParameterError('ERR_CLI_NOTHING', 'give at least one of --name, --body, --body-file, --labels', {
            field: 'patch',
          });
        const r = await adminClient(o).request<Item>('PUT', path(id), patch);
        printResult(r, o, () => `updated ${itemLine(r)}`);
      }),
    );

  withClientOptions(
    content.command('publish <id>').description('publish the latest version (only published versions are shared)'),
  ).action((id: string, o: Common) =>
    runAction(o, async () => {
      const r = await adminClient(o).request<Item & { warnings?: string[] }>('POST', path(id, '/publish'));
      printResult(r, o, () => [`published ${itemLine(r)}`, ...(r.warnings ?? []).map((w) => `warning: ${w}`)]);
    }),
  );

  withClientOptions(
    content.command('share <id>').description('push the latest published version to every tenant whose labels match'),
  ).action((id: string, o: Common) =>
    runAction(o, async () => {
      const r = await adminClient(o).request<Status>('POST', path(id, '/share'));
      printResult(r, o, () => statusText(r));
    }),
  );

  withClientOptions(content.command('unshare <id>').description('remove the item from every tenant')).action(
    (id: string, o: Common) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<Status>('DELETE', path(id, '/share'));
        printResult(r, o, () => statusText(r));
      }),
  );

  withClientOptions(
    content.command('status <id>').description('sharing rollup, per-tenant state and the sharing log'),
  ).action((id: string, o: Common) =>
    runAction(o, async () => {
      const r = await adminClient(o).request<Status>('GET', path(id, '/status'));
      printResult(r, o, () => statusText(r));
    }),
  );

  // `tenant` is made by admin/tenants.ts; the labels verb belongs with propagation, so it is added here.
  const tenant = program.commands.find((c) => c.name() === 'tenant') ?? program.command('tenant');
  withClientOptions(
    tenant.command('labels <name>').description("set a tenant's propagation labels (shared content follows)"),
  )
    .requiredOption('--set <a,b>', 'the new labels (replace the current ones; "" for none)')
    .action((name: string, o: Common & { set: string }) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<{ name: string; labels: string[] }>(
          'PATCH',
          `/tenants/${encodeURIComponent(name)}`,
          { labels: labelsOf(o.set) },
        );
        printResult(r, o, () => `tenant ${r.name} labels: ${r.labels.join(',') || '(none)'}`);
      }),
    );
}
