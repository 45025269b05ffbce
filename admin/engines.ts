/**
 * CLI verbs for work done through a tenant's engines (all relayed to the tenant's own API):
 * `tunnel open|list|close` and `engine run` (integration commands such as http.request, tcp.check). `--group` binds
 * a tunnel or a command to an engine group: only that group's live engines then carry it.
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { jsonLines, printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';
import { parseHostPort } from '#common/address.js';

interface ListenerRow {
  id: string;
  direction: string;
  listen: string;
  to: string;
  engine?: string;
  group?: string;
  connections: number;
  lastError?: string;
  engines?: Record<string, string>;
}
interface EngineRow {
  id: string;
  name: string;
  group: string | null;
  since: string;
  streams: number;
}

type OpenOptions = Common & {
  tenant: string;
  to: string;
  listen: string;
  inbound?: boolean;
  engine?: string;
  group?: string;
};

/** Which engines carry an outbound tunnel, as `tunnel open` says it. */
const via = (r: ListenerRow & { engineCount: number }) =>
  r.engine ?? (r.group ? `the engines of group ${r.group}` : `${r.engineCount} engine(s)`);

const api = (tenant: string, path: string) => `/tenants/${encodeURIComponent(tenant)}/api${path}`;

export function registerEngineWorkCommands(program: Command): void {
  const tunnel = program
    .command('tunnel')
    .description("tunnels into (outbound) or out of (inbound) a tenant's customer network, through its engines");
  withClientOptions(
    tunnel
      .command('open')
      .description(
        'outbound: listen on the tenant side, each connection reaches --to through an engine; --inbound: each engine listens, each connection reaches --to on the tenant side',
      ),
  )
    .requiredOption('--tenant <tenant>', 'tenant')
    .requiredOption(
      '--to <host:port>',
      'destination: inside the customer network (outbound; must be in the engine allow-list) or on the tenant side (inbound)',
    )
    .requiredOption(
      '--listen <addr:port>',
      "where to listen: on the tenant's host (outbound) or on each engine (inbound); port 0 picks one",
    )
    .option('--inbound', 'listen on the engines instead (e.g. syslog from customer devices to a tenant-side collector)')
    .option(
      '--group <group>',
      "bind the tunnel to this engine group: only its live engines carry it, never another group's",
    )
    .option('--engine <name>', 'use only this engine (with --group: an engine of that group)')
    .action((o: OpenOptions) =>
      runAction(o, async () => {
        // The tenant checks both again (and more: loopback-only outbound listeners); a typo fails here without a
        // round trip.
        parseHostPort(o.to, 'dial', { code: 'ERR_BAD_TARGET', field: 'to', label: '--to' });
        parseHostPort(o.listen, 'listen', { code: 'ERR_BAD_LISTEN', field: 'listen', label: '--listen' });
        const r = await adminClient(o).request<ListenerRow & { engineCount: number }>(
          'POST',
          api(o.tenant, '/tunnels'),
          {
            to: o.to,
            listen: o.listen,
            direction: o.inbound ? 'inbound' : 'outbound',
            ...(o.engine ? { engine: o.engine } : {}),
            ...(o.group ? { group: o.group } : {}),
          },
        );
        printResult(r, o, () =>
          r.direction === 'inbound'
            ? `tunnel ${r.id} (inbound) → ${r.to}; engines listening: ${
                Object.entries(r.engines ?? {})
                  .map(([e, at]) => `${e} ${at}`)
                  .join(', ') || 'none connected yet'
              }`
            : `tunnel ${r.id}: ${r.listen} → ${r.to} via ${via(r)} of ${o.tenant}`,
        );
      }),
    );
  withClientOptions(tunnel.command('list').description("a tenant's tunnels and connected engines"))
    .requiredOption('--tenant <tenant>', 'tenant')
    .action((o: Common & { tenant: string }) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<{ tunnels: ListenerRow[]; engines: EngineRow[] }>(
          'GET',
          api(o.tenant, '/tunnels'),
        );
        printResult(r, o, () => [
          ...table(
            r.tunnels.map((t) => ({
              ...t,
              group: t.group ?? 'any',
              engine: t.engine ?? (t.engines ? Object.keys(t.engines).join(',') : 'any'),
            })),
            ['id', 'direction', 'listen', 'to', 'group', 'engine', 'connections', 'lastError'],
          ),
          `engines connected: ${r.engines.map((e) => (e.group ? `${e.name} (group ${e.group})` : e.name)).join(', ') || 'none'}`,
        ]);
      }),
    );
  withClientOptions(tunnel.command('close <id>').description('stop a tunnel listener'))
    .requiredOption('--tenant <tenant>', 'tenant')
    .action((id: string, o: Common & { tenant: string }) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<unknown>('DELETE', api(o.tenant, `/tunnels/${encodeURIComponent(id)}`));
        printResult(r, o, () => `tunnel ${id} closed`);
      }),
    );

  const engine = program
    .command('engine')
    .description("integration commands run on a tenant's engine, inside the customer network");
  withClientOptions(
    engine
      .command('run <command>')
      .description(
        'run http.request or tcp.check on an engine; e.g. engine run tcp.check --tenant acme --args \'{"host":"10.0.0.5","port":389}\'',
      ),
  )
    .requiredOption('--tenant <tenant>', 'tenant')
    .option('--args <json>', 'command arguments as a JSON object', '{}')
    .option(
      '--group <group>',
      'run it only on a live engine of this group; a read-only command (tcp.check, http.request GET/HEAD/OPTIONS) moves to another engine of the group if its engine ends before answering',
    )
    .option('--engine <name>', 'the engine to run it on (default: the next engine, of --group if given)')
    .action((command: string, o: Common & { tenant: string; args: string; engine?: string; group?: string }) =>
      runAction(o, async () => {
        let args: unknown;
        try {
          args = JSON.parse(o.args);
        } catch {
          throw new BadParameterError(
            'ERR_CLI_BAD_ARGS',
            '--args must be a JSON object, e.g. \'{"host":"10.0.0.5","port":389}\'',
            { field: '--args' },
          );
        }
        if (!args || typeof args !== 'object' || Array.isArray(args))
          throw new BadParameterError('ERR_CLI_BAD_ARGS', '--args must be a JSON object', { field: '--args' });
        const r = await adminClient(o).request<{
          engine: string;
          group: string | null;
          command: string;
          result: unknown;
          failedOver?: string[];
        }>('POST', api(o.tenant, '/engine-commands'), {
          command,
          args,
          ...(o.engine ? { engine: o.engine } : {}),
          ...(o.group ? { group: o.group } : {}),
        });
        printResult(r, o, () => [
          `${r.command} on engine ${r.engine}${r.group ? ` (group ${r.group})` : ''}:`,
          ...(r.failedOver ? [`(moved from ${r.failedOver.join(', ')}, whose session ended before answering)`] : []),
          ...jsonLines(r.result),
        ]);
      }),
    );
}
