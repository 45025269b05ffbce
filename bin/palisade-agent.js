// The agent's own command, the entry point of a release (scripts/build-agent-release.mjs bundles it into
// app/palisade-agent.mjs): `start`, `install` and `deregister`, the agent verbs of `palisade agent`, without
// the admin, main and demo verbs, which an agent machine has no use for. Plain JS like bin/palisade.js.
import { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { registerAgentCommands } from '../dist/agent/cli.js';
import { registerInstallerCommands } from '../dist/installer/cli.js';

const wantsJson = process.argv.includes('--json');
const program = new Command('palisade-agent')
  .description('Palisade agent: run, install or deregister a host or engine agent')
  .configureOutput({
    outputError: (str, write) =>
      wantsJson
        ? process.stdout.write(
            JSON.stringify({ error: { code: 'ERR_USAGE', message: str.replace(/^error: /, '').trim() } }) + '\n',
          )
        : write(`palisade-agent: ${str.replace(/^error: /, '').trim()}\n`),
  })
  .exitOverride((err) => {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help')
      process.exit(0);
    process.exit(2);
  });
registerAgentCommands(program);
registerInstallerCommands(program, fileURLToPath(import.meta.url), []);
await program.parseAsync(process.argv);
