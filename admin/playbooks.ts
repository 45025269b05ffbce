/**
 * CLI verbs for playbook runs in a tenant (docs/playbooks.md#cli): `playbooks run P --tenant T --incident ID
 * [--inputs JSON] [--wait]`, `playbooks runs`, `playbooks show-run RUN`, `playbooks complete-task RUN TASK
 * [--data JSON]` and `playbooks retry-task RUN TASK`. A run happens in the tenant; `--wait` follows it until it
 * stops running (completed, failed, waiting for an analyst, or interrupted), each read held by the tenant until
 * then. `playbooks test ID --tenant T [--incident-file F]` runs the latest draft of a playbook item in the tenant
 * without storing anything. Not the tenant's API: agent/tenant/playbooks/playbook-routes.ts. Playbooks themselves
 * are content (`palisade content`).
 */
import type { Command } from 'commander';
import { adminClient, withClientOptions, type Common } from './rest-client.js';
import { readOptionFile } from './option-file.js';
import { printResult, runAction, table } from '#common/cli-output.js';
import { BadParameterError, NotFoundError, TimeoutError } from '#common/errors.js';
import { checkName } from '#common/names.js';

type Opts = Common & { tenant: string };
/** A task as the tenant shows it (docs/playbooks.md#rest): `result` is its output, kept as `output` too. */
interface TaskState {
  id: string;
  status: string;
  result?: unknown;
  startedAt: string;
  endedAt?: string;
  output?: unknown;
  error?: { code: string; message: string };
  by?: string;
  childRun?: string;
  prompt?: string;
}
interface Run {
  id: string;
  playbook: { id: string; name: string; version: number };
  incident: string;
  status: string;
  current: string | null;
  tasks?: TaskState[];
  context?: Record<string, unknown>;
  startedBy: string;
  created: string;
  ended?: string;
  error?: { task: string; code: string; message: string };
}

/**
 * How often `--wait` asks a tenant that answers at once, and for how long by default: a run waiting on a slow service
 * ends within minutes.
 */
const WAIT_POLL_MS = 500;
const WAIT_DEFAULT_S = 120;
/**
 * How long one ask may be held by the tenant (`POST …/runs?wait=`, `GET …/runs/:run?wait=`, at most 20 s there, under
 * main's relay).
 */
const WAIT_HOLD_MS = 15_000;

const at = (tenant: string, rest: string) => `/tenants/${checkName(tenant, 'tenant')}/api/playbooks${rest}`;
const runPath = (o: Opts, run: string, rest = '') => at(o.tenant, `/runs/${encodeURIComponent(runId(run, o))}${rest}`);

/** A run id as the tenant gives them, or exit 2 saying what they look like and where to find them. */
function runId(run: string, o: Opts): string {
  if (/^run_[0-9]{12}$/.test(run)) return run;
  throw new BadParameterError(
    'ERR_BAD_REQUEST',
    `run: "${run}" is no run id (they look like run_000000000012); list them with ` +
      `'palisade playbooks runs --tenant ${o.tenant}'`,
    { field: 'run' },
  );
}

/** `playbooks test`'s playbook: a content id as it is, or the id of main's one playbook item of that name. */
async function playbookItem(o: Opts, playbook: string): Promise<string> {
  if (/^cnt_[0-9a-f]{12}$/.test(playbook)) return playbook;
  const items = await adminClient(o).request<{ id: string; name: string }[]>('GET', '/content?type=playbook');
  const named = items.filter((i) => i.name === playbook);
  if (named.length === 1) return named[0].id;
  if (named.length === 0)
    throw new NotFoundError(
      'ERR_CONTENT_NOT_FOUND',
      `playbook: no playbook item named "${playbook}" on main; list them with 'palisade content list --type playbook'`,
      { field: 'playbook' },
    );
  throw new BadParameterError(
    'ERR_BAD_REQUEST',
    `playbook: ${named.length} playbook items are named "${playbook}"; give one's id (${named.map((i) => i.id).join(', ')})`,
    { field: 'playbook' },
  );
}

/** The most `--wait` follows a run: a day, past which a run is waiting on people, not on services. */
const WAIT_MAX_S = 86_400;

