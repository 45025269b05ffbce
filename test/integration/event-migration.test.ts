/**
 * Events a tenant stored before blocks (one key each in sublevel `ev`, with the `ev-domain` index) are moved into
 * blocks when its pipeline starts (real LevelDB): every one is found again by search, newest first, by domain and by
 * text, with what it held; the old keys are gone; a second start moves nothing.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Level } from 'level';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEventPipeline } from '../../agent/tenant/events/event-pipeline.js';
import { eventKey, type StoredEvent } from '../../agent/tenant/events/event-store.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

function legacy(i: number, at: number): StoredEvent {
  return {
    time: new Date(at).toISOString(),
    domain: i % 3 === 0 ? 'hq' : 'Default Domain',
    domainRule: i % 3 === 0 ? 'event-collector:e1' : 'default',
    logSource: 'fw1@e1',
    engine: 'e1',
    sender: '10.0.0.1',
    transport: 'udp',
    format: 'kv',
    message: `old event ${i} src=10.1.1.${i % 250}`,
    host: 'fw1',
    sourceAddress: `10.1.1.${i % 250}`,
  };
}

describe('events stored one per key before blocks', () => {
  it('are moved into blocks at start and searched as before', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ev-mig-'));
    dirs.push(dir);
    const db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
    await db.open();
    const old = db.sublevel<string, StoredEvent>('ev', { valueEncoding: 'json' });
    const base = Date.now() - 3_600_000;
    const n = 5000;
    // Two batches per second, interleaved in time as UDP senders make them.
    for (let i = 0; i < n; i++) {
      const at = base + Math.floor(i / 4) * 250 + (i % 2) * 7;
      await old.put(eventKey(at, 'e1', Math.floor(i / 8) * 2 + (i % 2), i % 8), legacy(i, at));
    }
    const p = createEventPipeline({ db });
    await p.start();
    expect(await old.keys().all()).toEqual([]);
    const all = await p.store.search({ limit: 1000, q: 'old event' });
    expect(all.items).toHaveLength(1000);
    const times = all.items.map((e) => e.time);
    expect(times).toEqual([...times].sort().reverse());
    let count = all.items.length;
    for (let next = all.next; next;) {
      const page = await p.store.search({ limit: 1000, q: 'old event', before: next });
      count += page.items.length;
      next = page.next;
    }
    expect(count).toBe(n);
    const hq = await p.store.search({ limit: 1000, domain: 'hq' });
    expect(hq.items.every((e) => e.domain === 'hq')).toBe(true);
    const one = (await p.store.search({ limit: 1, q: 'old event 4242 ' })).items[0];
    expect(one).toMatchObject({ ...legacy(4242, Date.parse(one.time)), fields: { src: '10.1.1.242' } });
    await p.close();
    const again = createEventPipeline({ db });
    await again.start();
    expect((await again.store.search({ limit: 1, q: 'old event 4242 ' })).items).toHaveLength(1);
    await again.close();
    await db.close();
  });
});
