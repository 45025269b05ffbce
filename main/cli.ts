/**
 * main's own CLI verbs: `main init|start|install-service|backup|restore`, local, on the data directory (the verbs
 * that talk to a running main over REST are in admin/). Heavy modules load inside the actions so that `palisade
 * --help` stays fast.
 */
import type { Command } from 'commander';
import { printEvent, printResult, runAction, logOption } from '#common/cli-output.js';
import type { LogDestination } from '#common/logging.js';
import { parsePort } from '#common/address.js';

const port = (v: string): number => parsePort(v, 'listen', { code: 'ERR_BAD_PORT', field: 'port', label: '--port' });

export function registerMainCommands(program: Command, cliPath: string): void {
  const main = program.command('main').description('run the central Palisade service');

  main
    .command('init')
    .description('create a data directory: CA, server certificate, signing key, first admin API key')
    .requiredOption('--data <dir>', 'data directory to create')
    .option('--hostname <name>', 'name agents and admins use to reach main', 'localhost')
    .option('--port <port>', 'HTTPS port', '8443')
    .option('--cert <file>', 'your own server certificate (PEM) instead of one from the new CA')
    .option('--key <file>', 'private key (PEM) for --cert')
    .option('--json', 'machine-readable output')
    .action((o: { data: string; hostname: string; port: string; cert?: string; key?: string; json?: boolean }) =>
      runAction(o, async () => {
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
      }),
    );

  main
    .command('start')
    .description('serve the API and the agent endpoint until SIGTERM')
    .requiredOption('--data <dir>', 'data directory made by main init')
    .option('--port <port>', 'HTTPS port (overrides main.json)')
    .option('--bind <addr>', 'address to listen on (default all interfaces)')
    .addOption(logOption())
    .option('--json', 'machine-readable output')
    .action((o: { data: string; port?: string; bind?: string; log: LogDestination; json?: boolean }) =>
      runAction(o, async () => {
        const { startMain } = await import('./server.js');
        const m = await startMain({
          data: o.data,
          port: o.port === undefined ? undefined : port(o.port),
          bind: o.bind,
          logTo: o.log,
        });
        // One peer's bad input must never end the service for every other one: log and keep serving.
        process.on('unhandledRejection', (e) =>
          m.services.log.error({ err: e instanceof Error ? e.message : String(e) }, 'unhandled rejection'),
        );
        printEvent({ url: m.url, port: m.port }, o, `listening on ${m.url}`);
        let signals = 0;
        const stop = (sig: string) => {
          if (++signals > 1) process.exit(130);
          process.stderr.write(`${sig}: shutting down\n`);
          void m.close().then(
            () => process.exit(0),
            () => process.exit(1),
          );
        };
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.on('SIGINT', () => stop('SIGINT'));
      }),
    );

  registerBackupCommands(main);

  main
    .command('install-service')
    .description('write a hardened systemd unit for main, then enable and start it')
    .requiredOption('--data <dir>', 'data directory made by main init')
    .option('--user <user>', 'account main runs as (default: the owner of the data directory)')
    .option('--unit-dir <dir>', 'where to write the unit', '/etc/systemd/system')
    .option('--no-enable', 'write the unit only')
    .option('--json', 'machine-readable output')
    .action((o: { data: string; user?: string; unitDir: string; enable: boolean; json?: boolean }) =>
      runAction(o, async () => {
        const { installMainService } = await import('./service-install.js');
        const r = await installMainService({ ...o, node: process.execPath, cli: cliPath });
        printResult(r, o, () => [
          `Wrote ${r.unitFile} (runs as ${r.user})`,
          r.enabled ? 'Enabled and started; follow its log with:' : 'Not enabled; to run it:',
          ...r.next.map((l) => `  ${l}`),
        ]);
      }),
    );
}

/** A progress line of a long verb: on stderr, so that stdout stays the result (or its JSON). */
const progress = (line: string) => process.stderr.write(`${line}\n`);

function registerBackupCommands(main: Command): void {
  main
    .command('backup')
    .description('write an encrypted backup of everything main keeps, while it runs or not')
    .requiredOption('--data <dir>', 'data directory of the main to back up')
    .requiredOption('--out <file>', 'backup file to write (must not exist)')
    .requiredOption('--passphrase-file <file>', 'file holding the passphrase (12 characters or more)')
    .option('--json', 'machine-readable output')
    .action((o: { data: string; out: string; passphraseFile: string; json?: boolean }) =>
      runAction(o, async () => {
        const { backupMain } = await import('./backup/backup.js');
        const r = await backupMain({ ...o, progress });
        printResult(r, o, () => [
          `Backup of ${o.data} written to ${r.out} (${r.bytes} bytes, from the ${r.from} main)`,
          `Files:    ${r.files.join(', ')}`,
          `Registry: ${Object.entries(r.records)
            .map(([k, n]) => `${k} ${n}`)
            .join(', ')}`,
          'Keep the passphrase apart from the backup: without it nothing can be restored.',
        ]);
      }),
    );

  main
    .command('restore')
    .description('restore a backup into a new data directory')
    .requiredOption('--in <file>', 'backup file written by main backup')
    .requiredOption('--data <dir>', 'new data directory (must not exist or be empty)')
    .requiredOption('--passphrase-file <file>', 'file holding the backup passphrase')
    .option('--json', 'machine-readable output')
    .action((o: { in: string; data: string; passphraseFile: string; json?: boolean }) =>
      runAction(o, async () => {
        const { restoreMain } = await import('./backup/restore.js');
        const r = await restoreMain({ ...o, progress });
        printResult(r, o, () => [
          `Restored the backup of ${r.createdAt} into ${r.dataDir}`,
          `Files:    ${r.files.join(', ')}`,
          `Registry: ${Object.entries(r.records)
            .map(([k, n]) => `${k} ${n}`)
            .join(', ')}`,
          `Start it with: palisade main start --data ${o.data}`,
        ]);
      }),
    );
}
