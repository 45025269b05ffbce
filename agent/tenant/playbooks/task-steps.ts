/**
 * What each kind of task does when a run reaches it, given the run's scope: an integration task calls the
 * tenant's instance or its connection of a name (audited as `integration.run` by the run, as a script's call is),
 * a condition picks a branch, a set-field task computes its change of the incident (the runner applies it to the
 * incident as stored when it writes the task's `done`, in the same batch), a script task runs a script
 * item in the sandbox as the run (scripts/script-api.ts: the tenant's integrations, the run's incident, a copy of
 * the run's context; its result is the task's output). Manual and playbook tasks
 * wait, so the runner handles them itself. Also which tasks are safe to run again after the process died during
 * them (docs/playbooks.md#durability). Not the run's state (playbook-runner.ts).
 */
import { BadParameterError, TooLargeError, isPalisadeError } from '#common/errors.js';
import {
  fieldValue,
  type ConditionTask,
  type IntegrationTask,
  type PlaybookTask,
  type ScriptTask,
  type SetFieldTask,
} from '#common/playbook.js';
import type { TenantPermission } from '#common/roles.js';
import type { AuditStore } from '../audit-store.js';
import type { ContentStore, TenantContentItem } from '../content-store.js';
import type { Incident, IncidentRecords } from '../store.js';
import { findScript, scriptApi } from '../scripts/script-api.js';
import { TENANT_ACTOR_PREFIX } from '../signature-guard.js';
import { dropSandbox, runScript, type SandboxAhead, type ScriptApi } from '../scripts/script-sandbox.js';
import { SCRIPT_MAX_CONCURRENT } from '../scripts/script-admission.js';
import type { IntegrationRunner } from '../integration-runner.js';
import { auditableArgs, commandOf } from '../integration-runner.js';
import type { IntegrationCatalog } from '../integration-catalog.js';
import type { IntegrationStore } from '../integration-store.js';
import type { BatchOp } from '../incident-timeline.js';
import { holds, interpolate, type Scope } from './playbook-values.js';

export interface StepDeps {
  integrations: IntegrationRunner;
  instances: IntegrationStore;
  catalog: IntegrationCatalog;
  /** For script tasks: the items they name, the incident they read and change, the audit of their calls. */
  content: ContentStore;
  store: IncidentRecords;
  /** Without `entryOps` (a playbook test's, which writes no batch to the tenant's store) lines are recorded at once. */
  audit: Pick<AuditStore, 'record'> & Partial<Pick<AuditStore, 'entryOps'>>;
  /**
   * Who a run's integration calls and scripts act as, given the run's id: the run itself (`playbook run run_…`) unless
   * given (a playbook test acts as the test and its user: its runs are stored nowhere, so no audit line names one).
   */
  actor?: (run: string) => RunActor;
}

/** A run's actor as audit lines and a script's caller name it: an id no request can claim, and a name. */
export interface RunActor {
  id: string;
  name: string;
}

/** What a script run by a playbook may do: what the run itself does (it needs no permission of its starter). */
const RUN_PERMISSIONS: ReadonlySet<TenantPermission> = new Set<TenantPermission>([
  'integrations:run',
  'incidents:read',
  'incidents:write',
]);

/**
 * The most JSON one integration task's output may be: the run keeps every output in its one record, which each
 * task's step rewrites, so a few large answers would make every later step slow. As a script's result (256 KiB).
 */
export const MAX_TASK_OUTPUT_BYTES = 256 * 1024;

export interface StepDone {
  output?: unknown;
  next: string | null;
  /** For set-field: the incident as it is to be stored, given the incident as stored when the task is marked done. */
  change?: (current: Incident) => Incident;
  /** What the timeline says happened. */
  text: string;
  /** More for the batch that marks the task done (an integration call's audit line). */
  ops?: BatchOp[];
}

type RunnableTask = IntegrationTask | ConditionTask | SetFieldTask | ScriptTask;

/**
 * `run` names the run in the audit lines of a script's integration calls. `ahead`: for a script task, the isolate
 * the runner made for it (sandbox-lookahead.ts), which this step uses or drops.
 */
