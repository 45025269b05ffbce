/**
 * The tenant's playbook runner (docs/playbooks.md): starts runs, drives each through its tasks, and resumes the
 * runs not finished when the tenant starts. The durability rule, which this module keeps:
 * - a task that may act outside the batch marking it done (integration, script) is marked `running` in the store
 *   before it starts: in the batch of the previous task's `done` (or of the run's start) when it follows one, else a
 *   put of its own. A task is marked `done` with its output, the context change, the incident change (set-field) and
 *   its timeline entry in one batch after; so a task marked done never runs again, and the timeline tells exactly
 *   what happened. A condition or set-field task changes nothing before that batch, so it is not marked `running`
 *   in the store (one found unmarked at start simply runs). The `done` of a task that changes no incident rides with
 *   the next batch (`unsaved`) when the next task is a condition or set-field (no act outside its batch): a crash
 *   between reruns a condition, or finds an acting task `running` (the next rule), as had the process died a moment
 *   sooner; a failed write hands them to the failure's batch, a run no longer driven writes them. The last task's
 *   `done` ends the run in its batch (a five-task run writes 3 batches, not 12). A task marked in the previous batch
 *   may not have started when the process died: the next rule treats it as under way all the same (the safe side);
 * - a task found `running` when the tenant starts (the process died during it) runs again only if that is safe
 *   (task-steps.ts safeToRerun: condition, set-field, a read-only integration command); otherwise the run stops
 *   as `interrupted` on it, and an analyst resumes it: `complete-task` (its data taken as the task's output: "it
 *   was done") or `retry-task` (run it again);
 * - a manual task waits (`waiting`) until `complete-task`; a playbook task waits for the run it started, whose
 *   end updates its parent in the same batch.
 * A run being driven is carried in memory from task to task (the store stays the truth for resume and every other
 * change, which re-reads it); playbooks are parsed once per item and version (`parsed`).
 * One run's changes are serialised; runs are independent. A run acts with integrations:run and incidents:write
 * whoever starts it, so a run of a playbook with integration or script tasks needs its starter to hold
 * integrations:run (403 ERR_PLAYBOOK_FORBIDDEN at start; a sub-playbook's such task fails on it), shared or local
 * alike: a shared playbook is no less able to call an integration. A manual task's prompt goes on the timeline as
 * written (its `${…}` may name task outputs, which incidents:read must not show); the run keeps it interpolated.
 * Not the task kinds (task-steps.ts) nor HTTP (routes).
 */
import type { Logger } from 'pino';
import { BadParameterError, NotFoundError, isPalisadeError } from '#common/errors.js';
import type { Playbook, PlaybookTask, SubPlaybookTask } from '#common/playbook.js';
import type { TenantPermission } from '#common/roles.js';
import type { ContentStore, TenantContentItem } from '../content-store.js';
import type { BatchOp, IncidentTimeline } from '../incident-timeline.js';
import { TenantStore } from '../store.js';
import { interpolate, mentionsIncident, type Scope } from './playbook-values.js';
import type { PlaybookRun, RunRecords } from './run-store.js';
import { checkBudget, checkInputs, currentTask, forbidden, stateError } from './run-checks.js';
import { ParsedPlaybooks } from './parsed-playbooks.js';
import { RunChains } from './run-chains.js';
import { runStep, safeToRerun, type StepDeps, type StepDone } from './task-steps.js';
import { SandboxLookahead } from './sandbox-lookahead.js';

/**
 * How long a stopping tenant lets the tasks under way finish: long enough for most integration calls, so a
 * deliberate stop seldom interrupts a run; shorter than the host's wait before it kills a stopping tenant.
 */
const CLOSE_GRACE_MS = 5_000;
/** Sub-playbooks nest at most this deep: enough for composition, short of runaway recursion through names. */
export const MAX_PLAYBOOK_DEPTH = 5;
const BY_RUN = 'playbook';
/** How often ended runs past retention are deleted (run-store.ts KEEP_RUNS): retention is in days, so hourly. */
const PRUNE_INTERVAL_MS = 3_600_000;

