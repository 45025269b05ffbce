/**
 * Each incident's timeline: what happened to it, in order — today the steps of the playbook runs on it
 * (docs/playbooks.md#the-timeline). Entries `{at, by, kind, text, data?}` live in their own sublevel under the
 * incident's key, so one incident's timeline is a range read. An entry is written by the caller's batch
 * (`entryOps`), in the same LevelDB batch as the change it tells of: a step is on the timeline if and only if it
 * happened. Kept bounded: past MAX_ENTRIES an incident's oldest entries are dropped as new ones come.
 * Readable by whoever may read the incident, so entries say what happened, never a task's output.
 */
import type { Level } from 'level';
import type { Sub } from './store.js';
import { TenantStore } from './store.js';

export interface TimelineEntry {
  at: string;
  /** The user or key who acted, or `playbook` for a run's own steps. */
  by: string;
  kind: string;
  text: string;
  data?: Record<string, unknown>;
}

/** A year of a busy incident's automation at a few steps a day; a page of a timeline is read whole. */
export const MAX_TIMELINE_ENTRIES = 1000;

export type BatchOp =
  | { type: 'put'; sublevel: Sub<unknown>; key: string; value: unknown }
  | { type: 'del'; sublevel: Sub<unknown>; key: string };

export class IncidentTimeline {
  private readonly entries: Sub<TimelineEntry>;
  /** Entries per incident, counted once per process from the store, then kept here. */
  private readonly counts = new Map<string, number>();
  private seq = 0;

  /** `fresh`: whether an incident is new since the process started (TenantStore.createdSinceOpen): no entries yet. */
  constructor(
    db: Level<string, unknown>,
    private readonly fresh: (incident: string) => boolean = () => false,
  ) {
    this.entries = db.sublevel<string, TimelineEntry>('timeline', {
      valueEncoding: 'json',
    }) as unknown as Sub<TimelineEntry>;
  }

  private range(incident: string) {
    const k = TenantStore.key(incident);
    return { gt: `${k}!`, lt: `${k}!~` };
  }

  /** The batch ops that append `entry` (and drop the oldest past the bound); the caller writes them. */
  async entryOps(incident: string, e: Omit<TimelineEntry, 'at'>): Promise<BatchOp[]> {
    const at = new Date();
    // Time, then a per-process sequence: keys sort in the order entries were made, even within a millisecond.
    const key = `${TenantStore.key(incident)}!${String(at.getTime()).padStart(14, '0')}.${String(this.seq++ % 1e6).padStart(6, '0')}`;
    const ops: BatchOp[] = [
      { type: 'put', sublevel: this.entries as Sub<unknown>, key, value: { at: at.toISOString(), ...e } },
    ];
    const count = (await this.count(incident)) + 1;
    if (count > MAX_TIMELINE_ENTRIES)
      for await (const old of this.entries.keys({ ...this.range(incident), limit: count - MAX_TIMELINE_ENTRIES }))
        ops.push({ type: 'del', sublevel: this.entries as Sub<unknown>, key: old });
    this.counts.set(incident, Math.min(count, MAX_TIMELINE_ENTRIES));
    return ops;
  }

  private async count(incident: string): Promise<number> {
    let n = this.counts.get(incident);
    if (n === undefined) {
      n = 0;
      // A new incident's first entry (each run on a new incident starts with one) needs no scan of an empty range.
      if (!this.fresh(incident)) for await (const _ of this.entries.keys(this.range(incident))) n++;
      this.counts.set(incident, n);
    }
    return n;
  }

  /** The ops that delete the incident's whole timeline (a site's data removed), and how many entries that is. */
  async purgeOps(incident: string): Promise<BatchOp[]> {
    const keys = await this.entries.keys(this.range(incident)).all();
    this.counts.delete(incident);
    return keys.map((key) => ({ type: 'del' as const, sublevel: this.entries as Sub<unknown>, key }));
  }

  /** Oldest first. */
  async list(incident: string): Promise<TimelineEntry[]> {
    return this.entries.values(this.range(incident)).all();
  }
}
