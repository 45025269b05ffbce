/**
 * Failed-authentication throttle (main/auth-throttle.ts): an address is blocked after its limit of
 * failures in a window and only for the rest of that window; addresses are counted apart; memory stays
 * bounded however many addresses fail. The clock is injected: no timers.
 */
import { describe, expect, it } from 'vitest';
import { AuthFailureThrottle } from '../../main/auth-throttle.js';

function throttle(maxFailures: number, maxAddresses = 100) {
  let now = 1_000_000;
  const t = new AuthFailureThrottle({ maxFailures, windowMs: 60_000, maxAddresses }, () => now);
  return { t, advance: (ms: number) => { now += ms; } };
}

describe('auth failure throttle', () => {
  it('blocks an address exactly at its limit, says so once, and for the rest of the window only', () => {
    const { t, advance } = throttle(3);
    expect(t.fail('a')).toBe(false);
    expect(t.fail('a')).toBe(false);
    expect(t.blockedFor('a')).toBe(0);
    expect(t.fail('a')).toBe(true); // this one blocks: audited once
    expect(t.fail('a')).toBe(false); // later ones are not announced again
    advance(20_000);
    expect(t.blockedFor('a')).toBe(40_000);
    advance(40_000);
    expect(t.blockedFor('a')).toBe(0); // a new window
    expect(t.fail('a')).toBe(false);
  });

  it('counts each address apart', () => {
    const { t } = throttle(2);
    t.fail('a'); t.fail('a');
    expect(t.blockedFor('a')).toBeGreaterThan(0);
    expect(t.blockedFor('b')).toBe(0);
    expect(t.fail('b')).toBe(false);
  });

  it('tracks at most maxAddresses, forgetting finished windows first, then the oldest', () => {
    const { t, advance } = throttle(2, 10);
    for (let i = 0; i < 10; i++) t.fail(`old${i}`);
    advance(61_000); // every old window is over
    t.fail('x'); t.fail('x');
    expect(t.blockedFor('x')).toBeGreaterThan(0);
    for (let i = 0; i < 1000; i++) { t.fail(`flood${i}`); t.fail(`flood${i}`); }
    expect((t as unknown as { windows: Map<string, unknown> }).windows.size).toBeLessThanOrEqual(10);
    // The newest addresses are still remembered and blocked.
    expect(t.blockedFor('flood999')).toBeGreaterThan(0);
  });
});
