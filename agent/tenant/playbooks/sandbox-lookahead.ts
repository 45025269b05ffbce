/**
 * The runner's lookahead for script tasks: while an integration task of a run waits for its service, the isolate and
 * context of the script task that follows are made (script-sandbox.ts `sandboxAhead`), so the ~4 ms that making them
 * costs (an isolate ~2.7 ms, its context ~1 ms, on the 2-core development machine) overlap the wait instead of
 * following it. A script task of the run then takes what was made; a run that stops first drops it.
 *
 * Bounded so that it never costs another script its turn: made only with a slot free now and no one queued
 * (admitNow), and at most MAX_AHEAD at once in a tenant; a run holds one at most. A run holding one never waits
 * for a slot (its script uses the one it holds), so holders cannot block each other. Not the sandbox, nor the run's
 * durability: nothing of it is stored, and a tenant killed meanwhile loses only an unused isolate.
 */
import type { Playbook } from '#common/playbook.js';
import { SCRIPT_MAX_CONCURRENT } from '../scripts/script-admission.js';
import { dropSandbox, sandboxAhead, type SandboxAhead } from '../scripts/script-sandbox.js';

/** Isolates made ahead at once in a tenant: half the sandbox's slots, so scripts that run now keep the rest. */
export const MAX_AHEAD = SCRIPT_MAX_CONCURRENT / 2;

/**
 * Whether a script task comes after task `from` with only conditions and set-fields between (on any branch): those
 * take no time to speak of, so the isolate made during `from` is used soon. Another integration, manual task or
 * sub-playbook first: no (the isolate would be held through it).
 */
export function scriptFollows(playbook: Playbook, from: string): boolean {
  const seen = new Set<string>();
  const todo = [...nextOf(playbook, from)];
  while (todo.length > 0) {
    const id = todo.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const task = playbook.tasks[id];
    if (!task) continue;
    if (task.type === 'script') return true;
    if (task.type === 'condition' || task.type === 'set-field') todo.push(...nextOf(playbook, id));
  }
  return false;
}

function nextOf(playbook: Playbook, id: string): string[] {
  const task = playbook.tasks[id];
  if (!task) return [];
  if (task.type === 'condition') return [...task.branches.map((b) => b.next), ...(task.else ? [task.else] : [])];
  return task.next ? [task.next] : [];
}

export class SandboxLookahead {
  private readonly held = new Map<string, Promise<SandboxAhead | undefined>>();

  /**
   * Runs task `id` of `run` with `go`: a script task gets what was made ahead for it; while an integration task that a
   * script task follows waits, one is made.
   */
  step<T>(
    run: { id: string; definition: Playbook },
    id: string,
    go: (ahead?: Promise<SandboxAhead | undefined>) => Promise<T>,
  ): Promise<T> {
    const type = run.definition.tasks[id]?.type;
    const done = go(type === 'script' ? this.take(run.id) : undefined);
    if (type === 'integration' && scriptFollows(run.definition, id)) this.prepare(run.id);
    return done;
  }

  /**
   * Makes an isolate ahead for run `run` on the event loop's next turn: after the integration call that was just
   * started has sent its request, not before it.
   */
  prepare(run: string): void {
    if (this.held.has(run) || this.held.size >= MAX_AHEAD) return;
    this.held.set(
      run,
      new Promise<void>((r) => setImmediate(r)).then(() => sandboxAhead()),
    );
  }

  /** What was made ahead for `run` (once), or undefined: its script task then makes its own. */
  take(run: string): Promise<SandboxAhead | undefined> | undefined {
    const ahead = this.held.get(run);
    this.held.delete(run);
    return ahead;
  }

  /** The run stopped being driven: what it did not use is given back. */
  drop(run: string): void {
    const ahead = this.take(run);
    if (ahead) void ahead.then((a) => a && dropSandbox(a));
  }
}
