/**
 * Reconnect backoff (common/backoff.ts): full jitter in [0, min(cap, base·2^n)), the cap, reset, and a
 * server's retry-after hint. Randomness is injected, so every expectation is exact. Pure: no timers, no I/O.
 */
import { describe, expect, it } from 'vitest';
import { Backoff, RECONNECT_BASE_MS, RECONNECT_CAP_MS } from '#common/backoff.js';
import { seeded } from '../harness/seeded.js';

const ceiling = (base: number, cap: number, n: number) => Math.min(cap, base * 2 ** n);

describe('backoff', () => {
  it('each delay lies in [0, min(cap, base·2^n)) for attempt n', () => {
    const base = 100,
      cap = 5000;
    const random = seeded(42);
    const b = new Backoff({ baseMs: base, capMs: cap, random });
    const seen: number[] = [];
    for (let n = 0; n < 200; n++) {
      const d = b.next();
      seen.push(d);
      expect(Number.isInteger(d), `attempt ${n}`).toBe(true);
      expect(d, `attempt ${n}`).toBeGreaterThanOrEqual(0);
      expect(d, `attempt ${n}`).toBeLessThan(ceiling(base, cap, n));
    }
    // Jitter really spreads: once capped, delays cover most of [0, cap), not one value.
    const capped = seen.slice(10);
    expect(Math.min(...capped)).toBeLessThan(cap * 0.1);
    expect(Math.max(...capped)).toBeGreaterThan(cap * 0.9);
  });

  it('the delay is the random fraction of the ceiling: extremes of random() give 0 and just under the ceiling', () => {
    const low = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0 });
    expect([0, 1, 2, 3, 4].map(() => low.next())).toEqual([0, 0, 0, 0, 0]);
    const high = new Backoff({ baseMs: 100, capMs: 1000, random: () => 1 - Number.EPSILON });
    expect([0, 1, 2, 3, 4, 5, 6].map(() => high.next())).toEqual([99, 199, 399, 799, 999, 999, 999]);
    const half = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.5 });
    expect([0, 1, 2, 3, 4].map(() => half.next())).toEqual([50, 100, 200, 400, 500]);
  });

  it('the cap holds however many attempts fail', () => {
    const b = new Backoff({ baseMs: 250, capMs: 30_000, random: () => 1 - Number.EPSILON });
    let last = 0;
    for (let n = 0; n < 2000; n++) last = b.next();
    expect(last).toBe(29_999);
    expect(b.attempts).toBe(2000);
  });

  it('defaults: base 250 ms, cap 30 s', () => {
    expect(RECONNECT_BASE_MS).toBe(250);
    expect(RECONNECT_CAP_MS).toBe(30_000);
    const b = new Backoff({ random: () => 1 - Number.EPSILON });
    expect(b.next()).toBe(RECONNECT_BASE_MS - 1);
    for (let n = 1; n < 40; n++) b.next();
    expect(b.next()).toBe(RECONNECT_CAP_MS - 1);
  });

  it('reset starts the sequence over', () => {
    const b = new Backoff({ baseMs: 100, capMs: 10_000, random: () => 1 - Number.EPSILON });
    expect([b.next(), b.next(), b.next()]).toEqual([99, 199, 399]);
    expect(b.attempts).toBe(3);
    b.reset();
    expect(b.attempts).toBe(0);
    expect([b.next(), b.next()]).toEqual([99, 199]);
  });

  it("a server's retry-after hint wins when it is longer than the jittered delay, and only then", () => {
    const b = new Backoff({ baseMs: 100, capMs: 1000, random: () => 0.5 });
    expect(b.next(5000)).toBe(5000); // ceiling 100 → 50; the hint wins, even beyond the cap
    expect(b.next(10)).toBe(100); // ceiling 200 → 100 > 10
    expect(b.next(200)).toBe(200); // ceiling 400 → 200 = hint
    expect(b.next(0)).toBe(400); // a zero hint ("none") never shortens the delay
    // A hint still counts as an attempt: the exponent keeps growing.
    expect(b.attempts).toBe(4);
    expect(b.next()).toBe(500);
  });
});
