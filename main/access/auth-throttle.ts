/**
 * Failed authentications per source address. Past `maxFailures` in a window, an address's further
 * failures are answered 429 without being checked downstream or audited one by one: a flood of forged
 * keys must not cost a signed relay round trip and a replay-cache slot in a tenant per attempt (tenant
 * keys are checked by their tenant, not main), nor an audit write each. Valid main keys from a blocked
 * address still work (main checks those itself, cheaply); tenant keys from it wait out the window,
 * since main cannot tell a good one from a forged one without asking the tenant.
 *
 * A source is an address's `addressKey` (common/ip-address.ts): an IPv6 /64 counts as one, so a host
 * cannot rotate through the addresses of its prefix for a fresh budget each. The class takes the key
 * itself, not its callers, so every door that counts into it counts the same way.
 *
 * The agent gateway counts into the same windows: refused enrolments (`/enrol/v1`) and refused
 * `/agent/v1` connections (no, unknown or revoked certificate, a copied one). A blocked address gets 429
 * there too, before any frame is read; agents with a valid certificate are never held back by it.
 */
import { RateLimitedError } from '#common/errors.js';
import { addressKey } from '#common/ip-address.js';
import type { AuditLog } from './audit.js';
import type { AuthDoor, MainMetrics } from '../metrics.js';

export interface ThrottleOptions {
  /** Failures an address may have per window before it is blocked for the rest of it. */
  maxFailures: number;
  windowMs: number;
  /** Sources (addressKey) tracked at once: past this, finished windows go first, then the oldest. */
  maxAddresses: number;
}

export const DEFAULT_THROTTLE: ThrottleOptions = { maxFailures: 120, windowMs: 60_000, maxAddresses: 10_000 };

interface Window {
  start: number;
  failures: number;
}

export class AuthFailureThrottle {
  private readonly windows = new Map<string, Window>();

  constructor(
    private readonly o: ThrottleOptions = DEFAULT_THROTTLE,
    private readonly now: () => number = Date.now,
    private readonly metrics?: MainMetrics,
  ) {}

  /** How long (ms) this address (its source: an IPv6 address's /64) stays blocked; 0 if it is not. */
  blockedFor(address: string): number {
    const w = this.current(addressKey(address));
    return w && w.failures >= this.o.maxFailures ? Math.max(1, w.start + this.o.windowMs - this.now()) : 0;
  }

  /**
   * Counts a failure at `door` against the address's source; true exactly when this one blocks it (so the block is
   * audited once).
   */
  fail(address: string, door: AuthDoor): boolean {
    this.metrics?.authFailures.inc({ door });
    const key = addressKey(address);
    let w = this.current(key);
    if (!w) {
      this.makeRoom();
      w = { start: this.now(), failures: 0 };
      this.windows.set(key, w);
    }
    w.failures++;
    return w.failures === this.o.maxFailures;
  }

  private current(key: string): Window | undefined {
    const w = this.windows.get(key);
    if (w && this.now() - w.start >= this.o.windowMs) {
      this.windows.delete(key);
      return undefined;
    }
    return w;
  }

  private makeRoom(): void {
    if (this.windows.size < this.o.maxAddresses) return;
    const now = this.now();
    for (const [a, w] of this.windows) if (now - w.start >= this.o.windowMs) this.windows.delete(a);
    // Still full: forget the oldest (insertion order). An attacker with many addresses gets fewer
    // attempts remembered, never more memory.
    for (const a of this.windows.keys()) {
      if (this.windows.size < this.o.maxAddresses) break;
      this.windows.delete(a);
    }
  }
}

export function tooManyFailures(retryAfterMs: number): RateLimitedError {
  return new RateLimitedError(
    'ERR_AUTH_THROTTLED',
    `too many failed authentications from this address; retry in ${Math.ceil(retryAfterMs / 1000)} s`,
    { retryAfterMs },
  );
}

/**
 * One line when a source is blocked (not one per refused attempt): the target is what is blocked (an
 * IPv6 /64, say), `remote` the address whose failure blocked it; `endpoint` says where it failed last.
 */
export function auditThrottled(audit: AuditLog, remote: string, endpoint?: string): Promise<void> {
  return audit.record({
    actor: 'anonymous',
    action: 'auth.throttle',
    target: addressKey(remote),
    outcome: 'denied',
    remote,
    ...(endpoint ? { detail: { endpoint } } : {}),
  });
}
