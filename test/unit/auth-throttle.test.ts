/**
 * Failed-authentication throttle (main/access/auth-throttle.ts): an address is blocked after its limit of
 * failures in a window and only for the rest of that window; sources are counted apart, an IPv6 /64 being
 * one source; memory stays bounded however many addresses fail. The clock is injected: no timers.
 */
import { describe, expect, it } from 'vitest';
import { AuthFailureThrottle, auditThrottled } from '../../main/access/auth-throttle.js';
import type { AuditLog } from '../../main/access/audit.js';
import type { AuditRecord } from '../../main/registry.js';

function throttle(maxFailures: number, maxAddresses = 100) {
  let now = 1_000_000;
  const t = new AuthFailureThrottle({ maxFailures, windowMs: 60_000, maxAddresses }, () => now);
  return {
    t,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('auth failure throttle', () => {
  it('blocks an address exactly at its limit, says so once, and for the rest of the window only', () => {
    const { t, advance } = throttle(3);
    expect(t.fail('a', 'api')).toBe(false);
    expect(t.fail('a', 'api')).toBe(false);
    expect(t.blockedFor('a')).toBe(0);
    expect(t.fail('a', 'api')).toBe(true); // this one blocks: audited once
    expect(t.fail('a', 'api')).toBe(false); // later ones are not announced again
    advance(20_000);
    expect(t.blockedFor('a')).toBe(40_000);
    advance(40_000);
    expect(t.blockedFor('a')).toBe(0); // a new window
    expect(t.fail('a', 'api')).toBe(false);
  });

  it('counts each address apart', () => {
    const { t } = throttle(2);
    t.fail('a', 'api');
    t.fail('a', 'api');
    expect(t.blockedFor('a')).toBeGreaterThan(0);
    expect(t.blockedFor('b')).toBe(0);
    expect(t.fail('b', 'api')).toBe(false);
  });

  it('counts the addresses of one IPv6 /64 as one source, so rotating inside it gains nothing', () => {
    const { t } = throttle(3);
    expect(t.fail('2001:db8:1:2::a', 'api')).toBe(false);
    expect(t.fail('2001:db8:1:2:ffff:ffff:ffff:ffff', 'api')).toBe(false);
    expect(t.fail('2001:0db8:0001:0002:0000:0000:0000:000b', 'api')).toBe(true); // the third failure of the /64 blocks it
    expect(t.blockedFor('2001:db8:1:2::c')).toBeGreaterThan(0); // an address of that /64 not seen before
    expect(t.blockedFor('2001:db8:1:3::a')).toBe(0); // the next /64 is another source
    expect(t.fail('2001:db8:1:3::a', 'api')).toBe(false);
  });

  it('counts an IPv4 peer the same whether the socket reports it plain or IPv4-mapped', () => {
    const { t } = throttle(2);
    t.fail('::ffff:192.0.2.1', 'api');
    expect(t.fail('192.0.2.1', 'api')).toBe(true);
    expect(t.blockedFor('::ffff:192.0.2.1')).toBeGreaterThan(0);
    expect(t.blockedFor('192.0.2.2')).toBe(0);
  });

  it('tracks at most maxAddresses, forgetting finished windows first, then the oldest', () => {
    const { t, advance } = throttle(2, 10);
    for (let i = 0; i < 10; i++) t.fail(`old${i}`, 'api');
    advance(61_000); // every old window is over
    t.fail('x', 'api');
    t.fail('x', 'api');
    expect(t.blockedFor('x')).toBeGreaterThan(0);
    for (let i = 0; i < 1000; i++) {
      t.fail(`flood${i}`, 'api');
      t.fail(`flood${i}`, 'api');
    }
    expect((t as unknown as { windows: Map<string, unknown> }).windows.size).toBeLessThanOrEqual(10);
    // The newest addresses are still remembered and blocked.
    expect(t.blockedFor('flood999')).toBeGreaterThan(0);
  });

  it('audits a block against the source it blocks, and the address that tipped it', async () => {
    const rows: Omit<AuditRecord, 'at'>[] = [];
    const audit = {
      record: async (r: Omit<AuditRecord, 'at'>) => {
        rows.push(r);
      },
    } as unknown as AuditLog;
    await auditThrottled(audit, '2001:db8:1:2::5', '/enrol/v1');
    expect(rows).toEqual([
      {
        actor: 'anonymous',
        action: 'auth.throttle',
        target: '2001:db8:1:2::/64',
        outcome: 'denied',
        remote: '2001:db8:1:2::5',
        detail: { endpoint: '/enrol/v1' },
      },
    ]);
  });
});
