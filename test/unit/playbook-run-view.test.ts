/**
 * A run as callers see it (agent/tenant/playbooks/run-view.ts): a stored `succeeded` is shown `completed`, other
 * statuses as they are; tasks, stored as a map by id, are a list in the order they started (`startedAt`, then the
 * order the record holds them), each with its id and `result` (its output, kept as `output` too); the playbook's
 * text is left out and the stored run is not changed.
 */
import { describe, expect, it } from 'vitest';
import { RUN_VIEW_MAX_BYTES, runView, shownStatus, taskList } from '../../agent/tenant/playbooks/run-view.js';
import type { RunState, TaskState } from '../../agent/tenant/playbooks/run-store.js';

const T0 = '2026-12-07T10:00:00.000Z';
const T1 = '2026-12-07T10:00:01.000Z';
const T2 = '2026-12-07T10:00:02.000Z';

describe('shownStatus', () => {
  it('shows succeeded as completed and the others as they are', () => {
    expect(shownStatus('succeeded')).toBe('completed');
    for (const s of ['running', 'waiting', 'interrupted', 'failed'] as const) expect(shownStatus(s)).toBe(s);
  });
});

describe('taskList', () => {
  it('lists tasks by startedAt, ties in the order the record holds them, with id and result', () => {
    const tasks: Record<string, TaskState> = {
      // A retried task keeps its place in the record but starts again later.
      retried: { status: 'done', startedAt: T2, endedAt: T2, output: { ok: true }, by: 'ann' },
      first: { status: 'done', startedAt: T0, endedAt: T0, output: 1 },
      sameMsA: { status: 'done', startedAt: T1, output: null },
      sameMsB: { status: 'failed', startedAt: T1, error: { code: 'ERR_X', message: 'no' } },
    };
    const list = taskList(tasks);
    expect(list.map((t) => t.id)).toEqual(['first', 'sameMsA', 'sameMsB', 'retried']);
    expect(list[0]).toEqual({ id: 'first', status: 'done', startedAt: T0, endedAt: T0, output: 1, result: 1 });
    expect(list[1]).toMatchObject({ result: null, output: null });
    expect(list[2]).toEqual({
      id: 'sameMsB',
      status: 'failed',
      startedAt: T1,
      error: { code: 'ERR_X', message: 'no' },
    });
    expect(list[3]).toMatchObject({ id: 'retried', by: 'ann', result: { ok: true } });
    expect(Object.keys(tasks)).toEqual(['retried', 'first', 'sameMsA', 'sameMsB']);
  });

  it('an empty map is an empty list', () => {
    expect(taskList({})).toEqual([]);
  });
});

describe('runView', () => {
  it('leaves out the playbook and shows status and tasks as callers see them, the stored run unchanged', () => {
    const run = {
      id: 'run_000000000001',
      playbook: { id: 'cnt_1', name: 'p', version: 1 },
      definition: { name: 'p', start: 'a', tasks: {} },
      incident: '1',
      inputs: {},
      context: { a: 1 },
      status: 'succeeded',
      current: null,
      tasks: { a: { status: 'done', startedAt: T0, output: 1 } },
      startedBy: 'ann',
      callers: [],
      created: T0,
      updated: T0,
      ended: T0,
    } as unknown as RunState;
    const shown = runView(run);
    expect(shown).not.toHaveProperty('definition');
    expect(shown).toMatchObject({ id: 'run_000000000001', status: 'completed', context: { a: 1 }, ended: T0 });
    expect(shown.tasks).toEqual([{ id: 'a', status: 'done', startedAt: T0, output: 1, result: 1 }]);
    expect(run.status).toBe('succeeded');
    expect(run.tasks).toEqual({ a: { status: 'done', startedAt: T0, output: 1 } });
  });

  it('leaves the largest values out of a run too big for the relay, names each, and changes nothing stored', () => {
    const big = (n: number) => ({ body: 'x'.repeat(n) });
    const run = {
      id: 'run_000000000002',
      playbook: { id: 'cnt_1', name: 'p', version: 1 },
      definition: { name: 'p', start: 'a', tasks: {} },
      incident: '1',
      inputs: { note: 'short' },
      context: { a: big(150_000), b: big(150_000), small: 1 },
      status: 'waiting',
      current: 'm',
      tasks: {
        a: { status: 'done', startedAt: T0, output: big(150_000) },
        b: { status: 'done', startedAt: T1, output: big(150_000) },
        c: { status: 'done', startedAt: T2, output: { ok: true } },
      },
      startedBy: 'ann',
      callers: [],
      created: T0,
      updated: T0,
    } as unknown as RunState;
    const whole = Buffer.byteLength(JSON.stringify(runView(run, Infinity)));
    expect(whole).toBeGreaterThan(RUN_VIEW_MAX_BYTES); // ~900 KB: each output three times (output, result, context)
    const shown = runView(run);
    expect(Buffer.byteLength(JSON.stringify(shown))).toBeLessThanOrEqual(RUN_VIEW_MAX_BYTES);
    const stub = { cut: true, bytes: 150_011 };
    const a = shown.tasks.find((t) => t.id === 'a')!;
    expect(a.output).toEqual(stub);
    expect(a.result).toEqual(stub);
    expect(shown.cut).toContainEqual({
      path: 'tasks[a].output',
      bytes: 150_011,
      read: '/api/v1/playbooks/runs/run_000000000002/tasks/a',
    });
    // What is small stays: a task's small output, a small context value, the inputs.
    expect(shown.tasks.find((t) => t.id === 'c')).toMatchObject({ output: { ok: true }, result: { ok: true } });
    expect(shown.context.small).toBe(1);
    expect(shown.inputs).toEqual({ note: 'short' });
    expect(run.tasks.a.output).toEqual(big(150_000));
    expect((run.context.a as { body: string }).body).toHaveLength(150_000);
    // A run of ordinary size has no `cut`.
    expect(runView({ ...run, context: {}, tasks: { c: run.tasks.c } } as RunState)).not.toHaveProperty('cut');
  });
});
