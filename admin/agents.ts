/**
 * `hosts` and `engines`: list with status, show, ping, run a built-in command, remove (revoke).
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { jsonLines, printResult, runAction, table } from '#common/cli-output.js';

export function registerAgentAdmin(program: Command, kind: 'host' | 'engine'): void {
  const plural = `${kind}s`;
  const group = withClientOptions(
    program.command(plural).description(`list ${plural} with status (subcommands: show, ping, command, remove)`),
  ).action((o: Common) =>
    runAction(o, async () => {
      const rows = await adminClient(o).request<Record<string, unknown>[]>('GET', `/${plural}`);
      printResult(rows, o, () =>
        table(
          rows.map((r) => ({ ...r, os: (r.sysinfo as { os?: string } | null)?.os })),
          kind === 'engine'
            ? ['name', 'tenant', 'group', 'status', 'version', 'lastSeen', 'pendingCommands', 'os', 'id']
            : ['name', 'status', 'version', 'lastSeen', 'pendingCommands', 'os', 'id'],
        ),
      );
    }),
  );

  withClientOptions(group.command('show <name>').description(`show one ${kind} with its system info`)).action(
    (name: string, o: Common) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<Record<string, unknown>>(
          'GET',
          `/${plural}/${encodeURIComponent(name)}`,
        );
        printResult(r, o, () => jsonLines(r));
      }),
  );

  withClientOptions(group.command('ping <name>').description(`round trip to a ${kind} through the command channel`))
    .option('--timeout <ms>', 'how long to wait', '30000')
    .action((name: string, o: Common & { timeout: string }) =>
      runAction(o, async () => {
        const t0 = Date.now();
        const r = await adminClient(o).request<{
          id: number;
          state: string;
          result?: unknown;
          error?: { message: string };
        }>('POST', `/${plural}/${encodeURIComponent(name)}/commands`, {
          command: 'ping',
          timeoutMs: Number(o.timeout) || 30_000,
        });
        const ms = Date.now() - t0;
        printResult({ ...r, ms }, o, () =>
          r.state === 'done'
            ? `pong from ${kind} ${name} in ${ms} ms (command ${r.id})`
            : `command ${r.id} is ${r.state}${r.error ? `: ${r.error.message}` : ' (the agent is offline; it runs when it reconnects)'}`,
        );
        if (r.state === 'failed' || r.state === 'expired') process.exitCode = 1;
      }),
    );

  withClientOptions(
    group.command('command <name> <command>').description(`run a built-in command (ping, sysinfo) on a ${kind}`),
  )
    .option('--no-wait', 'queue it and return at once')
    .action((name: string, command: string, o: Common & { wait: boolean }) =>
      runAction(o, async () => {
        const r = await adminClient(o).request<Record<string, unknown>>(
          'POST',
          `/${plural}/${encodeURIComponent(name)}/commands`,
          { command, wait: o.wait },
        );
        printResult(r, o, () => jsonLines(r));
      }),
    );

  withClientOptions(
    group.command('remove <name>').description(`revoke a ${kind}'s certificate; its next connection is refused`),
  ).action((name: string, o: Common) =>
    runAction(o, async () => {
      const r = await adminClient(o).request<Record<string, unknown>>(
        'DELETE',
        `/${plural}/${encodeURIComponent(name)}`,
      );
      printResult(r, o, () => `${kind} ${name} removed: certificate revoked, connection closed`);
    }),
  );
}
