/** `palisade demo`: runs the loopback deployment until Ctrl-C and prints what to try. */
import type { Command } from 'commander';
import { printEvent, runAction } from '#common/cli-output.js';
import { formatHostPort, parsePort } from '#common/address.js';

export function registerDemoCommand(program: Command, cliPath: string): void {
  program
    .command('demo')
    .description(
      'run a whole deployment on loopback: main, a host agent, two tenants with sample incidents, an engine with a tunnel',
    )
    .option('--dir <dir>', 'where to keep its data (default: a new temp dir)')
    .option('--port <port>', "main's port (default 8443, or a free one)")
    .option('--json', 'machine-readable output')
    .action((o: { dir?: string; port?: string; json?: boolean }) =>
      runAction(o, async () => {
        const { startDemo } = await import('./demo.js');
        const port =
          o.port === undefined
            ? undefined
            : parsePort(o.port, 'listen', { code: 'ERR_BAD_PORT', field: 'port', label: '--port' });
        const d = await startDemo({ dir: o.dir, port, cli: cliPath });
        const env = `export PALISADE_URL=${d.url} PALISADE_API_KEY=${d.apiKey} PALISADE_CA_CERT=${d.caCert}`;
        const info = { dir: d.dir, url: d.url, adminApiKey: d.apiKey, caCertPath: d.caCert, tunnel: d.tunnel };
        const syslogPort = d.syslog.split(':').pop();
        printEvent({ ...info, syslog: d.syslog }, o, [
          `Palisade demo running (data in ${d.dir})`,
          `  main:  ${d.url}   (OpenAPI: ${d.url}/docs)`,
          '  host:  demo-host (connected), tenants acme and globex with sample incidents',
          `  engine: acme-engine in "acme's network"; tunnel ${d.tunnel} → ${formatHostPort(d.intranet.host, d.intranet.port)} (allow-listed)`,
          `          syslog on ${d.syslog}`,
          '',
          'In another shell, try:',
          `  ${env}`,
          `  node ${cliPath} hosts`,
          `  node ${cliPath} hosts ping demo-host`,
          `  node ${cliPath} tenants`,
          `  node ${cliPath} incidents list --tenant acme`,
          `  node ${cliPath} incidents create --tenant globex --name "Suspicious login" --severity 3`,
          `  curl --cacert ${d.caCert} -H "Authorization: Bearer $PALISADE_API_KEY" ${d.url}/api/v1/tenants/acme/api/incidents`,
          `  node ${cliPath} hosts command demo-host sysinfo`,
          `  curl http://${d.tunnel}/                      # through acme's engine tunnel`,
          `  node ${cliPath} engines`,
          `  node ${cliPath} engine run tcp.check --tenant acme --args '${JSON.stringify({ host: d.intranet.host, port: d.intranet.port })}'`,
          `  node ${cliPath} search incidents --q phishing`,
          `  logger -n 127.0.0.1 -P ${syslogPort} -d 'login failed user=bob src=10.0.0.1'   # syslog into acme's engine`,
          `  node ${cliPath} events search --tenant acme`,
          `  node ${cliPath} audit`,
          `  curl --cacert ${d.caCert} ${d.url}/api/v1/health`,
          '',
          'Ctrl-C stops everything.',
        ]);
        await new Promise<void>((r) => {
          process.once('SIGINT', r);
          process.once('SIGTERM', r);
        });
        await d.stop();
      }),
    );
}
