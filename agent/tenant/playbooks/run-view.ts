/**
 * A playbook run as callers see it (docs/playbooks.md#rest): the store keeps `succeeded` and tasks as a map by id
 * (run-store.ts); a caller gets status `completed` for it (the others as they are) and `tasks` as a list
 * `[{id, status, result?, error?, …}]` in the order the tasks started, `result` being the task's output (kept as
 * `output` too). Used by every answer that shows a run: the run API (playbook-routes.ts) and a test's
 * (playbook-test.ts). Timeline kinds (`run.succeeded`) are not views and stay.
 */
import type { RunState, RunStatus, TaskState } from './run-store.js';

export type ShownStatus = Exclude<RunStatus, 'succeeded'> | 'completed';
export type ShownTask = TaskState & { id: string; result?: unknown };
export type RunView = Omit<RunState, 'definition' | 'status' | 'tasks'> & { status: ShownStatus; tasks: ShownTask[] };

export const shownStatus = (s: RunStatus): ShownStatus => (s === 'succeeded' ? 'completed' : s);

/**
 * A run's tasks as a list, in the order they started: by `startedAt`, and within one millisecond in the order the
 * record holds them, which is the order the runner first started them (a playbook's order of tasks need not be the
 * order they run in: a condition's branch may be written first). A stable sort, so one started again later (a retry)
 * moves by its new `startedAt`.
 */
export function taskList(tasks: Record<string, TaskState>): ShownTask[] {
  return Object.entries(tasks)
    .map(([id, t]) => ({ id, ...t, ...(t.output !== undefined ? { result: t.output } : {}) }))
    .sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : 0));
}

/** A run as the API shows it: everything but the playbook's text (which the content API shows), in the shown shape. */
export function runView({ definition: _definition, ...r }: RunState): RunView {
  return { ...r, status: shownStatus(r.status), tasks: taskList(r.tasks) };
}
