#!/usr/bin/env node
// The `palisade` command: one commander program whose verbs come from main/, agent/, installer/ and admin/.
// Plain JS outside the layered code, so it may import all four without breaking the import rule.
import { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { registerMainCommands } from '../dist/main/cli.js';
import { registerAgentCommands } from '../dist/agent/cli.js';
import { registerInstallerCommands } from '../dist/installer/cli.js';
import { registerAdminCommands } from '../dist/admin/cli.js';
import { registerDemoCommand } from '../dist/admin/demo-cli.js';

const wantsJson = process.argv.includes('--json');
const program = new Command('palisade')
  .description('Palisade: multi-tenant security-operations control plane')
  .version('0.1.0')
  .enablePositionalOptions()
  .configureOutput({
    // With --json, usage errors are JSON on stdout like every other error; otherwise commander's one line.
    outputError: (str, write) =>
      wantsJson
        ? process.stdout.write(
            JSON.stringify({ error: { code: 'ERR_USAGE', message: str.replace(/^error: /, '').trim() } }) + '\n',
          )
        : write(`palisade: ${str.replace(/^error: /, '').trim()} (see 'palisade help')\n`),
  })
  .exitOverride((err) => {
    // commander's own usage errors (unknown option, missing argument) are user errors: exit 2.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help')
      process.exit(0);
    process.exit(2);
  });
registerMainCommands(program, fileURLToPath(import.meta.url));
registerAdminCommands(program);
const agent = program.command('agent').description('install and run a host or engine agent');
registerAgentCommands(agent);
registerInstallerCommands(agent, fileURLToPath(import.meta.url));
registerDemoCommand(program, fileURLToPath(import.meta.url));
await program.parseAsync(process.argv);
