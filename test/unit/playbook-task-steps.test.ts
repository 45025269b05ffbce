/**
 * Task steps (agent/tenant/playbooks/task-steps.ts) with the integration runner and the audit log faked (seams we
 * own). A set-field task's change is computed from the run's scope and applied to the incident as stored when the
 * runner writes the task's `done`, so only its one field changes (a PATCH made since the task started stays) and a
 * closed incident is refused rather than reopened. An integration task's call is audited with the run as actor (in
 * the batch of the task's `done` when the audit log gives ops), and an output over MAX_TASK_OUTPUT_BYTES fails the
 * task. No I/O.
 */
import { describe, expect, it } from 'vitest';
import type { SetFieldTask } from '#common/playbook.js';
import { MAX_TASK_OUTPUT_BYTES, runStep, type StepDeps } from '../../agent/tenant/playbooks/task-steps.js';
import type { Incident } from '../../agent/tenant/store.js';

const read: Incident = {
  id: '7',
  name: 'phish',
  type: 'phish',
  severity: 2,
  details: '',
  status: 'open',
  created: '2026-12-01T00:00:00.000Z',
  updated: '2026-12-01T00:00:00.000Z',
  labels: { team: 'blue' },
};
const scope = { incident: read as unknown as Record<string, unknown>, context: {}, inputs: { sev: 4 } };
const NO_DEPS = {} as StepDeps; // a set-field step calls nothing

async function change(task: SetFieldTask) {
  const done = await runStep('mark', task, scope, NO_DEPS);
  return done.change!;
}

describe('set-field', () => {
  it('changes only its field, on the incident as stored now: a change made since the task started stays', async () => {
    const apply = await change({ type: 'set-field', field: 'severity', value: '${inputs.sev}' });
    const patched: Incident = { ...read, name: 'renamed meanwhile', labels: { team: 'red' } };
    expect(apply(patched)).toMatchObject({ name: 'renamed meanwhile', labels: { team: 'red' }, severity: 4 });
    const label = await change({ type: 'set-field', field: 'labels.triage', value: 'done' });
    expect(apply(patched).labels).toEqual({ team: 'red' });
    expect(label(patched).labels).toEqual({ team: 'red', triage: 'done' });
  });

  it('refuses an incident closed since the task read it open, and never reopens one', async () => {
    const closed: Incident = { ...read, status: 'closed', closed: '2026-12-02T00:00:00.000Z' };
    const severity = await change({ type: 'set-field', field: 'severity', value: 4 });
    expect(() => severity(closed)).toThrow(expect.objectContaining({ code: 'ERR_INCIDENT_CLOSED' }));
    const reopen = await change({ type: 'set-field', field: 'status', value: 'open' });
    expect(() => reopen(closed)).toThrow(expect.objectContaining({ code: 'ERR_INCIDENT_CLOSED' }));
    const close = await change({ type: 'set-field', field: 'status', value: 'closed' });
    expect(close(closed)).toMatchObject({ status: 'closed', closed: '2026-12-02T00:00:00.000Z' });
  });
});

describe('integration tasks', () => {
  const task = { type: 'integration', instance: 'web', command: 'get', args: { path: '/${inputs.sev}' } } as const;
  const depsAnswering = (result: unknown) => {
    const lines: Record<string, unknown>[] = [];
    const deps = {
      integrations: { run: async () => ({ result, durationMs: 3 }) },
      audit: { record: async (l: Record<string, unknown>) => void lines.push(l) },
    } as unknown as StepDeps;
    return { deps, lines };
  };

  it('audits the call as integration.run by the run, with the command and its arguments', async () => {
    const { deps, lines } = depsAnswering({ ok: true });
    const done = await runStep('lookup', task, scope, deps, 'run_000000000042');
    expect(done.output).toEqual({ ok: true });
    expect(lines).toEqual([
      expect.objectContaining({
        actor: 'playbook run run_000000000042',
        action: 'integration.run',
        target: 'web',
        outcome: 'ok',
        detail: expect.objectContaining({ command: 'get', args: { path: '/4' } }),
      }),
    ]);
  });

  it("puts the line of a call that answered in the batch of its task's done, and writes a refused one at once", async () => {
    const batched = (result: unknown) => {
      const { deps, lines } = depsAnswering(result);
      const ops: unknown[] = [];
      deps.audit.entryOps = (e) => (ops.push(e), [{ type: 'put', sublevel: {} as never, key: 'k', value: e }]) as never;
      return { deps, lines, ops };
    };
    const ok = batched({ ok: true });
    const done = await runStep('lookup', task, scope, ok.deps, 'run_000000000042');
    expect(ok.lines).toEqual([]);
    expect(done.ops).toEqual([
      expect.objectContaining({ value: expect.objectContaining({ action: 'integration.run', outcome: 'ok' }) }),
    ]);
    // An answer too large fails the task, so no `done` carries its line: it is written at once.
    const big = batched({ body: 'x'.repeat(MAX_TASK_OUTPUT_BYTES) });
    await expect(runStep('lookup', task, scope, big.deps, 'run_000000000042')).rejects.toThrow();
    expect(big.ops).toEqual([]);
    expect(big.lines).toEqual([expect.objectContaining({ action: 'integration.run', outcome: 'ok' })]);
  });

  it(`fails the task when the output is over ${MAX_TASK_OUTPUT_BYTES} bytes of JSON`, async () => {
    const { deps } = depsAnswering({ body: 'x'.repeat(MAX_TASK_OUTPUT_BYTES) });
    await expect(runStep('lookup', task, scope, deps, 'run_000000000042')).rejects.toMatchObject({
      code: 'ERR_PLAYBOOK_OUTPUT_TOO_LARGE',
    });
    const { deps: small } = depsAnswering({ body: 'x'.repeat(MAX_TASK_OUTPUT_BYTES - 100) });
    await expect(runStep('lookup', task, scope, small, 'run_000000000042')).resolves.toBeTruthy();
  });
});
