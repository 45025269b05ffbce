/**
 * The checks a playbook run makes of what it is asked, and the errors it answers with: the inputs a run is given
 * against those its playbook declares, a starter without integrations:run, a task not in a state to be completed or
 * retried. Pure (no store); the runner (playbook-runner.ts) calls them.
 */
import { AccessDeniedError, BadParameterError, ConflictError } from '#common/errors.js';
import type { Playbook } from '#common/playbook.js';
import type { PlaybookRun } from './run-store.js';

export function forbidden(playbook: string, task: string): AccessDeniedError {
  return new AccessDeniedError(
    'ERR_PLAYBOOK_FORBIDDEN',
    `playbook ${playbook} calls integrations or scripts (task ${task}); its starter needs integrations:run`,
  );
}

export function stateError(run: PlaybookRun, id: string, what: string): ConflictError {
  const st = run.tasks[id]?.status ?? (run.current === id ? 'not started' : 'not current');
  return new ConflictError(
    'ERR_PLAYBOOK_TASK_STATE',
    `task ${id} of run ${run.id} is ${st} (run ${run.status}); only a manual task waiting for an analyst or an ` +
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