/** The automation rule starting a run, and what it stores with the run (given the run, for its id). */
export interface RuleStart {
  id: string;
  name: string;
  ops(run: PlaybookRun): BatchOp[];
}

export interface RunnerDeps extends StepDeps {
  runs: RunRecords;
  timeline: Pick<IncidentTimeline, 'entryOps'>;
  content: ContentStore;
  log: Logger;
}

const now = () => new Date().toISOString();
const errorOf = (e: unknown) =>
  isPalisadeError(e) ? { code: e.code, message: e.message } : { code: 'ERR_INTERNAL', message: String(e) };

export class PlaybookRunner {
  private readonly chains = new RunChains();
  /** Batch ops of a run's condition tasks not written yet: the run's next save writes them (see the header). */
  private readonly unsaved = new Map<string, BatchOp[]>();
  private readonly parsed = new ParsedPlaybooks();
  private closed = false;
  private pruneTimer?: NodeJS.Timeout;
  /** Runs stopThen holds: driving them stops after the task under way. */
  private readonly purging = new Set<string>();
  /** Isolates made for a run's coming script task while its integration task waits (sandbox-lookahead.ts). */
  private readonly lookahead = new SandboxLookahead();

  constructor(private readonly d: RunnerDeps) {}

  /** The playbook item `ref` names: its content id, else its name (a shared one first, see content-store.ts). */
  async resolve(ref: string): Promise<{ item: TenantContentItem; playbook: Playbook }> {
    const byId = await this.d.content.get(ref).catch(() => undefined);
    const named = byId?.type === 'playbook' ? [byId] : await this.d.content.named('playbook', ref);
    if (named.length === 0)
      throw new NotFoundError('ERR_PLAYBOOK_NOT_FOUND', `no playbook "${ref}" in this tenant`, { field: 'playbook' });
    if (named.length > 1)
      throw new BadParameterError(
        'ERR_PLAYBOOK_AMBIGUOUS',
        `playbook: ${named.length} playbooks are named "${ref}" (${named.map((i) => i.id).join(', ')}); give the id`,
        { field: 'playbook' },
      );
    return { item: named[0], playbook: this.parsed.of(named[0]) };
  }

  /**
   * Starts a run of `ref` on `incident` for a starter holding `permissions`; answers once stored, drives it after. A
   * run a rule starts names the rule (as starter, on the timeline); the batch storing the run also holds `rule.ops`
   * (the rule's bookkeeping) and `also` (the start request's id for the replay cache, and its audit line; given the
   * run, for its id).
   */
  async start(
    ref: string,
    incident: string,
    inputs: Record<string, unknown>,
    by: string,
    permissions: ReadonlySet<TenantPermission>,
    rule?: RuleStart,
    also?: (run: PlaybookRun) => BatchOp[],
  ): Promise<PlaybookRun> {
    const { item, playbook } = await this.resolve(ref);
    return this.startItem(item, playbook, incident, inputs, by, permissions, rule, also);
  }

  /** Starts a run of `playbook` (the body of `item`, already checked); `start` without the lookup by reference. */
  async startItem(
    item: TenantContentItem,
    playbook: Playbook,
    incident: string,
    inputs: Record<string, unknown>,
    by: string,
    permissions: ReadonlySet<TenantPermission>,
    rule?: RuleStart,
    also?: (run: PlaybookRun) => BatchOp[],
  ): Promise<PlaybookRun> {
    const mayIntegrate = permissions.has('integrations:run');
    const acting = Object.entries(playbook.tasks).find(([, t]) => t.type === 'integration' || t.type === 'script');
    if (acting && !mayIntegrate) throw forbidden(item.name, acting[0]);
    const { site } = await this.d.store.getIncident(incident);
    const starter = rule ? `rule ${rule.name}` : by;
    const run = this.newRun(item, playbook, incident, checkInputs(playbook, inputs), starter, []);
    if (site) run.site = site;
    run.starterMayIntegrate = mayIntegrate;
    if (rule) run.rule = { id: rule.id, name: rule.name };
    const text = `${starter} started playbook ${item.name} (run ${run.id})`;
    this.markAhead(run, playbook.start);
    await this.d.runs.write([
      ...this.d.runs.putOps(run, true),
      ...(await this.entry(run, starter, 'run.started', text)),
      ...(rule?.ops(run) ?? []),
      ...(also?.(run) ?? []),
    ]);
    // The caller gets the run as stored; the driver changes its own copy from here.
    const shown = { ...run, tasks: { ...run.tasks } };
    this.kick(run.id, run);
    return shown;
  }

