/**
 * Search order within one second on a real LevelDB (agent/tenant/events/event-search.ts, event-store.ts): batches of
 * three engines whose receive times interleave and tie, a block written before spans existed (no span in its value,
 * not compressed; in the span index, its second's) beside compressed ones, paged with every limit from 1 to 9 and
 * filtered by text, time and domain, give exactly the events a full sort gives, each once, through the span index and
 * without it (a store being indexed); a second holding more events than a search reads at once (MAX_SCAN) still gives
 * full pages; a page of the newest events reads only the blocks whose span can hold them; and a store without the
 * index is indexed.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TenantStore } from '../../agent/tenant/store.js';
import { createEventPipeline, type EventPipeline } from '../../agent/tenant/events/event-pipeline.js';
import { decodeStoredBlock } from '../../agent/tenant/events/event-block.js';
import { blockBytes } from '../../agent/tenant/events/block-compression.js';
import { eventKey, type EventQuery } from '../../agent/tenant/events/event-store.js';
import { batch, record } from '../harness/event-tenant.js';

let dir: string;
let store: TenantStore;
let pipeline: EventPipeline;
/** Every stored event as [id, message, domain, time], in search order (a full sort of the ids). */
let all: [string, string, string, number][];
/** The second all events were received in. */
const S = Math.floor(Date.now() / 1000) * 1000 - 60_000;
const SECOND = String(S / 1000).padStart(12, '0');
/** Search through the span index, and as a store not indexed yet does (every block of a second read whole). */
const MODES = [
  ['indexed', true],
  ['not indexed', false],
] as const;
const bytes = { valueEncoding: 'buffer' } as const;

/** A stored block's value as bytes (compressed, as ingest writes it). */
const rawBlock = async (key: string) => (await pipeline.store.blocks.get(key, bytes)) as unknown as Buffer;
/** A stored block's encoded text: what it held before it was compressed. */
const blockText = async (key: string) => blockBytes(await rawBlock(key)).toString('utf8');
/** Stores `value` under `key` as given: text is stored as a block was before compression, bytes as they are. */
const putBlock = (key: string, value: string | Buffer) =>
  typeof value === 'string'
    ? pipeline.store.blocks.put(key, value)
    : pipeline.store.blocks.put(key, value as never, bytes);

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
  await pipeline.indexed;
  expect(pipeline.store.spansIndexed).toBe(true);
  // A block as written before spans (and before compression): the same JSON without its opening span, uncompressed;
  // indexed with its second's. The others stay compressed: a store holds both once upgraded.
  const oldKey = `${SECOND}~eng-c~${'7'.padStart(16, '0')}`;
  const old = await blockText(oldKey);
  const stripped = old.replace(/^\{"lo":\d+,"hi":\d+,/, '{');
  expect(stripped).not.toBe(old);
  await putBlock(oldKey, stripped);
  await pipeline.store.spans.put(oldKey, `${S},${S + 999}`);
  all = [];
  for await (const [, v] of pipeline.store.blocks.iterator(bytes)) {
    const b = decodeStoredBlock(v as unknown as Buffer);
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
    for (const [mode, indexed] of MODES) {
      pipeline.store.spansIndexed = indexed;
      for (const [q, keep] of cases) {
        const expected = all.filter(keep).map((e) => e[0]);
        expect(expected.length).toBeGreaterThan(0);
        for (let limit = 1; limit <= 9; limit++)
          expect([mode, q, limit, await paged(q, limit)]).toEqual([mode, q, limit, expected]);
      }
    }
    pipeline.store.spansIndexed = true;
  });

  it('a second with more events than a search reads at once still gives full pages, and a miss moves on by seconds', async () => {
    // Every block without its span (in its value; its second's in the index): all must be read before the first
    // event of the second can be taken.
    const saved: [string, Buffer][] = [];
    const spans: [string, string][] = [];
    for await (const [k, v] of pipeline.store.blocks.iterator(bytes)) saved.push([k, v as unknown as Buffer]);
    for await (const [k, v] of pipeline.store.spans.iterator()) spans.push([k, v]);
    for (const [k, v] of saved)
      await putBlock(
        k,
        blockBytes(v)
          .toString('utf8')
          .replace(/^\{"lo":\d+,"hi":\d+,/, '{'),
      );
    for (const [k] of spans) await pipeline.store.spans.put(k, `${S},${S + 999}`);
    try {
      for (const [mode, indexed] of MODES) {
        pipeline.store.spansIndexed = indexed;
        const ids: string[] = [];
        let before: string | undefined;
        for (let i = 0; i < 20; i++) {
          const page = await pipeline.store.search({ limit: 4, ...(before ? { before } : {}) }, 5);
          if (page.next) expect(page.items).toHaveLength(4);
          ids.push(...page.items.map((e) => e.id));
          if (!page.next) break;
          before = page.next;
        }
        expect([mode, ids]).toEqual([mode, all.map((e) => e[0])]);
        const miss = await pipeline.store.search({ limit: 4, q: 'no such text' }, 5);
        expect(miss.items).toEqual([]);
        const after = await pipeline.store.search({ limit: 4, q: 'no such text', before: miss.next! }, 5);
        expect(after).toEqual({ items: [], next: null });
      }
    } finally {
      pipeline.store.spansIndexed = true;
      for (const [k, v] of saved) await putBlock(k, v);
      for (const [k, v] of spans) await pipeline.store.spans.put(k, v);
    }
  });

  it('a page of the newest events does not decode a block whose span is older than the page, nor read it', async () => {
    // eng-a's first batch spans S+10..S+90; whatever follows its span is never read for the three newest events.
    const key = `${SECOND}~eng-a~${'1'.padStart(16, '0')}`;
    const value = await rawBlock(key);
    const span = /^\{"lo":\d+,"hi":\d+,/.exec(await blockText(key))![0];
    await putBlock(key, `${span}not a block`);
    const reads = vi.spyOn(pipeline.store.blocks, 'getMany');
    const scans = vi.spyOn(pipeline.store.blocks, 'iterator');
    try {
      for (const [mode, indexed] of MODES) {
        pipeline.store.spansIndexed = indexed;
        reads.mockClear();
        scans.mockClear();
        const page = await pipeline.store.search({ limit: 3 });
        expect([mode, page.items.map((e) => e.id)]).toEqual([mode, all.slice(0, 3).map((e) => e[0])]);
        // Through the index only the blocks the page needed were read at all: not eng-a's first.
        if (indexed) {
          expect(scans).not.toHaveBeenCalled();
          expect(reads.mock.calls.flatMap((c) => c[0])).not.toContain(key);
          expect(reads.mock.calls.flatMap((c) => c[0]).length).toBeLessThan(5);
        }
        // A search that reaches it reads it, and fails: the probe works.
        await expect(pipeline.store.search({ limit: 1000 })).rejects.toThrow();
      }
    } finally {
      reads.mockRestore();
      scans.mockRestore();
      pipeline.store.spansIndexed = true;
      await putBlock(key, value);
    }
  });
});

