/**
 * Playbook runs as the tenant's LevelDB keeps them (sublevel `playbook-runs`): one record per run holding the run's
 * context and each task's state, so one put of the record changes a task's state and the context together; the
 * playbook as it was when the run started is stored once, with the run's start (sublevel `playbook-run-definitions`),
 * not again with each of the record's puts (one per task). Runs stored before that hold it in their record, which
 * then keeps being read as it is, and their next put stores it apart. Ids are sequence numbers (`run_000000000042`),
 * so key order is start order; a sublevel indexes runs by incident, another holds the ids of runs not ended (what a
 * tenant resumes at start, without reading every run it ever had). Not what the states mean (playbook-runner.ts).
 */
import type { Level } from 'level';
import { NotFoundError } from '#common/errors.js';
import type { Playbook } from '#common/playbook.js';
import { TenantStore, pointRead, type Sub } from '../store.js';
import type { BatchOp } from '../incident-timeline.js';
import { groupWriter } from '../group-writer.js';

export type RunStatus = 'running' | 'waiting' | 'interrupted' | 'succeeded' | 'failed';
export type TaskStatus = 'running' | 'waiting' | 'interrupted' | 'done' | 'failed';

export interface TaskState {
  status: TaskStatus;
  startedAt: string;
  endedAt?: string;
  /** The task's result (an integration's, a manual task's data, a sub-playbook's context). */
  output?: unknown;
  error?: { code: string; message: string };
  /** Who completed or retried it, for a task an analyst finished. */
  by?: string;
  /** For a playbook task: the run it started. */
  childRun?: string;
  /** For a manual task: its prompt with the run's values in it (shown to playbooks:read, not on the timeline). */
  prompt?: string;
}

export interface PlaybookRun {
  id: string;
  playbook: { id: string; name: string; version: number };
  definition: Playbook;
  incident: string;
  /** The incident's site when the run started (docs/sites.md): the run goes with the site's data. */
  site?: string;
  inputs: Record<string, unknown>;
  context: Record<string, unknown>;
  status: RunStatus;
  /** The task to run next, or the one running or waiting; null once the run has ended. */
  current: string | null;
  tasks: Record<string, TaskState>;
  startedBy: string;
  /** For a run an automation rule started: the rule (its content id and name). */
  rule?: { id: string; name: string };
  /**
   * Whether the starter held integrations:run: without it the run's integration and script tasks fail
   * (ERR_PLAYBOOK_FORBIDDEN), sub-playbooks' included. Absent in runs stored before the check: they were allowed.
   */
  starterMayIntegrate?: boolean;
  created: string;
  updated: string;
  ended?: string;
  error?: { task: string; code: string; message: string };
  /** For a sub-playbook's run: the run and task waiting on it, and the playbooks above it (cycles, depth). */
  parent?: { run: string; task: string };
  callers: string[];
  /** For a sub-playbook's run: the run at the top of its tree (whose budget it spends, playbook-runner.ts). */
  root?: string;
}

/** What the runner needs of a run store: this one, or a playbook test's in memory (playbook-test.ts). */
export type RunRecords = Pick<RunStore, 'newId' | 'get' | 'putOps' | 'write' | 'unfinished' | 'treeUse' | 'prune'>;

const RUN_ID = /^run_[0-9]{12}$/;

/**
 * Retention of ended runs: the newest KEEP_RUNS, none ended more than KEEP_MS ago. A run's record holds its outputs
 * (up to 256 KiB per task), so an automated tenant starting runs all day would otherwise grow without end; runs not
 * ended are always kept. Deleted PRUNE_BATCH at a time, so one batch stays small whatever the backlog.
 */
export const KEEP_RUNS = 10_000;
export const KEEP_MS = 30 * 86_400_000;
const PRUNE_BATCH = 500;

/** A run as its record holds it: without its playbook, which is stored apart (or inline, in a run from before). */
export type RunState = Omit<PlaybookRun, 'definition'> & { definition?: Playbook };

export class RunStore {
  private readonly runs: Sub<RunState>;
  private readonly definitions: Sub<Playbook>;
  private readonly byIncident: Sub<string>;
  private readonly active: Sub<string>;
  /** Runs read with their playbook in their record (stored before it was apart): their next put stores it apart. */
  private readonly inline = new Set<string>();
  private nextSeq = 1;

  constructor(private readonly db: Level<string, unknown>) {
    this.runs = db.sublevel<string, RunState>('playbook-runs', {
      valueEncoding: 'json',
    }) as unknown as Sub<RunState>;
    this.definitions = db.sublevel<string, Playbook>('playbook-run-definitions', {
      valueEncoding: 'json',
    }) as unknown as Sub<Playbook>;
    this.byIncident = db.sublevel<string, string>('playbook-runs-by-incident', {
      valueEncoding: 'json',
    }) as unknown as Sub<string>;
    this.active = db.sublevel<string, string>('playbook-runs-active', {
      valueEncoding: 'json',
    }) as unknown as Sub<string>;
  }

  async open(): Promise<void> {
    for await (const k of this.runs.keys({ reverse: true, limit: 1 })) this.nextSeq = Number(k.slice(4)) + 1;
  }

  newId(): string {
    return `run_${String(this.nextSeq++).padStart(12, '0')}`;
  }

  /** A run's record: its state, without its playbook (what the API shows of a run). */
  async state(id: string): Promise<RunState> {
    const r = RUN_ID.test(id) ? await pointRead(this.runs, id) : undefined;
    if (!r)
      throw new NotFoundError('ERR_PLAYBOOK_RUN_NOT_FOUND', `no playbook run ${id} in this tenant`, { field: 'run' });
    return r;
  }