  /** Marks task `id` running in `run`'s next write if it may act (the durability rule in the header). */
  private markAhead(run: PlaybookRun, id: string | null): void {
    const task = id === null ? undefined : run.definition.tasks[id];
    if (!task || (task.type !== 'integration' && task.type !== 'script') || run.starterMayIntegrate === false) return;
    run.tasks[id!] = { status: 'running', startedAt: now() };
  }

  private newRun(
    item: TenantContentItem,
    playbook: Playbook,
    incident: string,
    inputs: Record<string, unknown>,
    by: string,
    callers: string[],
  ): PlaybookRun {
    const at = now();
    return {
      id: this.d.runs.newId(),
      playbook: { id: item.id, name: item.name, version: item.version },
      definition: playbook,
      incident,
      inputs,
      context: {},
      status: 'running',
      current: playbook.start,
      tasks: {},
      startedBy: by,
      created: at,
      updated: at,
      callers,
    };
  }

  private entry(run: PlaybookRun, by: string, kind: string, text: string, task?: string): Promise<BatchOp[]> {
    const data = {
      run: run.id,
      playbook: run.playbook.name,
      ...(task ? { task } : {}),
      status: run.status,
      ...(run.rule ? { rule: run.rule.id } : {}),
    };
    return this.d.timeline.entryOps(run.incident, { by, kind, text, data });
  }

  /**
   * Drives the run in the background; its failures are the run's state, and anything else is logged. `live`: the run
   * as just stored, which only this driver changes from now on (else it is read from the store); its first task starts
   * on the event loop's next turn, so the start's answer is sent first (with nothing to read, a task would run on).
   */
  private kick(id: string, live?: PlaybookRun): void {
    const turn = () => new Promise<void>((r) => setImmediate(r));
    this.chains
      .serial(id, async () => (live ? turn().then(() => this.drive(id, live)) : this.drive(id)))
      .finally(() => this.lookahead.drop(id)) // what the run made ahead and did not use
      .catch((e: unknown) => this.d.log.error({ err: e, run: id }, 'playbook run stopped by an unexpected error'));
  }

  private async drive(id: string, live?: PlaybookRun): Promise<void> {
    // Every change to this run is serialised behind this drive, so the copy in memory stays the stored one.
    const run = live ?? (await this.d.runs.get(id));
    while (!this.closed && !this.purging.has(id)) {
      if (run.status !== 'running') return;
      if (run.current === null) return this.end(run, 'succeeded');
      if (!(await this.step(run, run.current))) return;
    }
    if (this.unsaved.has(id)) await this.save(run); // stopped before the batch that would have carried them
  }

  /** Runs one task; false when the run stops here (waits, fails or ended). */
  private async step(run: PlaybookRun, id: string): Promise<boolean> {
    const task = run.definition.tasks[id];
    if (task.type === 'manual') return this.wait(run, id, task.prompt);
    if (task.type === 'playbook') return this.startChild(run, id, task);
    const acts = task.type === 'integration' || task.type === 'script';
    if (acts && run.starterMayIntegrate === false) return this.fail(run, id, forbidden(run.playbook.name, id));
    if (run.tasks[id]?.status !== 'running') {
      // Not marked in the previous batch: one that may act is marked now, alone; a pure task needs no mark.
      run.tasks[id] = { status: 'running', startedAt: now() };
      if (acts) await this.save(run);
    }
    try {
      const scope = await this.scope(run, task);
      const done = await this.lookahead.step(run, id, (ahead) => runStep(id, task, scope, this.d, run.id, ahead));
      await this.markDone(run, id, done, BY_RUN, [], true);
    } catch (e) {
      // `run` is as before this task (markDone changes it only once written), so the failure is stored with it.
      return this.fail(run, id, e);
    }
    return true;
  }

