/**
 * Incident timelines on a real LevelDB in a temp dir: entries come back oldest first and only for their incident;
 * past MAX_TIMELINE_ENTRIES the oldest are dropped, also when the count starts from a reopened store; an incident
 * new since the store opened is counted from nothing.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { IncidentTimeline, MAX_TIMELINE_ENTRIES } from '../../agent/tenant/incident-timeline.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function append(db: Level<string, unknown>, t: IncidentTimeline, incident: string, n: number, from = 0) {
  for (let i = from; i < from + n; i++)
    await db.batch((await t.entryOps(incident, { by: 'test', kind: 'note', text: `#${i}` })) as never);
}

describe('incident timeline', () => {
  it('keeps each incident its own entries in order, and at most the newest MAX_TIMELINE_ENTRIES', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'timeline-'));
    dirs.push(dir);
    let db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
    await db.open();
    let t = new IncidentTimeline(db);
    await append(db, t, '1', MAX_TIMELINE_ENTRIES - 2);
    await append(db, t, '12', 3);
    expect((await t.list('12')).map((e) => e.text)).toEqual(['#0', '#1', '#2']);
    await db.close();

    db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
    await db.open();
    t = new IncidentTimeline(db); // counts again from the store
    await append(db, t, '1', 5, MAX_TIMELINE_ENTRIES - 2);
    const kept = await t.list('1');
    expect(kept).toHaveLength(MAX_TIMELINE_ENTRIES);
    expect(kept[0].text).toBe('#3');
    expect(kept.at(-1)).toMatchObject({ by: 'test', kind: 'note', text: `#${MAX_TIMELINE_ENTRIES + 2}` });
    expect(await t.list('12')).toHaveLength(3);

    // An incident new since the store opened is counted from nothing (no scan); one older than that is still scanned.
    const seen: string[] = [];
    t = new IncidentTimeline(db, (id) => (seen.push(id), Number(id) >= 100));
    await append(db, t, '100', 2);
    await append(db, t, '12', 1, 3);
    expect(seen).toEqual(['100', '12']);
    expect((await t.list('100')).map((e) => e.text)).toEqual(['#0', '#1']);
    expect(await t.list('12')).toHaveLength(4);
    await db.close();
  }, 60_000);
});
