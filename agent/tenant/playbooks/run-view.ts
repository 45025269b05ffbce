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
export type RunView = Omit<RunState, 'definition' | 'status' | 'tasks'> & {
  status: ShownStatus;
  tasks: ShownTask[];
  /** Values left out of this answer to keep it within RUN_VIEW_MAX_BYTES (see fitted). */
  cut?: CutValue[];
};

/**
 * The most JSON a run's answer holds: main reaches a tenant through its host, which refuses a tenant's reply over
 * 768 KiB (agent/host/tenant-relay.ts); a run may keep up to 200 task outputs of 256 KiB each, shown twice (output
 * and result) and again in its context. Past this, the largest values are left out, each named in `cut`.
 */
export const RUN_VIEW_MAX_BYTES = 512 * 1024;

/** A value left out of a run's answer: where it was, its size, and for a task's output the path that answers it. */
export interface CutValue {
  path: string;
  bytes: number;
  /** `GET` this (under the tenant's API) for the task's whole output. */
  read?: string;
}

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
export function runView({ definition: _definition, ...r }: RunState, max = RUN_VIEW_MAX_BYTES): RunView {
  return fitted({ ...r, status: shownStatus(r.status), tasks: taskList(r.tasks) }, max);
}

const jsonBytes = (v: unknown) => Buffer.byteLength(JSON.stringify(v) ?? '');

/**
 * `v` within `max` bytes of JSON: the largest task outputs (output and result together), context values and inputs
 * are replaced by `{cut: true, bytes}` until it fits, each listed in `cut`. A run of ordinary size is returned as is.
 */
function fitted(v: RunView, max: number): RunView {
  let size = jsonBytes(v);
  if (size <= max) return v;
  const out: RunView = {
    ...v,
    tasks: v.tasks.map((t) => ({ ...t })),
    context: { ...v.context },
    inputs: { ...v.inputs },
  };
  const cut: CutValue[] = [];
  const stub = (bytes: number) => ({ cut: true, bytes });
  const candidates = [
    ...out.tasks.map((t) => ({
      bytes: 2 * jsonBytes(t.output),
      drop: (bytes: number) => {
        t.output = stub(bytes / 2);
        if (t.result !== undefined) t.result = t.output;
        cut.push({
          path: `tasks[${t.id}].output`,
          bytes: bytes / 2,
          read: `/api/v1/playbooks/runs/${v.id}/tasks/${t.id}`,
        });
      },
    })),
    ...Object.keys(out.context).map((k) => ({
      bytes: jsonBytes(out.context[k]),
      drop: (bytes: number) => {
        out.context[k] = stub(bytes);
        cut.push({ path: `context.${k}`, bytes });
      },
    })),
    ...Object.keys(out.inputs).map((k) => ({
      bytes: jsonBytes(out.inputs[k]),
      drop: (bytes: number) => {
        out.inputs[k] = stub(bytes);
        cut.push({ path: `inputs.${k}`, bytes });
      },
    })),
  ].sort((a, b) => b.bytes - a.bytes);
  for (const c of candidates) {
    if (size <= max || c.bytes < 64) break;
    c.drop(c.bytes);
    size -= c.bytes;
  }
  out.cut = cut;
  return out;
}
