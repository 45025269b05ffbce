/**
 * Retention of playbook runs on a real LevelDB in a temp dir (agent/tenant/playbooks/run-store.ts): pruning deletes
 * ended runs past the newest N or older than the age limit, with their incident index entries, and never a run that
 * has not ended, however old.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { RunStore, type PlaybookRun } from '../../agent/tenant/playbooks/run-store.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const DAY = 86_400_000;
const NOW = Date.parse('2026-12-01T00:00:00Z');

function run(store: RunStore, status: PlaybookRun['status'], endedDaysAgo?: number): PlaybookRun {
  const at = new Date(NOW - 40 * DAY).toISOString();
  return {
    id: store.newId(),
    playbook: { id: 'loc_1', name: 'p', version: 1 },
    definition: { name: 'p', start: 'a', tasks: { a: { type: 'manual', prompt: 'x' } } },
    incident: '7',
    inputs: {},
    context: {},
    status,
    current: null,
    tasks: {},
    startedBy: 'alice',
    created: at,
    updated: at,
    ...(endedDaysAgo !== undefined ? { ended: new Date(NOW - endedDaysAgo * DAY).toISOString() } : {}),
    callers: [],
  };
}

describe('RunStore.prune', () => {
  it('deletes ended runs past the newest N or the age limit, never a run not ended', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-runs-'));
    dirs.push(dir);
    const db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
    await db.open();
    try {
      const store = new RunStore(db);
      await store.open();
      const runs = [
        run(store, 'waiting'), // oldest, but not ended: kept
        run(store, 'succeeded', 31), // ended too long ago
        run(store, 'failed', 2), // beyond the newest 3
        run(store, 'succeeded', 2),
        run(store, 'failed', 1),
        run(store, 'succeeded', 0),
      ];
      for (const r of runs) await store.write(store.putOps(r, true));

      expect(await store.prune(NOW, 3, 30 * DAY)).toBe(2);
      const left = (await store.list({}, 100)).map((r) => r.id).reverse();
      expect(left).toEqual([runs[0], runs[3], runs[4], runs[5]].map((r) => r.id));
      const index = await db
        .sublevel<string, string>('playbook-runs-by-incident', { valueEncoding: 'json' })
        .values()
        .all();
      expect(index).toEqual(left);
      expect(await store.prune(NOW, 3, 30 * DAY)).toBe(0);
    } finally {
      await db.close();
    }
  });
});
