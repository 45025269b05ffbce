/**
 * How a tenant's playbook runs are written, on a real LevelDB in a temp dir: a run's playbook is stored once, with
 * its start, not with each put of its record (a run stored before that, with it in its record, is read as it is and
 * its next put stores it apart); and the group writer (agent/tenant/group-writer.ts) merges writes asked for while
 * one is under way, keeps each caller's ops together and in order, and fails only the caller whose ops fail.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { RunStore, type PlaybookRun } from '../../agent/tenant/playbooks/run-store.js';
import { GroupWriter } from '../../agent/tenant/group-writer.js';
import type { BatchOp } from '../../agent/tenant/incident-timeline.js';
import type { Sub } from '../../agent/tenant/store.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function openDb(): Promise<Level<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'palisade-run-writes-'));
  dirs.push(dir);
  const db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
  await db.open();
  return db;
}

function newRun(store: RunStore): PlaybookRun {
  const at = new Date().toISOString();
  return {
    id: store.newId(),
    playbook: { id: 'loc_1', name: 'p', version: 1 },
    definition: { name: 'p', start: 'a', tasks: { a: { type: 'manual', prompt: 'x' } } },
    incident: '7',
    inputs: {},
    context: {},
    status: 'running',
    current: 'a',
    tasks: {},
    startedBy: 'alice',
    created: at,
    updated: at,
    callers: [],
  };
}

describe('RunStore: the playbook stored once per run', () => {
  it('writes it with the start only; reads give it back; state() is the record alone', async () => {
    const db = await openDb();
    try {
      const store = new RunStore(db);
      await store.open();
      const run = newRun(store);
      const first = store.putOps(run, true);
      expect(first.filter((o) => o.type === 'put' && o.value === run.definition)).toHaveLength(1);
      await store.write(first);
      const later = store.putOps({ ...run, status: 'waiting' });
      expect(later.some((o) => o.type === 'put' && o.value === run.definition)).toBe(false);
      const values = later.map((o) => (o.type === 'put' ? o.value : undefined));
      expect(values.some((v) => typeof v === 'object' && v !== null && 'definition' in v)).toBe(false);
      await store.write(later);
      expect(await store.get(run.id)).toEqual({ ...run, status: 'waiting' });
      expect(await store.state(run.id)).not.toHaveProperty('definition');
      expect((await store.unfinished()).map((r) => r.definition)).toEqual([run.definition]);
      // Deleting a run deletes its playbook too.
      await store.write(store.deleteOps(run));
      const defs = db.sublevel<string, unknown>('playbook-run-definitions', { valueEncoding: 'json' });
      expect(await defs.keys().all()).toEqual([]);
    } finally {
      await db.close();
    }
  });

  it('reads a run stored with its playbook in its record; its next put stores the playbook apart', async () => {
    const db = await openDb();
    try {
      const store = new RunStore(db);
      await store.open();
      const run = newRun(store);
      // As a tenant from before wrote it: the whole run, playbook included, in the record.
      const records = db.sublevel<string, PlaybookRun>('playbook-runs', { valueEncoding: 'json' });
      await records.put(run.id, run);
      const read = await store.get(run.id);
      expect(read).toEqual(run);
      await store.write(store.putOps({ ...read, status: 'waiting' }));
      expect(await records.get(run.id)).not.toHaveProperty('definition');
      const again = new RunStore(db); // a restarted tenant: it knows nothing of the old layout
      expect(await again.get(run.id)).toEqual({ ...run, status: 'waiting' });
    } finally {
      await db.close();
    }
  });
});

describe('GroupWriter', () => {
  it('merges writes asked for during one, in order; a bad op fails only its caller', async () => {
    const db = await openDb();
    try {
      const sub = db.sublevel<string, unknown>('t', { valueEncoding: 'json' }) as unknown as Sub<unknown>;
      const calls: number[] = [];
      const batch = db.batch.bind(db);
      (db as { batch: unknown }).batch = (ops: BatchOp[]) => {
        calls.push(ops.length);
        return batch(ops as never);
      };
      const w = new GroupWriter(db);
      const put = (key: string, value: unknown): BatchOp => ({ type: 'put', sublevel: sub, key, value });
      const first = w.write([put('a', 1)]);
      const rest = [w.write([put('a', 2), put('b', 2)]), w.write([put('a', 3)])];
      await Promise.all([first, ...rest]);
      expect(calls).toEqual([1, 3]); // the first at once; the two asked for meanwhile as one batch
      expect(await sub.get('a')).toBe(3); // the later write landed later
      expect(await sub.get('b')).toBe(2);

      calls.length = 0;
      const busy = w.write([put('c', 1)]);
      const bad = w.write([put('d', 1), { type: 'put', sublevel: sub, key: undefined as never, value: 1 }]);
      const good = w.write([put('e', 1)]);
      await busy;
      await expect(bad).rejects.toThrow();
      await good;
      expect(await sub.get('e')).toBe(1);
      expect(await sub.get('d')).toBeUndefined(); // the bad caller's ops: none of them
    } finally {
      await db.close();
    }
  });
});
