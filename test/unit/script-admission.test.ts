/**
 * Who may start a script in a tenant (agent/tenant/scripts/script-admission.ts): by count and by memoryMb together,
 * in FIFO order for callers that wait, for at most SCRIPT_QUEUE_WAIT_MS, and never past SCRIPT_QUEUE_MAX waiting.
 * Fake timers; no I/O.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  admitScript,
  SCRIPT_MAX_CONCURRENT,
  SCRIPT_MEMORY_BUDGET_MB,
  SCRIPT_QUEUE_MAX,
  SCRIPT_QUEUE_WAIT_MS,
  scriptSlots,
} from '../../agent/tenant/scripts/script-admission.js';

const releases: (() => void)[] = [];
const take = async (mb: number, wait = false) => {
  const release = await admitScript(mb, wait);
  releases.push(release);
  return release;
};

beforeEach(() => void vi.useFakeTimers());
afterEach(() => {
  releases.splice(0).forEach((r) => r());
  vi.useRealTimers();
});

describe('script admission', () => {
  it('admits up to SCRIPT_MAX_CONCURRENT runs, then refuses a caller that does not wait', async () => {
    for (let i = 0; i < SCRIPT_MAX_CONCURRENT; i++) await take(8);
    await expect(admitScript(8, false)).rejects.toMatchObject({ code: 'ERR_SCRIPT_BUSY' });
    releases.pop()!();
    await take(8);
    expect(scriptSlots()).toEqual({ running: SCRIPT_MAX_CONCURRENT, memoryMb: 8 * SCRIPT_MAX_CONCURRENT, queued: 0 });
  });

  it('admits by memoryMb together, in FIFO order: a small run does not overtake a big one waiting', async () => {
    const first = await take(SCRIPT_MEMORY_BUDGET_MB / 2);
    await take(SCRIPT_MEMORY_BUDGET_MB / 2);
    const order: string[] = [];
    const big = take(SCRIPT_MEMORY_BUDGET_MB, true).then(() => order.push('big'));
    const small = take(8, true).then(() => order.push('small'));
    first(); // room for the small one, but the big one is ahead of it
    for (let i = 0; i < 10; i++) await Promise.resolve(); // what an admission would resolve, it has by now
    expect(order).toEqual([]);
    expect(scriptSlots().queued).toBe(2);
    releases[1](); // all free: the big one goes, the small one waits for it
    await big;
    expect(order).toEqual(['big']);
    releases[2]();
    await small;
    expect(order).toEqual(['big', 'small']);
  });

  it('refuses a waiting caller after SCRIPT_QUEUE_WAIT_MS, and more than SCRIPT_QUEUE_MAX waiting', async () => {
    await take(SCRIPT_MEMORY_BUDGET_MB);
    const waits = Array.from({ length: SCRIPT_QUEUE_MAX }, () => admitScript(8, true));
    waits.forEach((w) => w.catch(() => undefined));
    await expect(admitScript(8, true)).rejects.toMatchObject({ code: 'ERR_SCRIPT_BUSY' });
    vi.advanceTimersByTime(SCRIPT_QUEUE_WAIT_MS);
    await expect(waits[0]).rejects.toMatchObject({
      code: 'ERR_SCRIPT_BUSY',
      message: `waited ${SCRIPT_QUEUE_WAIT_MS} ms for a slot; retry shortly`,
    });
    expect(scriptSlots().queued).toBe(0);
  });
});