  /** A manual task: the run waits; the timeline shows the prompt as written (see the header). */
  private async wait(run: PlaybookRun, id: string, prompt: string): Promise<false> {
    try {
      const shown = String(interpolate(prompt, await this.scope(run)));
      run.tasks[id] = { status: 'waiting', startedAt: now(), prompt: shown };
      run.status = 'waiting';
      await this.save(run, await this.entry(run, BY_RUN, 'task.waiting', `${id} waits for an analyst: ${prompt}`, id));
    } catch (e) {
      return this.fail(await this.d.runs.get(run.id), id, e);
    }
    return false;
  }

  /**
   * The run's values for `task`: the incident as stored now, or only its id and site (the run's, which also picks an
   * integration task's connection) when the task names nothing else of it.
   */
  private async scope(run: PlaybookRun, task?: PlaybookTask): Promise<Scope> {
    const incident =
      task && !mentionsIncident(task)
        ? { id: run.incident, ...(run.site ? { site: run.site } : {}) }
        : await this.d.store.getIncident(run.incident);
    return { incident: incident as unknown as Record<string, unknown>, context: run.context, inputs: run.inputs };
  }

  /** Stores the run with `more`, and what its tasks left unsaved, in one batch (unsaved again if it fails). */
  private async save(run: PlaybookRun, more: BatchOp[] = []): Promise<void> {
    run.updated = now();
    const carried = this.unsaved.get(run.id) ?? [];
    this.unsaved.delete(run.id);
    await this.d.runs.write([...this.d.runs.putOps(run), ...carried, ...more]).catch((e: unknown) => {
      this.unsaved.set(run.id, [...carried, ...(this.unsaved.get(run.id) ?? [])]);
      throw e;
    });
  }

  /**
   * The task's `done`, its output in the context, the incident's change and the timeline entry: one batch. A
   * set-field's change applies to the incident as stored now, so a change made since the task started stays.
   * `run` changes only once that is written. `ahead` (the driver's own step): the batch also marks the next task
   * running or ends the run, and a task that changes no incident, followed by a pure one, is left unsaved (the header).
   */
  private async markDone(
    run: PlaybookRun,
    id: string,
    done: StepDone,
    by: string,
    more: BatchOp[] = [],
    ahead = false,
  ) {
    const task = run.definition.tasks[id];
    const next: PlaybookRun = { ...run, tasks: { ...run.tasks }, context: { ...run.context } };
    next.tasks[id] = {
      ...run.tasks[id],
      status: 'done',
      endedAt: now(),
      output: done.output,
      ...(by !== BY_RUN ? { by } : {}),
    };
    if ('output' in task && task.output) next.context[task.output] = done.output;
    next.current = done.next;
    next.status = 'running';
    const ops = [...(await this.entry(next, by, 'task.done', `${id}: ${done.text}`, id)), ...(done.ops ?? [])];
    if (done.change)
      ops.push({
        type: 'put',
        sublevel: this.d.store.incidents as never,
        key: TenantStore.key(run.incident),
        value: done.change(await this.d.store.getIncident(run.incident)),
      });
    if (ahead && done.next === null && !run.parent) {
      next.status = 'succeeded';
      next.ended = now();
      ops.push(...(await this.entry(next, BY_RUN, 'run.succeeded', `playbook ${run.playbook.name} succeeded`)));
    } else if (ahead) this.markAhead(next, done.next);
    const then = done.next === null ? undefined : run.definition.tasks[done.next];
    // A set-field's change must be stored before the next task reads the incident; the other kinds change none.
    if (
      ahead &&
      task.type !== 'set-field' &&
      !done.change &&
      (then?.type === 'condition' || then?.type === 'set-field')
    ) {
      this.unsaved.set(run.id, [...(this.unsaved.get(run.id) ?? []), ...ops, ...more]);
      next.updated = now();
    } else await this.save(next, [...ops, ...more]);
    Object.assign(run, next);
  }