/** `--timeout 90`: positive seconds, or exit 2 before anything is sent (not a silent default, nor an instant end). */
function secondsOf(text: string): number {
  const s = /^\s*\d+(\.\d+)?\s*$/.test(text) ? Number(text) : NaN;
  if (!(s > 0 && s <= WAIT_MAX_S))
    throw new BadParameterError(
      'ERR_BAD_DURATION',
      `--timeout: "${text}" is not a positive number of seconds (at most ${WAIT_MAX_S})`,
      { field: 'timeout' },
    );
  return s;
}

/**
 * `--incident-file F`: a JSON object, or exit 2 (ERR_CLI_BAD_FILE) before anything is sent, naming the file and where
 * its JSON breaks (JSON.parse's message says where: a position, line and column, or the text around a bad token).
 */
async function incidentFile(file: string): Promise<Record<string, unknown>> {
  const text = await readOptionFile(file, 'incident-file', 'incidentFile');
  const bad = (why: string) =>
    new BadParameterError('ERR_CLI_BAD_FILE', `--incident-file ${file}: ${why}`, {
      field: 'incidentFile',
    });
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    const lines = text.split('\n').length;
    const where = /Unexpected end/.test((e as Error).message) ? ` (the file ends at line ${lines})` : '';
    throw bad(`is not JSON: ${(e as Error).message}${where}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw bad(
      `must be a JSON object (name, type, severity, details, labels), not ${Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v}`,
    );
  return v as Record<string, unknown>;
}

/** `--inputs '{"mailbox":"x"}'`: JSON (an object for inputs), or exit 2 before anything is sent. */
function jsonOf(text: string | undefined, flag: string, object: boolean): unknown {
  if (text === undefined) return undefined;
  try {
    const v: unknown = JSON.parse(text);
    if (!object || (typeof v === 'object' && v !== null && !Array.isArray(v))) return v;
  } catch {
    // reported below
  }
  throw new BadParameterError('ERR_PLAYBOOK_INPUTS', `--${flag}: must be ${object ? 'a JSON object' : 'JSON'}`, {
    field: flag,
  });
}

/**
 * A run in the shape the tenant shows (status `completed`, tasks a list): a tenant from before that answers
 * `succeeded` and tasks as a map by id, shown the same way here and in --json.
 */
function shown<R extends { status: string; tasks?: TaskState[] | Record<string, Omit<TaskState, 'id'>> }>(r: R): R {
  const tasks =
    r.tasks === undefined || Array.isArray(r.tasks)
      ? r.tasks
      : Object.entries(r.tasks)
          .map(([id, t]) => ({ id, ...t, ...(t.output !== undefined ? { result: t.output } : {}) }))
          .sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : 0));
  return { ...r, status: r.status === 'succeeded' ? 'completed' : r.status, ...(tasks ? { tasks } : {}) };
}

/** A task's error to print on its line: not the one the run failed with, already printed (`failed in …`) above. */
function taskError(r: Run, t: TaskState): TaskState['error'] {
  const same = r.error?.task === t.id && r.error.code === t.error?.code && r.error.message === t.error.message;
  return same ? undefined : t.error;
}

function runLines(r: Run): string[] {
  const lines = [
    `run ${r.id}: playbook ${r.playbook.name} (${r.playbook.id} v${r.playbook.version}) on incident ${r.incident}: ` +
      `${r.status}${r.current && r.status !== 'completed' ? ` at ${r.current}` : ''}`,
  ];
  if (r.error) lines.push(`  failed in ${r.error.task}: ${r.error.message} (${r.error.code})`);
  for (const t of r.tasks ?? []) {
    const error = taskError(r, t);
    const why = error ? `: ${error.message} (${error.code})` : t.by ? ` by ${t.by}` : '';
    lines.push(`  ${t.id}: ${t.status}${why}${t.childRun ? ` (run ${t.childRun})` : ''}`);
  }
  return lines;
}

/** How deep `next:` follows sub-playbook runs: as deep as they nest (the runner's MAX_PLAYBOOK_DEPTH). */
const NEXT_MAX_DEPTH = 5;

/**
 * What an analyst does next with a run that waits or was interrupted, as commands pasteable as they are (the tenant is
 * part of them). A run waiting on a sub-playbook's run leads to that run, fetched: its own next, else `show-run` of it
 * (a task of the run above is not the one to complete).
 */
async function nextLines(o: Opts, r: Run, depth = 0): Promise<string[]> {
  const cmd = (verb: string, ...args: string[]) => `palisade playbooks ${verb} ${args.join(' ')} --tenant ${o.tenant}`;
  if (!r.current) return [];
  if (r.status === 'interrupted')
    return [
      `  ${r.current} may have acted before the tenant stopped: complete-task (it was done) or retry-task (run it again)`,
      `  next: ${cmd('complete-task', r.id, r.current)}`,
      `    or: ${cmd('retry-task', r.id, r.current)}`,
    ];
  if (r.status !== 'waiting') return [];
  const task = r.tasks?.find((t) => t.id === r.current);
  if (!task?.childRun)
    return [
      ...(task?.prompt ? [`  ${r.current} asks: ${task.prompt}`] : []),
      `  next: ${cmd('complete-task', r.id, r.current)}`,
    ];
  const sub = task.childRun;
  const child =
    depth < NEXT_MAX_DEPTH && /^run_[0-9]{12}$/.test(sub)
      ? await adminClient(o)
          .request<Run>('GET', runPath(o, sub))
          .then(shown, () => undefined) // the hint falls back to show-run
      : undefined;
  const at = child ? ` (${child.playbook.name}): ${child.status}${child.current ? ` at ${child.current}` : ''}` : '';
  const below = child ? await nextLines(o, child, depth + 1) : [];
  return [
    `  ${r.current} waits on sub-playbook run ${sub}${at}`,
    ...(below.length ? below : [`  next: ${cmd('show-run', sub)}`]),
  ];
}

/** A run as text (with what to do next) or JSON; its sub-playbook's run is fetched for the text only. */
async function printRun(o: Opts, r: Run): Promise<void> {
  const next = o.json ? [] : await nextLines(o, r);
  printResult(r, o, () => [...runLines(r), ...next]);
}

/** A test's outcome: where it stopped, each task's state and result (a test keeps outputs: nobody else sees them). */
function testLines(playbook: string, tenant: string, r: Run): string[] {
  const at = r.current && r.status !== 'completed' ? ` at ${r.current}` : '';
  const lines = [`test of ${playbook} in ${tenant}: ${r.status}${at} (nothing was stored)`];
  if (r.error) lines.push(`  failed in ${r.error.task}: ${r.error.message} (${r.error.code})`);
  for (const t of r.tasks ?? []) {
    const out = t.result === undefined ? '' : ` ${JSON.stringify(t.result).slice(0, 200)}`;
    const error = taskError(r, t);
    lines.push(`  ${t.id}: ${t.status}${error ? `: ${error.message} (${error.code})` : out}`);
  }
  if (r.status === 'waiting' && r.current) lines.push(`  ${r.current} is a manual task: a test stops there`);
  return lines;
}

async function waitFor(o: Opts, run: Run, timeoutS: number): Promise<Run> {
  const deadline = Date.now() + timeoutS * 1000;
  let r = run;
  while (r.status === 'running') {
    if (Date.now() > deadline)
      throw new TimeoutError(
        'ERR_PLAYBOOK_WAIT_TIMEOUT',
        `run ${r.id} is still running after ${timeoutS} s (at ${r.current})`,
      );
    // The tenant holds its answer until the run stops running (WAIT_HOLD_MS at most); one that answers at once (from
    // before `?wait=`) is asked again no sooner than every WAIT_POLL_MS.
    const asked = Date.now();
    const hold = Math.max(1, Math.min(WAIT_HOLD_MS, deadline - asked));
    r = shown(await adminClient(o).request<Run>('GET', runPath(o, run.id, `?wait=${hold}`)));
    const since = Date.now() - asked;
    if (r.status === 'running' && since < WAIT_POLL_MS)
      await new Promise((done) => setTimeout(done, WAIT_POLL_MS - since));
  }
  return r;
}

export function registerPlaybookCommands(program: Command): void {
  const pb = program.command('playbooks').description('run playbooks in a tenant, and follow and complete their runs');
  const base = (cmd: Command) => withClientOptions(cmd).requiredOption('--tenant <tenant>', 'the tenant it runs in');

  base(pb.command('run <playbook>').description('start a run of a playbook (content id or name) on an incident'))
    .requiredOption('--incident <id>', 'the incident it runs on')
    .option('--inputs <json>', "the playbook's inputs as a JSON object")
    .option('--wait', 'wait until the run stops running, and exit 1 if it failed')
    .option('--timeout <seconds>', 'with --wait: how long', String(WAIT_DEFAULT_S))
    .action((playbook: string, o: Opts & { incident: string; inputs?: string; wait?: boolean; timeout: string }) =>
      runAction(o, async () => {
        const inputs = jsonOf(o.inputs, 'inputs', true);
        const timeoutS = secondsOf(o.timeout);
        const body = { incident: o.incident, ...(inputs ? { inputs } : {}) };
        // With --wait the start is held too (`?wait=`): a run that ends within WAIT_HOLD_MS costs one request. A tenant
        // from before that answers at once, and waitFor follows the run as before.
        const hold = o.wait ? `?wait=${Math.min(WAIT_HOLD_MS, Math.ceil(timeoutS * 1000))}` : '';
        const path = at(o.tenant, `/${encodeURIComponent(playbook)}/runs${hold}`);
        let r = shown(await adminClient(o).request<Run>('POST', path, body));
        if (o.wait) r = await waitFor(o, r, timeoutS);
        await printRun(o, r);
        if (r.status === 'failed') process.exitCode = 1;
      }),
    );

  base(
    pb
      .command('test <playbook>')
      .description("run a playbook item's latest version (content id or name) in a tenant, storing nothing"),
  )
    .option('--incident-file <file>', 'the incident to test on, a JSON object (name, type, severity, details, labels)')
    .option('--inputs <json>', "the playbook's inputs as a JSON object")
    .option('--site <site>', 'test at this site of the tenant: its site-scoped connections apply')
    .action((playbook: string, o: Opts & { incidentFile?: string; inputs?: string; site?: string }) =>
      runAction(o, async () => {
        const inputs = jsonOf(o.inputs, 'inputs', true);
        const incident = o.incidentFile ? await incidentFile(o.incidentFile) : undefined;
        const body = {
          tenant: o.tenant,
          ...(incident ? { incident } : {}),
          ...(inputs ? { inputs } : {}),
          ...(o.site ? { site: o.site } : {}),
        };
        const id = await playbookItem(o, playbook);
        const r = shown(await adminClient(o).request<Run>('POST', `/content/${encodeURIComponent(id)}/test`, body));
        printResult(r, o, () => testLines(playbook, o.tenant, r));
        if (r.status === 'failed') process.exitCode = 1;
      }),
    );

  base(pb.command('runs').description('list runs, newest first'))
    .option('--incident <id>', 'only the runs on this incident')
    .action((o: Opts & { incident?: string }) =>
      runAction(o, async () => {
        const q = o.incident ? `?${new URLSearchParams({ incident: o.incident })}` : '';
        const rows = (await adminClient(o).request<Run[]>('GET', at(o.tenant, `/runs${q}`))).map(shown);
        const cells = rows.map((r) => ({ ...r, playbook: r.playbook.name, at: r.current ?? '' }));
        printResult(rows, o, () =>
          table(cells, ['id', 'playbook', 'incident', 'status', 'at', 'startedBy', 'created']),
        );
      }),
    );

  base(pb.command('show-run <run>').description("a run's state and each task's")).action((run: string, o: Opts) =>
    runAction(o, async () => {
      const r = shown(await adminClient(o).request<Run>('GET', runPath(o, run)));
      await printRun(o, r);
    }),
  );

  base(
    pb.command('complete-task <run> <task>').description('finish a manual task, or an interrupted one (it was done)'),
  )
    .option('--data <json>', "the task's output (any JSON)")
    .action((run: string, task: string, o: Opts & { data?: string }) =>
      runAction(o, async () => {
        const data = jsonOf(o.data, 'data', false);
        const path = runPath(o, run, `/tasks/${encodeURIComponent(task)}/complete`);
        const r = shown(await adminClient(o).request<Run>('POST', path, data === undefined ? {} : { data }));
        await printRun(o, r);
      }),
    );

  base(pb.command('retry-task <run> <task>').description('run an interrupted or failed task again')).action(
    (run: string, task: string, o: Opts) =>
      runAction(o, async () => {
        const path = runPath(o, run, `/tasks/${encodeURIComponent(task)}/retry`);
        const r = shown(await adminClient(o).request<Run>('POST', path, {}));
        await printRun(o, r);
      }),
  );
}