  /** A run with its playbook (what the runner drives). */
  async get(id: string): Promise<PlaybookRun> {
    const [run] = await this.withDefinitions([await this.state(id)]);
    if (!run) throw new NotFoundError('ERR_PLAYBOOK_RUN_NOT_FOUND', `playbook run ${id} has no playbook stored`);
    return run;
  }

  /** `runs` with their playbooks: those stored apart read in one go (a run without one is left out). */
  private async withDefinitions(runs: RunState[]): Promise<PlaybookRun[]> {
    const apart: RunState[] = [];
    for (const r of runs)
      if (r.definition === undefined) apart.push(r);
      else this.inline.add(r.id);
    const defs = apart.length ? await this.definitions.getMany(apart.map((r) => r.id)) : [];
    apart.forEach((r, i) => (r.definition = defs[i]));
    return runs.filter((r): r is PlaybookRun => r.definition !== undefined);
  }

  /**
   * The ops that store `run` and keep the indexes, for a batch with the timeline's and the incident's. The record
   * goes without the playbook, stored with the run's start (`isNew`) or, for a run from before, its next put.
   */
  putOps(run: PlaybookRun, isNew = false): BatchOp[] {
    const active = this.active as Sub<unknown>;
    const ended = run.status === 'succeeded' || run.status === 'failed';
    const { definition, ...record } = run;
    const ops: BatchOp[] = [
      { type: 'put', sublevel: this.runs as Sub<unknown>, key: run.id, value: record },
      ended
        ? { type: 'del', sublevel: active, key: run.id }
        : { type: 'put', sublevel: active, key: run.id, value: run.id },
    ];
    if (isNew || this.inline.has(run.id))
      ops.push({ type: 'put', sublevel: this.definitions as Sub<unknown>, key: run.id, value: definition });
    if (isNew)
      ops.push({
        type: 'put',
        sublevel: this.byIncident as Sub<unknown>,
        key: `${TenantStore.key(run.incident)}!${run.id}`,
        value: run.id,
      });
    return ops;
  }

  /** The ops that delete `run` and its index entries (a site's data removed, sites/site-purge.ts). */
  deleteOps(run: RunState): BatchOp[] {
    return [
      { type: 'del', sublevel: this.runs as Sub<unknown>, key: run.id },
      { type: 'del', sublevel: this.definitions as Sub<unknown>, key: run.id },
      { type: 'del', sublevel: this.active as Sub<unknown>, key: run.id },
      { type: 'del', sublevel: this.byIncident as Sub<unknown>, key: `${TenantStore.key(run.incident)}!${run.id}` },
    ];
  }

  /** Every run on `incident`, oldest first, whatever its state (their records). */
  async ofIncident(incident: string): Promise<RunState[]> {
    const k = TenantStore.key(incident);
    const ids = await this.byIncident.values({ gt: `${k}!`, lt: `${k}!~` }).all();
    return (await this.runs.getMany(ids)).filter((r): r is RunState => r !== undefined);
  }

  /** Writes every op in one LevelDB batch, all or none (with other writes asked for meanwhile: group-writer.ts). */
  write(ops: BatchOp[]): Promise<void> {
    return groupWriter(this.db).write(ops);
  }

  /** Newest first, at most `limit` (their records). */
  async list(f: { incident?: string }, limit: number): Promise<RunState[]> {
    if (f.incident === undefined) return this.runs.values({ reverse: true, limit }).all();
    const k = TenantStore.key(f.incident);
    const ids = await this.byIncident.values({ gt: `${k}!`, lt: `${k}!~`, reverse: true, limit }).all();
    return (await this.runs.getMany(ids)).filter((r): r is RunState => r !== undefined);
  }

  /** The sub-playbook runs of the tree under root run `root` (on its incident), and the tasks the tree has begun. */
  async treeUse(root: PlaybookRun): Promise<{ childRuns: number; tasks: number }> {
    const k = TenantStore.key(root.incident);
    const ids = await this.byIncident.values({ gt: `${k}!${root.id}`, lt: `${k}!~` }).all();
    const tree = (await this.runs.getMany(ids)).filter((r) => r?.root === root.id) as RunState[];
    const tasks = [root, ...tree].reduce((n, r) => n + Object.keys(r.tasks).length, 0);
    return { childRuns: tree.length, tasks };
  }

  /** Deletes the ended runs past retention (see KEEP_RUNS), oldest first, with their index entries; how many. */
  async prune(now: number, keep = KEEP_RUNS, keepMs = KEEP_MS): Promise<number> {
    let total = 0;
    for await (const _k of this.runs.keys()) total++;
    let seen = 0;
    let pruned = 0;
    let ops: BatchOp[] = [];
    for await (const r of this.runs.values()) {
      seen++;
      if (r.ended === undefined || (r.status !== 'succeeded' && r.status !== 'failed')) continue;
      if (seen > total - keep && now - Date.parse(r.ended) < keepMs) continue;
      ops.push(
        { type: 'del', sublevel: this.runs as Sub<unknown>, key: r.id },
        { type: 'del', sublevel: this.definitions as Sub<unknown>, key: r.id },
        { type: 'del', sublevel: this.byIncident as Sub<unknown>, key: `${TenantStore.key(r.incident)}!${r.id}` },
      );
      pruned++;
      if (ops.length >= PRUNE_BATCH * 3) {
        await this.write(ops);
        ops = [];
      }
    }
    if (ops.length > 0) await this.write(ops);
    return pruned;
  }

  /** Runs not ended (running, waiting, interrupted), oldest first: what a tenant looks at when it starts. */
  async unfinished(): Promise<PlaybookRun[]> {
    const ids = await this.active.keys().all();
    return this.withDefinitions((await this.runs.getMany(ids)).filter((r): r is RunState => r !== undefined));
  }
}