  private async fail(run: PlaybookRun, id: string, e: unknown): Promise<false> {
    const error = errorOf(e);
    run.tasks[id] = {
      ...run.tasks[id],
      status: 'failed',
      startedAt: run.tasks[id]?.startedAt ?? now(),
      endedAt: now(),
      error,
    };
    run.error = { task: id, ...error };
    return this.end(run, 'failed').then(() => false);
  }

  /**
   * Ends a run. A sub-playbook's end finishes its parent's task, or fails it and so the parent run (and so on up),
   * all in one batch with `more`.
   */
  private async end(run: PlaybookRun, status: 'succeeded' | 'failed', more: BatchOp[] = []): Promise<void> {
    run.status = status;
    run.ended = now();
    if (status === 'succeeded') run.current = null;
    const why = run.error ? `: ${run.error.task} failed: ${run.error.message} (${run.error.code})` : '';
    const ops = [
      ...more,
      ...(await this.entry(run, BY_RUN, `run.${status}`, `playbook ${run.playbook.name} ${status}${why}`)),
    ];
    if (!run.parent) return this.save(run, ops);
    this.chains.follow(run.parent.run);
    run.updated = now();
    const carried = [...this.d.runs.putOps(run), ...(this.unsaved.get(run.id) ?? []), ...ops];
    this.unsaved.delete(run.id);
    const parent = await this.d.runs.get(run.parent.run);
    const task = run.parent.task;
    if (status === 'succeeded') {
      const next = (parent.definition.tasks[task] as SubPlaybookTask).next ?? null;
      const text = `sub-playbook ${run.playbook.name} (run ${run.id}) succeeded`;
      await this.markDone(parent, task, { output: run.context, next, text }, BY_RUN, carried);
      return this.kick(parent.id);
    }
    const error = { code: run.error!.code, message: `sub-playbook run ${run.id}: ${run.error!.message}` };
    parent.tasks[task] = { ...parent.tasks[task], status: 'failed', endedAt: now(), error };
    parent.error = { task, ...error };
    return this.end(parent, 'failed', carried);
  }

  /** A playbook task: a child run, stored with the parent's `waiting` in one batch, then driven on its own. */
  private async startChild(run: PlaybookRun, id: string, task: SubPlaybookTask): Promise<boolean> {
    let child: PlaybookRun;
    try {
      const { item, playbook } = await this.resolve(task.playbook);
      const callers = [...run.callers, run.playbook.id];
      if (callers.includes(item.id))
        throw new BadParameterError('ERR_PLAYBOOK_DEPTH', `${item.name} is already running above this task`);
      if (callers.length >= MAX_PLAYBOOK_DEPTH)
        throw new BadParameterError('ERR_PLAYBOOK_DEPTH', `sub-playbooks nest at most ${MAX_PLAYBOOK_DEPTH} deep`);
      const root = run.root ? await this.d.runs.get(run.root) : run;
      checkBudget(root, await this.d.runs.treeUse(root));
      const inputs = interpolate(task.inputs ?? {}, await this.scope(run)) as Record<string, unknown>;
      child = this.newRun(item, playbook, run.incident, checkInputs(playbook, inputs), run.startedBy, callers);
      if (run.starterMayIntegrate !== undefined) child.starterMayIntegrate = run.starterMayIntegrate;
      if (run.site) child.site = run.site;
      child.root = root.id;
    } catch (e) {
      return this.fail(run, id, e);
    }
    child.parent = { run: run.id, task: id };
    run.tasks[id] = { status: 'waiting', startedAt: now(), childRun: child.id };
    run.status = 'waiting';
    const text = `${id} runs sub-playbook ${child.playbook.name} (run ${child.id})`;
    this.markAhead(child, child.current);
    await this.save(run, [
      ...this.d.runs.putOps(child, true),
      ...(await this.entry(run, BY_RUN, 'task.waiting', text, id)),
    ]);
    this.chains.follow(run.id, child.id);
    this.kick(child.id, child);
    return false;
  }