export async function runStep(
  id: string,
  task: RunnableTask,
  scope: Scope,
  deps: StepDeps,
  run = '',
  ahead?: Promise<SandboxAhead | undefined>,
): Promise<StepDone> {
  if (task.type === 'script') return script(task, scope, deps, run, await ahead);
  if (ahead) void ahead.then((a) => a && dropSandbox(a));
  if (task.type === 'condition') return decide(task, scope);
  if (task.type === 'set-field') return setField(id, task, scope);
  const args = interpolate(task.args ?? {}, scope);
  // The incident's site picks a site-scoped connection over the tenant's (agent/tenant/connection-resolve.ts).
  const site = typeof scope.incident.site === 'string' ? scope.incident.site : undefined;
  const { r, line } = await audited(task, args, deps, run, async () =>
    task.instance !== undefined
      ? await deps.integrations.run(task.instance, task.command, args, { site })
      : await deps.integrations.runWithConnection(task.integration!, task.connection!, task.command, args, site),
  );
  const size = Buffer.byteLength(JSON.stringify(r.result) ?? '');
  // The call answered: its line says so, in the batch of its task's `done` if the task is done, else now.
  const tooLarge = size > MAX_TASK_OUTPUT_BYTES;
  const ops = deps.audit.entryOps && !tooLarge ? (deps.audit.entryOps(line) as BatchOp[]) : [];
  if (!ops.length) await deps.audit.record(line).catch(() => undefined);
  if (tooLarge)
    throw new TooLargeError(
      'ERR_PLAYBOOK_OUTPUT_TOO_LARGE',
      `${task.command} answered ${size} bytes of JSON; a task's output is at most ${MAX_TASK_OUTPUT_BYTES}`,
    );
  const via =
    task.instance !== undefined ? `instance ${task.instance}` : `${r.integration} with connection ${task.connection}`;
  const text = `${task.command} on ${via}: ok in ${r.durationMs} ms`;
  return { output: r.result, next: task.next ?? null, text, ops };
}

/** The run's own actor, as audit lines and a script's caller name it (a test's is its own, StepDeps.actor). */
const runActor = (run: string, deps: StepDeps): RunActor =>
  deps.actor?.(run) ?? { id: `${TENANT_ACTOR_PREFIX}playbook-run:${run}`, name: `playbook run ${run}` };

/**
 * An integration task's call, audited as the integration route and a script's call are, with the run as actor: a
 * failed call at once; for one that answered, the line is returned, for the batch that marks its task done (so it
 * is there for every task done, at no write of its own; runStep). The run does not fail for its audit line.
 */
async function audited<T>(task: IntegrationTask, args: unknown, deps: StepDeps, run: string, call: () => Promise<T>) {
  const started = performance.now();
  const target = task.instance ?? `${task.integration}/${task.connection}`;
  const entry = (outcome: 'ok' | 'failed', extra: Record<string, unknown> = {}) => ({
    actor: runActor(run, deps).name,
    action: 'integration.run',
    target,
    outcome,
    ...extra,
    detail: {
      command: task.command,
      args: auditableArgs(args),
      durationMs: Math.round(performance.now() - started),
    },
  });
  try {
    const r = await call();
    return { r, line: entry('ok') };
  } catch (e) {
    await deps.audit.record(entry('failed', isPalisadeError(e) ? { code: e.code } : {})).catch(() => undefined);
    throw e;
  }
}

/**
 * Script tasks waiting for the sandbox wait here first, in order, so that at most SCRIPT_MAX_CONCURRENT of them are in
 * the sandbox's own queue at once: that queue is bounded (SCRIPT_QUEUE_MAX, for callers a request can multiply), and a
 * burst of runs an automation rule started on a batch of incidents reached it faster than the sandbox drained it once
 * the runner stopped writing between tasks (51 of 1 000 runs failed ERR_SCRIPT_BUSY in bench/playbook-runs.ts).
 * What waits here is bounded by the runs themselves, each already stored and held by its driver.
 */
class ScriptGate {
  private inside = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly size: number) {}

  async enter(): Promise<() => void> {
    if (this.inside >= this.size) await new Promise<void>((r) => this.waiting.push(r));
    else this.inside++;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const next = this.waiting.shift();
      if (next) next();
      else this.inside--;
    };
  }
}
const scriptGate = new ScriptGate(SCRIPT_MAX_CONCURRENT);

