/**
 * The agent's CLI verbs: `agent start --dir DIR` runs until SIGTERM; `agent deregister --dir DIR` tells main it
 * is gone (uninstall.sh). Install lives in installer/.
 */
import type { Command } from 'commander';
import { printEvent, printResult, runAction, logOption } from '#common/cli-output.js';
import type { LogDestination } from '#common/logging.js';
import { RESTART_EXIT_CODE } from './upgrade/release-files.js';

export function registerAgentCommands(agent: Command): void {
  agent
    .command('start')
    .description('run an installed agent (enrols on first start)')
    .requiredOption('--dir <dir>', 'agent directory made by agent install')
    .addOption(logOption())
    .option('--json', 'machine-readable output')
    .action((o: { dir: string; log: LogDestination; json?: boolean }) =>
      runAction(o, async () => {
        const { startAgent } = await import('./agent.js');
        const say = (obj: Record<string, unknown>, text: string) => printEvent(obj, o, text);
        const a = await startAgent(
          o.dir,
          {
            onEnrolled: (id) => say({ event: 'enrolled', agentId: id }, `enrolled as ${id}`),
            onReady: () => say({ event: 'connected', url: a.connection.url }, `connected to ${a.connection.url}`),
          },
          undefined,
          o.log,
        );
        say(
          { event: 'started', agentId: a.agentId, kind: a.config.kind, name: a.config.name },
          `agent ${a.config.name} (${a.config.kind}) started`,
        );
        // A second Ctrl-C forces the exit; a second SIGTERM is no hurry: the launcher passes on the SIGTERM its
        // unit got, and `systemctl stop` or uninstall.sh may signal the whole group, so one stop may be asked twice.
        let stopping = false;
        let interrupts = 0;
        const stop = (signal: NodeJS.Signals) => {
          if (signal === 'SIGINT' && ++interrupts > 1) process.exit(130);
          if (stopping) return;
          stopping = true;
          void a.close().then(
            () => process.exit(0),
            () => process.exit(1),
          );
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
        const e = await Promise.race([a.fatal, a.restart]);
        await a.close();
        if (e) throw e;
        // The launcher starts the release `current` now points at (agent/upgrade/launcher.ts).
        process.exit(RESTART_EXIT_CODE);
      }),
    );

  agent
    .command('deregister')
    .description("tell main this stopped agent is gone (main revokes it); run as root, a host's tenant users go too")
    .requiredOption('--dir <dir>', 'agent directory made by agent install')
    .option('--json', 'machine-readable output')
    .action((o: { dir: string; json?: boolean }) =>
      runAction(o, async () => {
        const { deregisterAgent } = await import('./deregister.js');
        const { createRootLogger } = await import('#common/logging.js');
        const r = await deregisterAgent(o.dir, createRootLogger({ level: 'silent', name: 'agent' }));
        printResult(r, o, () => [
          r.toldMain
            ? `${r.kind} ${r.name}: main removed it (certificate revoked)`
            : `${r.kind} ${r.name}: never enrolled, so main holds nothing of it`,
          ...(r.tenantUsers.length ? [`tenant users deleted: ${r.tenantUsers.join(', ')}`] : []),
        ]);
      }),
    );
}