  /** An analyst finishes a manual task, or an interrupted one ("it was done"): `data` is its output. */
  async complete(runId: string, id: string, data: unknown, by: string): Promise<PlaybookRun> {
    const run = await this.chains.serial(runId, async () => {
      const run = await this.d.runs.get(runId);
      const st = currentTask(run, id);
      const task = run.definition.tasks[id];
      const manual = st.status === 'waiting' && task.type === 'manual';
      if (!manual && st.status !== 'interrupted') throw stateError(run, id, 'completed');
      const next = task.type === 'condition' ? null : (task.next ?? null);
      await this.markDone(run, id, { output: data, next, text: `completed by ${by}` }, by);
      return run;
    });
    this.kick(runId);
    return run;
  }

  /** Runs an interrupted task again, or a failed one of a run that is no sub-playbook's (its parent has ended). */
  async retry(runId: string, id: string, by: string): Promise<PlaybookRun> {
    const run = await this.chains.serial(runId, async () => {
      const run = await this.d.runs.get(runId);
      const st = currentTask(run, id);
      if (st.status !== 'interrupted' && !(st.status === 'failed' && !run.parent)) throw stateError(run, id, 'retried');
      delete run.tasks[id];
      delete run.error;
      delete run.ended;
      run.status = 'running';
      await this.save(run, await this.entry(run, by, 'task.retry', `${id}: retried by ${by}`, id));
      return run;
    });
    this.kick(runId);
    return run;
  }

  /** At tenant start: every run not finished goes on, by the rule in the header; ended runs are pruned hourly. */
  async resume(): Promise<void> {
    await this.prune();
    this.pruneTimer = setInterval(() => void this.prune(), PRUNE_INTERVAL_MS).unref();
    for (const run of await this.d.runs.unfinished()) {
      if (run.status !== 'running' || run.current === null) {
        if (run.status === 'running') this.kick(run.id);
        continue;
      }
      const id = run.current;
      if (run.tasks[id]?.status === 'running')
        await this.chains.serial(run.id, () => this.recover(run, id, run.definition.tasks[id]));
      this.kick(run.id);
    }
  }

  private async prune(): Promise<void> {
    try {
      const pruned = await this.d.runs.prune(Date.now());
      if (pruned > 0) this.d.log.info({ pruned }, 'ended playbook runs past retention deleted');
    } catch (e) {
      this.d.log.warn({ err: String(e) }, 'playbook run pruning failed'); // the next hour tries again
    }
  }

  private async recover(run: PlaybookRun, id: string, task: PlaybookTask): Promise<void> {
    if (await safeToRerun(task, this.d)) {
      delete run.tasks[id];
      const text = `${id} was running when the tenant stopped; it only reads, so it runs again`;
      return this.save(run, await this.entry(run, BY_RUN, 'task.rerun', text, id));
    }
    run.tasks[id] = { ...run.tasks[id], status: 'interrupted' };
    run.status = 'interrupted';
    const text = `${id} was running when the tenant stopped and may have acted; complete-task or retry-task resumes it`;
    this.d.log.warn({ run: run.id, task: id }, 'playbook run interrupted');
    await this.save(run, await this.entry(run, BY_RUN, 'task.interrupted', text, id));
  }

  /** Stops driving run `id` after its task under way, then runs `fn` in its order (a site's data removed). */
  async stopThen<T>(id: string, fn: () => Promise<T>): Promise<T> {
    this.purging.add(id);
    this.chains.follow(id);
    return this.chains.serial(id, fn).finally(() => this.purging.delete(id));
  }

  /** Resolves once run `id` is not being driven, or after `ms`: a start's or a read's `?wait=` (RunChains.atRest). */
  readonly settled = (id: string, ms: number): Promise<void> => this.chains.atRest(id, ms);

  /** Resolves once no run is being driven: every run has ended or waits (on an analyst, or after close). */
  idle(): Promise<void> {
    return this.chains.idle();
  }

  /** Stops starting tasks and lets those under way end for a while; one still going is found `running` at start. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.pruneTimer);
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise((r) => (timer = setTimeout(r, CLOSE_GRACE_MS)));
    await Promise.race([this.chains.current(), grace]);
    clearTimeout(timer);
  }
}