async function script(
  task: ScriptTask,
  scope: Scope,
  deps: StepDeps,
  run: string,
  ahead: SandboxAhead | undefined,
): Promise<StepDone> {
  let item: TenantContentItem;
  let api: ScriptApi;
  let input: unknown;
  try {
    item = await findScript(deps.content, task.script);
    const incident = String(scope.incident.id);
    const caller = { ...runActor(run, deps), roles: [] };
    ({ api } = scriptApi(
      { store: deps.store, runner: deps.integrations, audit: deps.audit },
      { caller, permissions: RUN_PERMISSIONS, script: item.id, incident },
      scope.context,
    ));
    input = interpolate(task.input ?? {}, scope);
  } catch (e) {
    if (ahead) dropSandbox(ahead);
    throw e;
  }
  // With an isolate made ahead, the run holds its slot already: it neither queues at the gate nor waits for one.
  const leave = ahead ? () => undefined : await scriptGate.enter();
  let r: Awaited<ReturnType<typeof runScript>>;
  try {
    r = await runScript({ source: item.body, input, api, wait: true, ahead });
  } finally {
    leave();
  }
  return {
    output: r.result,
    next: task.next ?? null,
    text: `script ${item.name} (v${item.version}): ok in ${r.durationMs} ms, ${r.logs.length} log lines`,
  };
}

function decide(task: ConditionTask, scope: Scope): StepDone {
  const i = task.branches.findIndex((b) => holds(b.when, scope));
  if (i >= 0)
    return {
      output: { branch: i },
      next: task.branches[i].next,
      text: `branch ${i} holds: on to ${task.branches[i].next}`,
    };
  const next = task.else ?? null;
  return { output: { branch: 'else' }, next, text: `no branch holds: ${next ? `on to ${next}` : 'the run ends'}` };
}

function setField(id: string, task: SetFieldTask, scope: Scope): StepDone {
  const value = fieldValue(task.field, interpolate(task.value, scope), `tasks.${id}.value`);
  // Only this one field changes, on the incident as stored when the change is written: a PATCH since the task
  // started stays, and a closed incident is not reopened by a task that read it open.
  const change = (cur: Incident): Incident => {
    const now = new Date().toISOString();
    let next: Incident;
    if (task.field === 'status') {
      next = value === 'closed' ? { ...cur, status: 'closed', closed: cur.closed ?? now } : reopened(cur);
    } else {
      if (cur.status === 'closed')
        throw new BadParameterError('ERR_INCIDENT_CLOSED', `incident ${cur.id} is closed; ${task.field} was not set`, {
          field: `tasks.${id}`,
        });
      const label = task.field.startsWith('labels.') ? task.field.slice(7) : undefined;
      next = label ? { ...cur, labels: { ...cur.labels, [label]: String(value) } } : { ...cur, [task.field]: value };
    }
    next.updated = now;
    return next;
  };
  return {
    output: { [task.field]: value },
    next: task.next ?? null,
    change,
    text: `set ${task.field} to ${JSON.stringify(value)}`,
  };
}

function reopened(cur: Incident): Incident {
  if (cur.status === 'open') return { ...cur };
  throw new BadParameterError('ERR_INCIDENT_CLOSED', `incident ${cur.id} is closed; reopen is not supported`, {
    field: 'status',
  });
}

/**
 * Whether a task found `running` when the tenant starts may run again: a condition and a set-field task change
 * nothing outside the batch that marks them done, and an integration command its definition marks read-only
 * changes nothing anywhere. Anything else (a command that may write) may have acted, so an analyst decides.
 */
export async function safeToRerun(task: PlaybookTask, deps: StepDeps): Promise<boolean> {
  if (task.type === 'condition' || task.type === 'set-field') return true;
  if (task.type !== 'integration') return false;
  try {
    const integration =
      task.instance !== undefined ? (await deps.instances.get(task.instance)).integration : task.integration!;
    return commandOf(await deps.catalog.resolve(integration), task.command).readOnly;
  } catch {
    return false; // what it ran is gone or changed: nothing says it only read
  }
}
