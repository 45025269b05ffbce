/** CLI verbs for tenants and their incidents: `tenants`, `tenant create|stop|start|move|remove`, `incidents …`. */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { jsonLines, printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';

import { registerImportCommand } from './import.js';

interface TenantRow {
  name: string;
  host: string;
  port: number;
  status: string;
  labels: string[];
  region: string | null;
  initialised: boolean;
  publicKeyFingerprint: string;
  memoryMb: number | null;
  cpuPercent: number | null;
  rssBytes: number | null;
}

/** CPU and memory as `tenants` prints them: `-` where the host has no figure (not running, older host). */
function usageColumns(r: TenantRow): { cpu: string; rss: string; limit: string } {
  return {
    cpu: r.cpuPercent === null || r.cpuPercent === undefined ? '-' : `${r.cpuPercent}%`,
    rss: r.rssBytes === null || r.rssBytes === undefined ? '-' : `${Math.round(r.rssBytes / 1024 / 1024)}MiB`,
    limit: r.memoryMb ? `${r.memoryMb}MiB` : '-',
  };
}

function labelsOf(v?: string): string[] {
  return v
    ? v
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)
    : [];
}

export function registerTenantCommands(program: Command): void {
  withClientOptions(
    program
      .command('tenants')
      .description('list tenants with host, port, status, initialised, region, CPU, memory and labels'),
  ).action((o: Common) =>
    runAction(o, async () => {
      const rows = await adminClient(o).request<TenantRow[]>('GET', '/tenants');
      printResult(rows, o, () =>
        table(
          rows.map((r) => ({
            ...r,
            ...usageColumns(r),
            labels: r.labels.join(','),
            region: r.region ?? '-',
            init: r.initialised ? 'yes' : 'no',
            key: r.publicKeyFingerprint,
          })),
          ['name', 'host', 'port', 'status', 'init', 'region', 'cpu', 'rss', 'limit', 'labels', 'key'],
        ),
      );
    }),
  );

  const tenant = program.command('tenant').description('create, stop, start, move or remove a tenant');
  withClientOptions(
    tenant.command('create <name>').description('create a tenant on a host (own process, store, keys, port)'),
  )
    .requiredOption('--host <host>', 'host to run it on')
    .option('--labels <a,b>', 'propagation labels')
    .option('--region <region>', 'its region (connections scoped to region:R reach its tenants)')
    .option('--memory-mb <n>', 'memory the host must have free for it, and its heap limit (default 256)')
    .option('--disk-mb <n>', 'disk the host must have free for it (default 512)')
    .action(
      (
        name: string,
        o: Common & { host: string; labels?: string; region?: string; memoryMb?: string; diskMb?: string },
      ) =>
        runAction(o, async () => {
          const size = (v: string | undefined, flag: string) => {
            if (v === undefined) return undefined;
            const n = Number(v);
            if (!Number.isInteger(n) || n < 16)
              throw new BadParameterError('ERR_CLI_BAD_NUMBER', `${flag} must be a whole number of MiB, at least 16`, {
                field: flag,
              });
            return n;
          };
          const t = await adminClient(o).request<TenantRow>('POST', '/tenants', {
            name,
            host: o.host,
            labels: labelsOf(o.labels),
            region: o.region,
            memoryMb: size(o.memoryMb, '--memory-mb'),
            diskMb: size(o.diskMb, '--disk-mb'),
          });
          printResult(
            t,
            o,
            () => `tenant ${t.name} running on host ${t.host} at 127.0.0.1:${t.port} (key ${t.publicKeyFingerprint})`,
          );
        }),
    );
  withClientOptions(
    tenant.command('show <name>').description('one tenant: where it runs, status, CPU, memory and heap limit'),
  ).action((name: string, o: Common) =>
    runAction(o, async () => {
      const t = await adminClient(o).request<TenantRow>('GET', `/tenants/${encodeURIComponent(name)}`);
      const u = usageColumns(t);
      printResult(t, o, () => [
        `tenant ${t.name} on host ${t.host} at 127.0.0.1:${t.port}: ${t.status}`,
        `  cpu ${u.cpu}, rss ${u.rss}, heap limit ${u.limit}`,
        `  labels ${t.labels.join(',') || '-'}, region ${t.region ?? '-'}, key ${t.publicKeyFingerprint}`,
      ]);
    }),
  );
  withClientOptions(
    tenant
      .command('set-region <name> [region]')
      .description('move a tenant into a region (or out of any with --none); region-scoped content follows'),
  )
    .option('--none', 'take it out of any region')
    .action((name: string, region: string | undefined, o: Common & { none?: boolean }) =>
      runAction(o, async () => {
        if ((region === undefined) === !o.none)
          throw new BadParameterError('ERR_CLI_REGION', 'give a region, or --none (not both)', { field: 'region' });
        const t = await adminClient(o).request<TenantRow>('PATCH', `/tenants/${encodeURIComponent(name)}`, {
          region: o.none ? null : region,
        });
        printResult(t, o, () => `tenant ${t.name}: region ${t.region ?? '(none)'}`);
      }),
    );
  for (const [verb, what] of [
    ['stop', 'stop a tenant and keep it stopped (host restarts too); its data stays'],
    ['start', 'start a stopped tenant again, with its data'],
  ] as const)
    withClientOptions(tenant.command(`${verb} <name>`).description(what)).action((name: string, o: Common) =>
      runAction(o, async () => {
        const t = await adminClient(o).request<TenantRow & { changed: boolean }>(
          'POST',
          `/tenants/${encodeURIComponent(name)}/${verb}`,
        );
        const done = verb === 'stop' ? 'stopped' : 'started';
        printResult(t, o, () =>
          t.changed
            ? `tenant ${t.name} ${done} on host ${t.host} (status ${t.status})`
            : `tenant ${t.name} was already ${verb === 'stop' ? 'stopped' : 'running'} on host ${t.host}; nothing to do`,
        );
      }),
    );
  withClientOptions(
    tenant.command('move <name>').description('move a tenant to another host (snapshot, checksummed transfer, switch)'),
  )
    .requiredOption('--to <host>', 'target host')
    .action((name: string, o: Common & { to: string }) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<{
          from: string;
          to: string;
          port: number;
          bytes: number;
          chunks: number;
        }>('POST', `/tenants/${encodeURIComponent(name)}/move`, { to: o.to });
        printResult(
          r,
          o,
          () =>
            `tenant ${name} moved from ${r.from} to ${r.to} (127.0.0.1:${r.port}; ${r.bytes} bytes in ${r.chunks} checksummed chunks)`,
        );
      }),
    );
  withClientOptions(
    tenant.command('remove <name>').description('offboard: stop its process, delete its data, keys and registration'),
  ).action((name: string, o: Common) =>
    runAction(o, async () => {
      const r = await adminClient(o).request<{ name: string; host: string; removed: string[] }>(
        'DELETE',
        `/tenants/${encodeURIComponent(name)}`,
      );
      printResult(r, o, () => [`tenant ${r.name} removed from host ${r.host}:`, ...r.removed.map((x) => `  - ${x}`)]);
    }),
  );

  const incidents = program.command('incidents').description("a tenant's incidents (through main)");
  const rel = (t: string, p: string) => `/tenants/${encodeURIComponent(t)}/api${p}`;
  registerImportCommand(incidents);
  withClientOptions(incidents.command('create').description('create an incident in a tenant'))
    .requiredOption('--tenant <tenant>', 'tenant')
    .option('--name <name>', 'incident name')
    .option('--type <type>', 'incident type', 'generic')
    .option('--severity <0-4>', 'severity 0 (info) to 4 (critical)', '1')
    .option('--details <text>', 'details', '')
    .option('--site <site>', "the tenant's site it belongs to (an active one: docs/sites.md)")
    .option('--file <json>', 'create from a JSON file: one incident or {"items":[…]}')
    .action(
      (
        o: Common & {
          tenant: string;
          name?: string;
          type: string;
          severity: string;
          details: string;
          site?: string;
          file?: string;
        },
      ) =>
        runAction(o, async () => {
          let body: unknown;
          if (o.file) {
            try {
              body = JSON.parse(await readFile(o.file, 'utf8'));
            } catch (e) {
              throw new BadParameterError('ERR_CLI_BAD_FILE', `--file ${o.file}: ${(e as Error).message}`, {
                field: 'file',
              });
            }
          } else {
            if (!o.name)
              throw new BadParameterError('ERR_CLI_MISSING', '--name is required (or give --file)', { field: 'name' });
            const sev = Number(o.severity);
            if (!Number.isInteger(sev) || sev < 0 || sev > 4)
              throw new BadParameterError('ERR_CLI_BAD_NUMBER', '--severity must be 0-4', { field: 'severity' });
            body = {
              name: o.name,
              type: o.type,
              severity: sev,
              details: o.details,
              ...(o.site !== undefined ? { site: o.site } : {}),
            };
          }
          const r = await adminClient(o).request<{ id?: string; items?: unknown[] }>(
            'POST',
            rel(o.tenant, '/incidents'),
            body,
          );
          printResult(r, o, () =>
            r.items ? `created ${r.items.length} incidents in ${o.tenant}` : `created incident ${r.id} in ${o.tenant}`,
          );
        }),
    );
  withClientOptions(incidents.command('list').description("list a tenant's incidents, newest first"))
    .requiredOption('--tenant <tenant>', 'tenant')
    .option('--status <status>', 'open or closed')
    .option('--severity <0-4>', 'severity')
    .option('--type <type>', 'type')
    .option('--q <text>', 'text in name or details')
    .option('--site <site>', 'only the incidents of this site')
    .option('--limit <n>', 'page size', '50')
    .option('--cursor <id>', 'next page after this id')
    .action(
      (
        o: Common & {
          tenant: string;
          status?: string;
          severity?: string;
          type?: string;
          q?: string;
          site?: string;
          limit: string;
          cursor?: string;
        },
      ) =>
        runAction(o, async () => {
          const q = new URLSearchParams();
          for (const k of ['status', 'severity', 'type', 'q', 'site', 'limit', 'cursor'] as const)
            if (o[k] !== undefined) q.set(k, String(o[k]));
          const r = await adminClient(o).request<{ items: Record<string, unknown>[]; next: string | null }>(
            'GET',
            rel(o.tenant, `/incidents?${q}`),
          );
          printResult(r, o, () => [
            ...table(r.items, ['id', 'severity', 'status', 'type', 'name', 'created']),
            ...(r.next ? [`more: --cursor ${r.next}`] : []),
          ]);
        }),
    );
  withClientOptions(incidents.command('update <id>').description('change an open incident'))
    .requiredOption('--tenant <tenant>', 'tenant')
    .option('--name <name>', 'new name')
    .option('--type <type>', 'new type')
    .option('--severity <0-4>', 'new severity')
    .option('--details <text>', 'new details')
    .action(
      (id: string, o: Common & { tenant: string; name?: string; type?: string; severity?: string; details?: string }) =>
        runAction(o, async () => {
          const patch: Record<string, unknown> = {};
          for (const k of ['name', 'type', 'details'] as const) if (o[k] !== undefined) patch[k] = o[k];
          if (o.severity !== undefined) patch.severity = Number(o.severity);
          if (Object.keys(patch).length === 0)
            throw new BadParameterError(
              'ERR_CLI_NOTHING',
              'give at least one of --name, --type, --severity, --details',
              { field: 'patch' },
            );
          const r = await adminClient(o).request<Record<string, unknown>>(
            'PATCH',
            rel(o.tenant, `/incidents/${encodeURIComponent(id)}`),
            patch,
          );
          printResult(r, o, () => `incident ${id} updated in ${o.tenant}`);
        }),
    );
  withClientOptions(incidents.command('close <id>').description('close an incident'))
    .requiredOption('--tenant <tenant>', 'tenant')
    .option('--reason <text>', 'why it is closed', '')
    .action((id: string, o: Common & { tenant: string; reason: string }) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<Record<string, unknown>>(
          'POST',
          rel(o.tenant, `/incidents/${encodeURIComponent(id)}/close`),
          { reason: o.reason },
        );
        printResult(r, o, () => `incident ${id} closed in ${o.tenant}`);
      }),
    );
  withClientOptions(incidents.command('get <id>').description('show one incident'))
    .requiredOption('--tenant <tenant>', 'tenant')
    .action((id: string, o: Common & { tenant: string }) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<unknown>('GET', rel(o.tenant, `/incidents/${encodeURIComponent(id)}`));
        printResult(r, o, () => jsonLines(r));
      }),
    );
  withClientOptions(incidents.command('timeline <id>').description("an incident's timeline, oldest entry first"))
    .requiredOption('--tenant <tenant>', 'tenant')
    .action((id: string, o: Common & { tenant: string }) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<{ at: string; by: string; kind: string; text: string }[]>(
          'GET',
          rel(o.tenant, `/incidents/${encodeURIComponent(id)}/timeline`),
        );
        printResult(r, o, () => table(r, ['at', 'by', 'kind', 'text']));
      }),
    );
}
