/**
 * `agents`: the agent upgrade verbs — `agents releases add|list` (the releases main serves), `agents ring`
 * (which agents go first) and `agents upgrade` (start one, and with --wait follow each agent until it is
 * upgraded, rolled back or failed). Main and the agents do the work (docs/operations.md#agent-upgrades).
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { BadParameterError } from '#common/errors.js';
import { parseDuration } from '#common/duration.js';
import { printEvent, printResult, runAction, table } from '#common/cli-output.js';
import { adminClient, withClientOptions, type AdminClient, type Common } from './rest-client.js';

type UpgradeRow = {
  agent: string;
  kind: string;
  from: string | null;
  to: string;
  version: string | null;
  state: 'pending' | 'upgraded' | 'rolled-back' | 'failed';
  reason: string | null;
  commandId: number;
};

/** How often --wait asks main; each agent's state changes a few times a minute at most. */
const WAIT_POLL_MS = 1_000;

function list(v: string, flag: string): string[] {
  const out = v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  if (!out.length) throw new BadParameterError('ERR_CLI_BAD_LIST', `${flag}: give at least one name`, { field: flag });
  return out;
}

function oneOf<T extends string>(v: string, allowed: readonly T[], flag: string): T {
  if (!(allowed as readonly string[]).includes(v))
    throw new BadParameterError('ERR_CLI_BAD_CHOICE', `${flag} must be one of ${allowed.join(', ')}`, { field: flag });
  return v as T;
}

const stateText = (r: UpgradeRow): string =>
  r.state === 'upgraded'
    ? `${r.kind} ${r.agent}: upgraded to ${r.to}`
    : r.state === 'rolled-back'
      ? `${r.kind} ${r.agent}: rolled back from ${r.to} to ${r.version ?? '?'}: ${r.reason ?? ''}`
      : r.state === 'failed'
        ? `${r.kind} ${r.agent}: failed, still on ${r.version ?? '?'}: ${r.reason ?? ''}`
        : `${r.kind} ${r.agent}: upgrading ${r.from ?? '?'} → ${r.to}`;

export function registerUpgradeCommands(program: Command): void {
  const agents = program.command('agents').description('agent releases, rings and upgrades (hosts and engines)');
  const releases = agents.command('releases').description('the agent releases main serves');

  withClientOptions(
    releases.command('add <file>').description('add a release (.tar.gz of a release directory)'),
  ).action((file: string, o: Common) =>
    runAction(o, async () => {
      const bytes = await readFile(file).catch((e: unknown) => {
        throw new BadParameterError('ERR_CLI_BAD_FILE', `${file}: ${(e as Error).message}`, { field: 'file' });
      });
      const r = await adminClient(o).requestBytes<Record<string, unknown>>(
        'POST',
        '/agents/releases',
        bytes,
        'application/gzip',
      );
      printResult(r, o, () => `release ${String(r.version)} held by main (${String(r.size)} bytes, signed)`);
    }),
  );

  withClientOptions(releases.command('list').description('list the releases main holds')).action((o: Common) =>
    runAction(o, async () => {
      const rows = await adminClient(o).request<Record<string, unknown>[]>('GET', '/agents/releases');
      printResult(rows, o, () => table(rows, ['version', 'node', 'size', 'addedAt', 'sha256']));
    }),
  );

  withClientOptions(agents.command('ring <names>').description('put agents (a,b,…) in an upgrade ring'))
    .requiredOption('--ring <ring>', 'canary or default')
    .action((names: string, o: Common & { ring: string }) =>
      runAction(o, async () => {
        const body = { agents: list(names, 'names'), ring: oneOf(o.ring, ['canary', 'default'] as const, '--ring') };
        const r = await adminClient(o).request<{ ring: string; agents: string[] }>('PUT', '/agents/ring', body);
        printResult(r, o, () => `${r.agents.join(', ')}: ring ${r.ring}`);
      }),
    );

  withClientOptions(agents.command('upgrade').description('upgrade agents to a release held by main'))
    .requiredOption('--version <version>', 'the release')
    .option('--ring <ring>', 'canary (only canary agents) or all', 'all')
    .option('--hosts <names>', 'these agents (a,b,…) instead of a ring')
    .option('--deadline <duration>', 'how long a new version has to connect before it rolls back', '2m')
    .option('--wait', 'follow each agent until it is upgraded, rolled back or failed')
    .option('--timeout <duration>', 'with --wait: stop following after this long (e.g. 90s, 10m)', '10m')
    .action(
      (
        o: Common & {
          version: string;
          ring: string;
          hosts?: string;
          deadline: string;
          wait?: boolean;
          timeout: string;
        },
      ) =>
        runAction(o, async () => {
          const client = adminClient(o);
          const started = await client.request<UpgradeRow[]>('POST', '/agents/upgrade', {
            version: o.version,
            ...(o.hosts
              ? { hosts: list(o.hosts, '--hosts') }
              : { ring: oneOf(o.ring, ['canary', 'all'] as const, '--ring') }),
            deadline: o.deadline,
          });
          if (!o.wait) return printResult(started, o, () => table(started, ['agent', 'kind', 'from', 'to', 'state']));
          const done = await follow(client, started, parseDuration(o.timeout, '--timeout'), o);
          if (o.json) printResult(done, o, () => []);
          if (done.some((r) => r.state !== 'upgraded')) process.exitCode = 1;
        }),
    );
}

/** Polls main until every agent of `started` left pending (or the timeout), printing each change. */
async function follow(client: AdminClient, started: UpgradeRow[], ms: number, o: Common): Promise<UpgradeRow[]> {
  const mine = new Map(started.map((r) => [r.agent, r.commandId]));
  const seen = new Map<string, string>();
  const deadline = Date.now() + ms;
  for (;;) {
    const rows = (await client.request<UpgradeRow[]>('GET', '/agents/upgrade')).filter(
      (r) => mine.get(r.agent) === r.commandId,
    );
    for (const r of rows) {
      if (seen.get(r.agent) === r.state) continue;
      seen.set(r.agent, r.state);
      if (!o.json) printEvent(r, o, stateText(r));
    }
    if (!rows.some((r) => r.state === 'pending') || Date.now() > deadline) return rows;
    await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
  }
}
