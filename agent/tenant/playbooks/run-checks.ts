/**
 * The checks a playbook run makes of what it is asked, and the errors it answers with: the inputs a run is given
 * against those its playbook declares, a starter without integrations:run, a task not in a state to be completed or
 * retried, a run tree past its budget. Pure (no store); the runner (playbook-runner.ts) calls them.
 */
import { AccessDeniedError, BadParameterError, ConflictError, NotFoundError } from '#common/errors.js';
import type { Playbook } from '#common/playbook.js';
import type { PlaybookRun } from './run-store.js';
import { shownStatus } from './run-view.js';

/**
 * What one run started by a user may spend, its sub-playbooks' runs included: depth alone lets a playbook of 200
 * sub-playbook tasks, each calling such a playbook, start 200^5 runs. 50 sub-playbook runs and 1 000 tasks are far
 * beyond a real triage; past either a sub-playbook task fails with ERR_PLAYBOOK_BUDGET.
 */
export const MAX_CHILD_RUNS = 50;
export const MAX_TREE_TASKS = 1_000;

/** Refuses a new sub-playbook run once the tree under `root` has spent its budget (`used`: RunStore.treeUse). */
export function checkBudget(root: { id: string }, used: { childRuns: number; tasks: number }): void {
  if (used.childRuns >= MAX_CHILD_RUNS || used.tasks >= MAX_TREE_TASKS)
    throw new BadParameterError(
      'ERR_PLAYBOOK_BUDGET',
      `run ${root.id} has started ${used.childRuns} sub-playbook runs and ${used.tasks} tasks; ` +
        `a run may start at most ${MAX_CHILD_RUNS} and ${MAX_TREE_TASKS}`,
    );
}

export function forbidden(playbook: string, task: string): AccessDeniedError {
  return new AccessDeniedError(
    'ERR_PLAYBOOK_FORBIDDEN',
    `playbook ${playbook} calls integrations or scripts (task ${task}); its starter needs integrations:run`,
  );
}

/** The run's status as the API shows it (`completed`, run-view.ts), so the message says what `show-run` does. */
export function stateError(run: PlaybookRun, id: string, what: string): ConflictError {
  const st = run.tasks[id]?.status ?? (run.current === id ? 'not started' : 'not current');
  return new ConflictError(
    'ERR_PLAYBOOK_TASK_STATE',
    `task ${id} of run ${run.id} is ${st} (run ${shownStatus(run.status)}); only a manual task waiting for an analyst or an ` +
      `interrupted task can be completed, and an interrupted or failed one retried, so it cannot be ${what}`,
    { field: 'task' },
  );
}

/** The run's inputs: declared ones only, required ones present, defaults filled in. */
export function checkInputs(p: Playbook, given: Record<string, unknown>): Record<string, unknown> {
  const declared = p.inputs ?? {};
  const unknown = Object.keys(given).find((k) => !Object.hasOwn(declared, k));
  if (unknown)
    throw new BadParameterError('ERR_PLAYBOOK_INPUTS', `inputs.${unknown}: ${p.name} declares no such input`, {
      field: `inputs.${unknown}`,
    });
  const out: Record<string, unknown> = {};
  for (const [name, d] of Object.entries(declared)) {
    if (Object.hasOwn(given, name)) out[name] = given[name];
    else if (d.default !== undefined) out[name] = d.default;
    else if (d.required)
      throw new BadParameterError('ERR_PLAYBOOK_INPUTS', `inputs.${name}: ${p.name} requires it`, {
        field: `inputs.${name}`,
      });
  }
  return out;
}

/**
 * The state of task `id`, the run's current one, for an analyst's complete-task or retry-task; else why not: 404
 * ERR_PLAYBOOK_TASK_NOT_FOUND for a task the run's playbook does not have, 409 ERR_PLAYBOOK_TASK_STATE otherwise.
 */
export function currentTask(run: PlaybookRun, id: string): PlaybookRun['tasks'][string] {
  const st = run.tasks[id];
  if (!Object.hasOwn(run.definition.tasks, id))
    throw new NotFoundError('ERR_PLAYBOOK_TASK_NOT_FOUND', `task: run ${run.id} has no task ${id}`, { field: 'task' });
  if (!st || run.current !== id) throw stateError(run, id, 'completed or retried');
  return st;
}
