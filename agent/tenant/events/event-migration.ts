/**
 * Moves events stored one per key (the store before blocks: sublevel `ev`, keyed `TIME~ENGINE~SEQ~INDEX`, and its
 * domain index `ev-domain`) into blocks (event-block.ts), whole as they were stored, a few thousand at a time: each
 * step writes its blocks and deletes the old keys in one LevelDB batch, so a crash midway leaves every event in one
 * of the two places, and the next start goes on. A step holds whole seconds: a block is never written twice.
 * Run once at the pipeline's start; a store with no old events costs one read.
 */
import type { Level } from 'level';
import { BlockBuilder, type StoredEvent } from './event-block.js';
import { blockKey, prefixOf, type EventStore, type RootOp } from './event-store.js';

/** Events per step, at least (the step ends at a second's end). */
const STEP = 2000;

export async function migrateLegacyEvents(db: Level<string, unknown>, store: EventStore): Promise<number> {
  const old = db.sublevel<string, StoredEvent>('ev', { valueEncoding: 'json' });
  const oldIndex = db.sublevel<string, unknown>('ev-domain', { valueEncoding: 'json' });
  let moved = 0;
  for (;;) {
    const step: [string, StoredEvent][] = [];
    let second = '';
    for await (const [k, e] of old.iterator()) {
      const s = k.slice(0, 12); // the key's 15-digit ms time, to the second
      if (step.length >= STEP && s !== second) break;
      second = s;
      step.push([k, e]);
    }
    if (step.length === 0) break;
    // Keys sort by time first: a batch's events of one second may interleave with another's. Blocks take theirs in
    // index order (encodeBlock relies on it).
    const byBlock = new Map<string, { engine: string; seq: number; entries: [number, number, StoredEvent][] }>();
    for (const [k, e] of step) {
      const [time, engine, seq, index] = k.split('~');
      const key = blockKey(Number(time), engine, Number(seq));
      let g = byBlock.get(key);
      if (!g) byBlock.set(key, (g = { engine, seq: Number(seq), entries: [] }));
      g.entries.push([Number(index), Number(time), e]);
    }
    const ops: RootOp[] = [];
    for (const [key, g] of byBlock) {
      const b = new BlockBuilder(g.engine, g.seq);
      for (const [index, time, e] of g.entries.sort((x, y) => x[0] - y[0])) {
        const meta = { time, sender: e.sender, transport: e.transport, logSource: e.logSource };
        b.add(index, '', { ...meta, domain: e.domain, rule: e.domainRule }, e);
      }
      ops.push(...store.blockPuts(key, b));
    }
    for (const [k] of step) ops.push({ type: 'del', key: prefixOf(old) + k });
    await db.batch(ops as never, { keyEncoding: 'utf8', valueEncoding: 'utf8' } as never);
    moved += step.length;
  }
  if (moved > 0) await oldIndex.clear();
  return moved;
}
