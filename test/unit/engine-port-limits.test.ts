/**
 * The host engine port's protections before any authentication (agent/host): the per-address rate limit
 * (a burst, then one attempt per refill interval; bounded memory that a flood from many sources cannot
 * turn into a fresh burst for an address that keeps knocking) and the refusal summary (one log line per
 * interval, and a flood that stops is still written). Clock injected or faked: no waiting.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AddressRateLimit } from '#common/address-rate-limit.js';
import { RefusalSummary } from '#common/refusal-summary.js';

function limiter(maxAddresses = 1_000) {
  let now = 5_000_000;
  const l = new AddressRateLimit({ burst: 30, refillMs: 2_000, maxAddresses }, () => now);
  return {
    l,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const takes = (l: AddressRateLimit, address: string, n: number) =>
  Array.from({ length: n }, () => l.take(address)).filter(Boolean).length;

describe('engine port rate limit', () => {
  it('allows a burst of 30 per address, then one attempt per 2 s; addresses are counted apart', () => {
    const { l, advance } = limiter();
    expect(takes(l, '198.51.100.7', 40)).toBe(30);
    expect(takes(l, '198.51.100.8', 40)).toBe(30);
    advance(1_999);
    expect(l.take('198.51.100.7')).toBe(false);
    advance(1);
    expect(l.take('198.51.100.7')).toBe(true);
    expect(l.take('198.51.100.7')).toBe(false);
    advance(60_000);
    expect(takes(l, '198.51.100.7', 40)).toBe(30); // refilled, never above the burst
  });

  it('counts an IPv6 /64 as one source and a mapped IPv4 as its IPv4: rotating addresses earns no fresh burst', () => {
    const { l } = limiter();
    expect(
      Array.from({ length: 40 }, (_, i) => l.take(`2001:db8:7:1::${(i + 1).toString(16)}`)).filter(Boolean).length,
    ).toBe(30);
    expect(l.take('2001:db8:7:2::1')).toBe(true); // the next /64 is another source
    expect(takes(l, '198.51.100.9', 20) + takes(l, '::ffff:198.51.100.9', 20)).toBe(30);
  });

  it('an address that keeps knocking stays throttled however many other sources appear, and memory stays bounded', () => {
    const { l, advance } = limiter(1_000);
    expect(takes(l, '203.0.113.66', 31)).toBe(30);
    for (let i = 0; i < 20_000; i++) {
      l.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      // The flooder keeps trying (more often than its refill): it must never get a fresh burst.
      if (i % 100 === 0) {
        advance(1);
        expect(l.take('203.0.113.66')).toBe(false);
      }
      expect(l.tracked).toBeLessThanOrEqual(1_000);
    }
    expect(takes(l, '203.0.113.66', 5)).toBe(0);
  });

  it('forgets refilled addresses first: a quiet one comes back with its full burst', () => {
    const { l, advance } = limiter(100);
    expect(takes(l, '192.0.2.1', 30)).toBe(30);
    advance(120_000);
    for (let i = 0; i < 500; i++) l.take(`10.0.${i >> 8}.${i & 255}`);
    expect(takes(l, '192.0.2.1', 40)).toBe(30);
  });
});

describe('engine port refusal summary', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('writes the first refusal at once, the rest of a flood at the end of its interval (without another refusal), and nothing when quiet', () => {
    vi.useFakeTimers();
    const lines: Record<string, number>[] = [];
    const s = new RefusalSummary(10_000, (c) => lines.push(c));
    s.count('ERR_DIRECT_RATE');
    expect(lines).toEqual([{ ERR_DIRECT_RATE: 1 }]);
    for (let i = 0; i < 9; i++) s.count('ERR_DIRECT_RATE');
    s.count('ERR_DIRECT_PREAMBLE');
    expect(lines).toHaveLength(1); // one line per interval, not one per connection
    vi.advanceTimersByTime(9_999);
    expect(lines).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(lines).toEqual([{ ERR_DIRECT_RATE: 1 }, { ERR_DIRECT_RATE: 9, ERR_DIRECT_PREAMBLE: 1 }]);
    vi.advanceTimersByTime(60_000);
    expect(lines).toHaveLength(2);
  });

  it('flush writes what is counted (at close) and cancels the timer', () => {
    vi.useFakeTimers();
    const lines: Record<string, number>[] = [];
    const s = new RefusalSummary(10_000, (c) => lines.push(c));
    s.count('ERR_DIRECT_BUSY');
    s.count('ERR_DIRECT_BUSY');
    s.flush();
    expect(lines).toEqual([{ ERR_DIRECT_BUSY: 1 }, { ERR_DIRECT_BUSY: 1 }]);
    vi.advanceTimersByTime(20_000);
    expect(lines).toHaveLength(2);
    expect(vi.getTimerCount()).toBe(0);
  });
});
