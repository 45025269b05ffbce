/**
 * What each kind of task does when a run reaches it, given the run's scope: an integration task calls the
 * tenant's instance or its connection of a name, a condition picks a branch, a set-field task computes the
 * incident's new record (the runner writes it in the same batch as the task's `done`). Manual and playbook tasks
 * wait, so the runner handles them itself. Also which tasks are safe to run again after the process died during
 * them (docs/playbooks.md#durability). Not the run's state (playbook-runner.ts).
 */
import { BadParameterError } from '#common/errors.js';
import {
  fieldValue,
  type ConditionTask,
  type IntegrationTask,
  type PlaybookTask,
  type SetFieldTask,
} from '#common/playbook.js';
import type { Incident } from '../store.js';
import type { IntegrationRunner } from '../integration-runner.js';
import { commandOf } from '../integration-runner.js';
import type { IntegrationCatalog } from '../integration-catalog.js';
import type { IntegrationStore } from '../integration-store.js';
import { holds, interpolate, type Scope } from './playbook-values.js';

export interface StepDeps {
  integrations: IntegrationRunner;
  instances: IntegrationStore;
  catalog: IntegrationCatalog;
}

export interface StepDone {
  output?: unknown;
  next: string | null;
  /** For set-field: the incident as it is to be stored. */
  incident?: Incident;
  /** What the timeline says happened. */
  text: string;
}

type RunnableTask = IntegrationTask | ConditionTask | SetFieldTask;

export async function runStep(id: string, task: RunnableTask, scope: Scope, deps: StepDeps): Promise<StepDone> {
  if (task.type === 'condition') return decide(task, scope);
  if (task.type === 'set-field') return setField(id, task, scope);
  const args = interpolate(task.args ?? {}, scope);
  const r =
    task.instance !== undefined
      ? await deps.integrations.run(task.instance, task.command, args)
      : await deps.integrations.runWithConnection(task.integration!, task.connection!, task.command, args);
  const via =
    task.instance !== undefined ? `instance ${task.instance}` : `${r.integration} with connection ${task.connection}`;
  return { output: r.result, next: task.next ?? null, text: `${task.command} on ${via}: ok in ${r.durationMs} ms` };
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
  const cur = scope.incident as unknown as Incident;
  const value = fieldValue(task.field, interpolate(task.value, scope), `tasks.${id}.value`);
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
  return {
    output: { [task.field]: value },
    next: task.next ?? null,
    incident: next,
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
