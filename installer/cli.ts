/**
 * `agent install`: unpacks a bundle here (the admin verbs that make bundles, `installer create|list|revoke`,
 * are in admin/installers.ts).
 */
import type { Command } from 'commander';
import { printResult, runAction } from '#common/cli-output.js';
import { DEFAULT_ENGINE_LISTEN } from '#common/agent-dir.js';
import { formatSyslogListen } from '#common/syslog-listen.js';
import type { InstallResult } from './install.js';

/**
 * `verb`: what comes before `start` in `cliPath`'s command line, for the unit it writes: `agent` in
 * bin/palisade.js, nothing in a release's palisade-agent.mjs (bin/palisade-agent.js).
 */
export function registerInstallerCommands(agent: Command, cliPath: string, verb: string[] = ['agent']): void {
  agent
    .command('install')
    .description('unpack a bundle into an agent directory and write a systemd unit file')
    .requiredOption('--bundle <file>', 'bundle from installer create')
    .requiredOption('--dir <dir>', 'agent directory to create')
    .option(
      '--main-url <url>',
      "main's https://HOST[:PORT], tried in the order given, instead of the bundle's (repeatable)",
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      '--allow <entry>',
      'engines: allowed destination CIDR[:PORT|PORT-PORT] or HOST[:PORT] (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      '--syslog <spec>',
      'engines: receive syslog on udp:ADDR:PORT, tcp:ADDR:PORT or tls:ADDR:PORT (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--no-direct', 'engines: never dial the host directly; always relay through main')
    .option(
      '--engine-listen <addr>',
      `hosts: ADDR:PORT to listen on for engines' direct connections, or "off" (default ${DEFAULT_ENGINE_LISTEN})`,
    )
    .option(
      '--engine-advertise <hostport>',
      'hosts: HOST:PORT engines should dial, when not the listen address (NAT, port forward, DNS name)',
    )
    .option(
      '--release-root <dir>',
      'install.sh: the agent runs from the release layout under DIR (PREFIX/<name>) as the palisade user',
    )
    .option('--json', 'machine-readable output')
    .action(
      (o: {
        bundle: string;
        dir: string;
        mainUrl: string[];
        allow: string[];
        syslog: string[];
        direct: boolean;
        engineListen?: string;
        engineAdvertise?: string;
        releaseRoot?: string;
        json?: boolean;
      }) =>
        runAction(o, async () => {
          const { installAgent } = await import('./install.js');
          const r = await installAgent({
            bundle: o.bundle,
            dir: o.dir,
            mainUrls: o.mainUrl,
            allow: o.allow,
            syslog: o.syslog,
            direct: o.direct,
            engineListen: o.engineListen,
            engineAdvertise: o.engineAdvertise,
            cli: cliPath,
            verb,
            releaseRoot: o.releaseRoot,
          });
          printResult(r, o, () => [
            `installed ${r.kind} "${r.name}" in ${r.dir}`,
            `main: ${r.mainUrls.join(', ')}${r.mainUrls.length > 1 ? ' (tried in this order)' : ''}`,
            directPathLine(r),
            ...(r.syslog?.length ? [`syslog: ${r.syslog.map(formatSyslogListen).join(', ')}`] : []),
            `systemd unit: ${r.unitFile} (not enabled)`,
            `start it with: ${r.start}`,
          ]);
        }),
    );
}

/** One line on the engine ⇄ host direct path, as this install set it up. */
function directPathLine(r: InstallResult): string {
  if (r.kind === 'engine')
    return r.direct
      ? "direct path: dials its tenant's host directly when offered, else relays through main"
      : 'direct path: off (always relays through main)';
  if (r.engineListen === 'off') return 'engine port: off (engines relay through main)';
  const dial = r.engineAdvertise ? `; engines are told to dial ${r.engineAdvertise}` : '';
  const local = r.engineListen === DEFAULT_ENGINE_LISTEN ? ' (default: engines on this machine only)' : '';
  return `engine port: ${r.engineListen}${local}${dial}`;
}
