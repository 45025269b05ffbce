/**
 * Search order within one second on a real LevelDB (agent/tenant/events/event-search.ts): batches of three engines
 * whose receive times interleave and tie, a block written before spans existed (no span: read whole), paged with
 * every limit from 1 to 9 and filtered by text, time and domain, give exactly the events a full sort gives, each
 * once; a second holding more events than a search reads at once (MAX_SCAN) still gives full pages; and a page of
 * the newest events decodes only the blocks whose span can hold them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TenantStore } from '../../agent/tenant/store.js';
import { createEventPipeline, type EventPipeline } from '../../agent/tenant/events/event-pipeline.js';
import { decodeBlock } from '../../agent/tenant/events/event-block.js';
import { eventKey, type EventQuery } from '../../agent/tenant/events/event-store.js';
import { batch, record } from '../harness/event-tenant.js';

let dir: string;
let store: TenantStore;
let pipeline: EventPipeline;
/** Every stored event as [id, message, domain, time], in search order (a full sort of the ids). */
let all: [string, string, string, number][];
/** The second all events were received in. */
const S = Math.floor(Date.now() / 1000) * 1000 - 60_000;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'event-search-'));
  store = new TenantStore(dir);
  await store.open();
  pipeline = createEventPipeline({ db: store.db });
  await pipeline.start();
  await pipeline.config.createProperty('cust', 'cust=(\\w+)');
  await pipeline.config.createDomain('acme');
  await pipeline.config.map('acme', { kind: 'property', key: 'cust', value: 'acme' });
  // Offsets in ms within S: batches of one engine follow on, engines overlap, times tie across and within batches.
  const plan: [engine: string, seq: number, offsets: number[]][] = [
    ['eng-a', 1, [10, 10, 40, 20, 90]],
    ['eng-a', 2, [90, 120, 300, 300]],
    ['eng-b', 1, [15, 90, 95, 500]],
    ['eng-b', 2, [500, 501, 999]],
    ['eng-c', 7, [0, 300, 998, 999, 999]],
  ];
  let n = 0;
  for (const [engine, seq, offsets] of plan) {
    const recs = offsets.map((ms) =>
      record(`<13>1 - h app - - - item ${n++} ${n % 3 === 0 ? 'cust=acme' : 'cust=other'}`, { receivedAt: S + ms }),
    );
    expect(await pipeline.ingest(batch(engine, seq, recs))).toEqual({ accepted: recs.length, duplicate: false });
  }
  // A block as written before spans: the same JSON without its opening span.
  const old = await pipeline.store.blocks.get(`${String(S / 1000).padStart(12, '0')}~eng-c~${'7'.padStart(16, '0')}`);
  const stripped = old!.replace(/^\{"lo":\d+,"hi":\d+,/, '{');
  expect(stripped).not.toBe(old);
  await pipeline.store.blocks.put(`${String(S / 1000).padStart(12, '0')}~eng-c~${'7'.padStart(16, '0')}`, stripped);
  all = [];
  for await (const [, v] of pipeline.store.blocks.iterator()) {
    const b = decodeBlock(v);
    b.i.forEach((i, at) => all.push([eventKey(b.t[at], b.e, b.s, i), b.r[at], b.d[b.x[b.c[at] * 5 + 3]], b.t[at]]));
  }
  all.sort((x, y) => (x[0] < y[0] ? 1 : -1));
  expect(all).toHaveLength(21);
});
afterAll(async () => {
  await pipeline?.close();
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Every page of `q` with `limit`, concatenated (ids). */
async function paged(q: Omit<EventQuery, 'limit' | 'before'>, limit: number): Promise<string[]> {
  const ids: string[] = [];
  let before: string | undefined;
  for (let i = 0; i < 100; i++) {
    const page = await pipeline.store.search({ ...q, limit, ...(before ? { before } : {}) });
    ids.push(...page.items.map((e) => e.id));
    if (!page.next) return ids;
    before = page.next;
  }
  throw new Error('paging did not end');
}

describe('search order within a second', () => {
  it('pages give the full sort, each event once, at every limit and filter', async () => {
    const cases: [Omit<EventQuery, 'limit' | 'before'>, (e: (typeof all)[number]) => boolean][] = [
      [{}, () => true],
      [{ q: 'cust=acme' }, (e) => e[1].includes('cust=acme')],
      [{ from: S + 90, to: S + 500 }, (e) => e[3] >= S + 90 && e[3] <= S + 500],
      [{ domain: 'acme' }, (e) => e[2] === 'acme'],
      [{ domains: new Set(['Default Domain']), q: 'item' }, (e) => e[2] === 'Default Domain'],
    ];
    for (const [q, keep] of cases) {
      const expected = all.filter(keep).map((e) => e[0]);
      expect(expected.length).toBeGreaterThan(0);
      for (let limit = 1; limit <= 9; limit++) expect([q, limit, await paged(q, limit)]).toEqual([q, limit, expected]);
    }
  });

  it('a second with more events than a search reads at once still gives full pages, and a miss moves on by seconds', async () => {
    // Every block without its span: all must be read before the first event of the second can be taken.
    const saved: [string, string][] = [];
    for await (const [k, v] of pipeline.store.blocks.iterator()) saved.push([k, v]);
    for (const [k, v] of saved) await pipeline.store.blocks.put(k, v.replace(/^\{"lo":\d+,"hi":\d+,/, '{'));
    try {
      const ids: string[] = [];
      let before: string | undefined;
      for (let i = 0; i < 20; i++) {
        const page = await pipeline.store.search({ limit: 4, ...(before ? { before } : {}) }, 5);
        if (page.next) expect(page.items).toHaveLength(4);
        ids.push(...page.items.map((e) => e.id));
        if (!page.next) break;
        before = page.next;
      }
      expect(ids).toEqual(all.map((e) => e[0]));
      const miss = await pipeline.store.search({ limit: 4, q: 'no such text' }, 5);
      expect(miss.items).toEqual([]);
      const after = await pipeline.store.search({ limit: 4, q: 'no such text', before: miss.next! }, 5);
      expect(after).toEqual({ items: [], next: null });
    } finally {
      for (const [k, v] of saved) await pipeline.store.blocks.put(k, v);
    }
  });

  it('a page of the newest events does not decode a block whose span is older than the page', async () => {
    // eng-a's first batch spans S+10..S+90; whatever follows its span is never read for the three newest events.
    const key = `${String(S / 1000).padStart(12, '0')}~eng-a~${'1'.padStart(16, '0')}`;
    const value = (await pipeline.store.blocks.get(key))!;
    const span = /^\{"lo":\d+,"hi":\d+,/.exec(value)![0];
    await pipeline.store.blocks.put(key, `${span}not a block`);
    const page = await pipeline.store.search({ limit: 3 });
    expect(page.items.map((e) => e.id)).toEqual(all.slice(0, 3).map((e) => e[0]));
    // A search that reaches it reads it, and fails: the probe works.
    await expect(pipeline.store.search({ limit: 1000 })).rejects.toThrow();
    await pipeline.store.blocks.put(key, value);
  });
});