describe('the span index', () => {
  it('is made for a store from before it: each block gets the span its value holds, else its second’s', async () => {
    const store = pipeline.store;
    const before = new Map<string, string>();
    for await (const [k, v] of store.spans.iterator()) before.set(k, v);
    expect(before.size).toBe(5);
    // A store as an older version left it: no index, no mark that it is whole.
    await store.spans.clear();
    await store.db.sublevel('ev-meta').clear();
    store.spansIndexed = false;
    expect(await store.indexSpans()).toBe(5);
    expect(store.spansIndexed).toBe(true);
    const after = new Map<string, string>();
    for await (const [k, v] of store.spans.iterator()) after.set(k, v);
    // The same spans as ingest wrote, but the block without one in its value has its second's.
    expect(after).toEqual(before);
    expect(after.get(`${SECOND}~eng-c~${'7'.padStart(16, '0')}`)).toBe(`${S},${S + 999}`);
    expect(await paged({}, 4)).toEqual(all.map((e) => e[0]));
    // Whole and up to date: the next start reads one key, the newest block's, not every block.
    const scan = vi.spyOn(store.blocks, 'keys');
    expect(await store.indexSpans()).toBe(0);
    expect(scan.mock.calls).toEqual([[{ reverse: true, limit: 1 }]]);
    scan.mockRestore();
  });

  it('takes a span that does not read as two times as unknown: its block is read at once, nothing is lost', async () => {
    const store = pipeline.store;
    const key = `${SECOND}~eng-a~${'2'.padStart(16, '0')}`;
    const span = (await store.spans.get(key))!;
    for (const bad of ['', 'garbage', '12,', ',34', 'NaN,NaN']) {
      await store.spans.put(key, bad);
      expect([bad, await paged({}, 4)]).toEqual([bad, all.map((e) => e[0])]);
      expect([bad, await paged({ domain: 'acme' }, 3)]).toEqual([
        bad,
        all.filter((e) => e[2] === 'acme').map((e) => e[0]),
      ]);
    }
    await store.spans.put(key, span);
  });

  it('is made again when a block newer than the index has no span (written by an older version since)', async () => {
    const store = pipeline.store;
    const newest = `${SECOND}~eng-c~${'7'.padStart(16, '0')}`;
    const span = (await store.spans.get(newest))!;
    await store.spans.del(newest);
    store.spansIndexed = false;
    expect(await store.indexSpans()).toBe(1);
    expect(await store.spans.get(newest)).toBe(span);
    expect(store.spansIndexed).toBe(true);
  });
});
