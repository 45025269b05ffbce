/**
 * The tenant's persistent replay cache on a real LevelDB in a temp dir: an id survives a reopen until it
 * expires, and expired entries are dropped from the store at open; an id given as an op for a route's own batch is
 * refused at once, and after a reopen once that batch is written.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { PersistentReplayCache } from '../../agent/tenant/replay-store.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function withCache<T>(
  dir: string,
  now: number,
  fn: (c: PersistentReplayCache, db: Level<string, unknown>) => Promise<T>,
): Promise<T> {
  const db = new Level<string, unknown>(dir, { valueEncoding: 'json' });
  await db.open();
  const c = new PersistentReplayCache(db);
  try {
    await c.open(now);
    return await fn(c, db);
  } finally {
    c.close();
    await db.close();
  }
}

const code = (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: { code?: string }) => e.code,
  );

describe('PersistentReplayCache', () => {
  it('refuses an id after a reopen until it expires, and drops expired entries at open', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-replay-'));
    dirs.push(dir);
    const t0 = 1_800_000_000_000;
    await withCache(dir, t0, async (c) => {
      expect(await code(c.checkAndRemember({ id: 'a', exp: t0 + 60_000 }))).toBe('ok');
      expect(await code(c.checkAndRemember({ id: 'b', exp: t0 + 5_000 }))).toBe('ok');
      expect(await code(c.checkAndRemember({ id: 'a', exp: t0 + 60_000 }))).toBe('ERR_SIGNATURE_REPLAYED');
    });
    // Reopened 10 s later: a is still remembered; b has expired (verifyClaim refuses it by its expiry) and is gone.
    await withCache(dir, t0 + 10_000, async (c, db) => {
      expect(await code(c.checkAndRemember({ id: 'a', exp: t0 + 60_000 }))).toBe('ERR_SIGNATURE_REPLAYED');
      const keys = await db.sublevel('replay').keys().all();
      expect(keys.map((k) => k.split('!')[1])).toEqual(['a']);
    });
  });

  it("gives a request's id as an op for the batch of its change, refused again at once and after a reopen", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'palisade-replay-'));
    dirs.push(dir);
    const t0 = 1_800_000_000_000;
    await withCache(dir, t0, async (c, db) => {
      const ops = c.rememberOps({ id: 'start', exp: t0 + 60_000 });
      expect(() => c.rememberOps({ id: 'start', exp: t0 + 60_000 })).toThrow(
        expect.objectContaining({ code: 'ERR_SIGNATURE_REPLAYED' }),
      );
      expect(await db.sublevel('replay').keys().all()).toEqual([]); // nothing written until the caller's batch
      await db.batch(ops as never);
    });
    await withCache(dir, t0 + 1_000, async (c) => {
      expect(await code(c.checkAndRemember({ id: 'start', exp: t0 + 60_000 }))).toBe('ERR_SIGNATURE_REPLAYED');
    });
  });
});
