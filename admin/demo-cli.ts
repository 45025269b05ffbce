/** `palisade demo`: runs the loopback deployment until Ctrl-C and prints what to try. */
import type { Command } from 'commander';
import { printEvent, runAction } from '#common/cli-output.js';
import { formatHostPort, parsePort } from '#common/address.js';
import type { Demo } from './demo.js';

type DemoFacts = Pick<Demo, 'dir' | 'url' | 'apiKey' | 'caCert' | 'tunnel' | 'intranet' | 'syslog' | 'syslogTcp'>;

/** What the demo prints once running: where each part is and what to try in another shell. */
export function demoText(d: DemoFacts, cliPath: string): string[] {
  const env = `export PALISADE_URL=${d.url} PALISADE_API_KEY=${d.apiKey} PALISADE_CA_CERT=${d.caCert}`;
  const udpPort = d.syslog.split(':').pop();
  const tcpPort = d.syslogTcp.split(':').pop();
  return [
    `Palisade demo running (data in ${d.dir})`,
    `  main:  ${d.url}   (OpenAPI: ${d.url}/docs)`,
    '  host:  demo-host (connected), tenants acme and globex with sample incidents',
    `  engine: acme-engine in "acme's network"; tunnel ${d.tunnel} → ${formatHostPort(d.intranet.host, d.intranet.port)} (allow-listed)`,
    `          syslog on ${d.syslog} and ${d.syslogTcp}`,
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
    `  logger -n 127.0.0.1 -P ${udpPort} -d 'login failed user=bob src=10.0.0.1'   # syslog into acme's engine (UDP)`,
    `  logger --tcp -n 127.0.0.1 -P ${tcpPort} --octet-count --rfc5424 'login failed for bob src=10.1.2.4'   # TCP`,
    `  node ${cliPath} events search --tenant acme`,
    `  node ${cliPath} audit`,
    `  curl --cacert ${d.caCert} ${d.url}/api/v1/health`,
    '',
    'Ctrl-C stops everything.',
  ];
}

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
        const info = { dir: d.dir, url: d.url, adminApiKey: d.apiKey, caCertPath: d.caCert, tunnel: d.tunnel };
        printEvent({ ...info, syslog: d.syslog, syslogTcp: d.syslogTcp }, o, demoText(d, cliPath));
        await new Promise<void>((r) => {
          process.once('SIGINT', r);
          process.once('SIGTERM', r);
        });
        await d.stop();
      }),
    );
}
