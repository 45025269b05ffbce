/**
 * main's CLI verbs: `main init|start` (local, on the data directory) and the admin verbs that talk to a
 * running main over REST (`hosts`, `engines`, `audit`). Heavy modules load inside the actions so that
 * `palisade --help` and the agent's start stay fast.
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type ClientOptions } from '#common/admin-client.js';
import { jsonLines, printEvent, printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError } from '#common/errors.js';
import { registerTenantCommands } from './cli-tenants.js';
import { registerEngineWorkCommands } from './cli-engines.js';
import { registerSearchCommands } from './cli-search.js';
import { registerAccessCommands } from './cli-access.js';
import { registerContentCommands } from './cli-content.js';

export type Common = ClientOptions & { json?: boolean };

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new BadParameterError('ERR_BAD_PORT', `--port: "${v}" is not a port number (0-65535)`, { field: 'port' });
  return n;
}

export function registerMainCommands(program: Command): void {
  const main = program.command('main').description('run the central Palisade service');

  main.command('init').description('create a data directory: CA, server certificate, signing key, first admin API key')
    .requiredOption('--data <dir>', 'data directory to create')
    .option('--hostname <name>', 'name agents and admins use to reach main', 'localhost')
    .option('--port <port>', 'HTTPS port', '8443')
    .option('--cert <file>', 'your own server certificate (PEM) instead of one from the new CA')
    .option('--key <file>', 'private key (PEM) for --cert')
    .option('--json', 'machine-readable output')
    .action((o: { data: string; hostname: string; port: string; cert?: string; key?: string; json?: boolean }) => runAction(o, async () => {
      const { initMain } = await import('./init.js');
      const r = await initMain({ data: o.data, hostname: o.hostname, port: port(o.port), cert: o.cert, key: o.key });
      printResult(r, o, () => [
        `Palisade main initialised in ${r.dataDir}`,
        `URL:           ${r.url}`,
        `CA cert:       ${r.caCertPath}`,
        `Admin API key: ${r.adminApiKey}`,
        '(shown once: store it now)',
        `Start it with: palisade main start --data ${o.data}`,
      ]);
    }));

  main.command('start').description('serve the API and the agent endpoint until SIGTERM')
    .requiredOption('--data <dir>', 'data directory made by main init')
    .option('--port <port>', 'HTTPS port (overrides main.json)')
    .option('--bind <addr>', 'address to listen on (default all interfaces)')
    .option('--json', 'machine-readable output')
    .action((o: { data: string; port?: string; bind?: string; json?: boolean }) => runAction(o, async () => {
      const { startMain } = await import('./server.js');
      const m = await startMain({ data: o.data, port: o.port === undefined ? undefined : port(o.port), bind: o.bind });
      // One peer's bad input must never end the service for every other one: log and keep serving.
      process.on('unhandledRejection', (e) => m.services.log.error({ err: e instanceof Error ? e.message : String(e) }, 'unhandled rejection'));
      printEvent({ url: m.url, port: m.port }, o, `listening on ${m.url}`);
      let signals = 0;
      const stop = (sig: string) => {
        if (++signals > 1) process.exit(130);
        process.stderr.write(`${sig}: shutting down\n`);
        void m.close().then(() => process.exit(0), () => process.exit(1));
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    }));

  for (const kind of ['host', 'engine'] as const) registerAgentAdmin(program, kind);
  registerTenantCommands(program);
  registerEngineWorkCommands(program);
  registerSearchCommands(program);
  registerAccessCommands(program);
  registerContentCommands(program);

  withClientOptions(program.command('audit').description("recent audit entries on main, or in one tenant's own log with --tenant"))
    .option('--limit <n>', 'how many', '50')
    .option('--action <prefix>', 'only actions starting with this')
    .option('--tenant <tenant>', "the tenant's own audit log (kept in the tenant, not on main)")
    .action((o: Common & { limit: string; action?: string; tenant?: string }) => runAction(o, async () => {
      const q = new URLSearchParams({ limit: o.limit, ...(o.action ? { action: o.action } : {}) });
      const path = o.tenant ? `/tenants/${encodeURIComponent(o.tenant)}/api/audit?${q}` : `/audit?${q}`;
      const rows = await adminClient(o).request<Record<string, unknown>[]>('GET', path);
      printResult(rows, o, () => table(rows, o.tenant ? ['at', 'actor', 'action', 'outcome', 'status', 'from'] : ['at', 'actor', 'action', 'target', 'outcome', 'remote']));
    }));
}

function registerAgentAdmin(program: Command, kind: 'host' | 'engine'): void {
  const plural = `${kind}s`;
  const group = withClientOptions(program.command(plural).description(`list ${plural} with status (subcommands: show, ping, command, remove)`))
    .action((o: Common) => runAction(o, async () => {
      const rows = await adminClient(o).request<Record<string, unknown>[]>('GET', `/${plural}`);
      printResult(rows, o, () => table(rows.map((r) => ({ ...r, os: (r.sysinfo as { os?: string } | null)?.os })), ['name', 'status', 'lastSeen', 'pendingCommands', 'os', 'id']));
    }));

  withClientOptions(group.command('show <name>').description(`show one ${kind} with its system info`))
    .action((name: string, o: Common) => runAction(o, async () => {
      const r = await adminClient(o).request<Record<string, unknown>>('GET', `/${plural}/${encodeURIComponent(name)}`);
      printResult(r, o, () => jsonLines(r));
    }));

  withClientOptions(group.command('ping <name>').description(`round trip to a ${kind} through the command channel`))
    .option('--timeout <ms>', 'how long to wait', '30000')
    .action((name: string, o: Common & { timeout: string }) => runAction(o, async () => {
      const t0 = Date.now();
      const r = await adminClient(o).request<{ id: number; state: string; result?: unknown; error?: { message: string } }>(
        'POST', `/${plural}/${encodeURIComponent(name)}/commands`, { command: 'ping', timeoutMs: Number(o.timeout) || 30_000 });
      const ms = Date.now() - t0;
      printResult({ ...r, ms }, o, () => r.state === 'done' ? `pong from ${kind} ${name} in ${ms} ms (command ${r.id})`
        : `command ${r.id} is ${r.state}${r.error ? `: ${r.error.message}` : ' (the agent is offline; it runs when it reconnects)'}`);
      if (r.state === 'failed' || r.state === 'expired') process.exitCode = 1;
    }));

  withClientOptions(group.command('command <name> <command>').description(`run a built-in command (ping, sysinfo) on a ${kind}`))
    .option('--no-wait', 'queue it and return at once')
    .action((name: string, command: string, o: Common & { wait: boolean }) => runAction(o, async () => {
      const r = await adminClient(o).request<Record<string, unknown>>('POST', `/${plural}/${encodeURIComponent(name)}/commands`, { command, wait: o.wait });
      printResult(r, o, () => jsonLines(r));
    }));

  withClientOptions(group.command('remove <name>').description(`revoke a ${kind}'s certificate; its next connection is refused`))
    .action((name: string, o: Common) => runAction(o, async () => {
      const r = await adminClient(o).request<Record<string, unknown>>('DELETE', `/${plural}/${encodeURIComponent(name)}`);
      printResult(r, o, () => `${kind} ${name} removed: certificate revoked, connection closed`);
    }));
}
