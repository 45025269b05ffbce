/**
 * Group commit for the tenant's LevelDB: writes asked for while one is under way wait for it and then go down as one
 * batch. Each caller's ops stay together (one batch: all land, or none) and its promise settles once they are written,
 * so what a caller awaited is stored exactly as with its own `batch()`; a write asked for later never lands before
 * one asked for earlier. With nothing under way a write goes down at once: one run at a time pays no wait.
 *
 * Why: a playbook run's state, its start's replay id and audit line, and the other requests' replay ids and audit
 * lines each were a `batch()`/`put()` of their own, each paying the binding's per-call cost (an async work item, a
 * promise, a thread hop); with runs 4 in flight, several are asked for within one write. A merged batch that fails
 * is tried again caller by caller, so one caller's bad op fails only that caller. Not the stores' layouts (their
 * modules) nor a cache: nothing is read here.
 */
import type { Level } from 'level';
import type { BatchOp } from './incident-timeline.js';

interface Pending<Op> {
  ops: Op[];
  done: () => void;
  failed: (e: unknown) => void;
}

/**
 * `options` go with every batch written, read as each is (the event pipeline's writer, its own, of root-level ops,
 * fsyncs when the tenant's setting says so: event-pipeline.ts).
 */
export class GroupWriter<Op = BatchOp> {
  private busy = false;
  private queue: Pending<Op>[] = [];

  constructor(
    private readonly db: Level<string, unknown>,
    private readonly options: () => object = () => ({}),
  ) {}

  /** Writes `ops` in one batch (with others' asked for meanwhile); resolves once they are stored. */
  write(ops: Op[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    const p = new Promise<void>((done, failed) => this.queue.push({ ops, done, failed }));
    if (!this.busy) void this.drain();
    return p;
  }

  /** Writes what is queued, one group at a time, until nothing is. */
  private async drain(): Promise<void> {
    this.busy = true;
    while (this.queue.length > 0) {
      const group = this.queue;
      this.queue = [];
      try {
        await this.db.batch(
          (group.length === 1 ? group[0].ops : group.flatMap((p) => p.ops)) as never,
          this.options() as never,
        );
        for (const p of group) p.done();
      } catch (e) {
        if (group.length === 1) group[0].failed(e);
        // One by one, still in order: only the caller whose ops fail is told so.
        else for (const p of group) await this.db.batch(p.ops as never, this.options() as never).then(p.done, p.failed);
      }
    }
    this.busy = false;
  }
}

const writers = new WeakMap<Level<string, unknown>, GroupWriter>();

/** The one group writer of `db`: every store of a tenant writing through it shares its groups. */
export function groupWriter(db: Level<string, unknown>): GroupWriter {
  let w = writers.get(db);
  if (!w) writers.set(db, (w = new GroupWriter(db)));
  return w;
}
