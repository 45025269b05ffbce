/**
 * Per-account back-off for console sign-in (signin.ts). The per-address throttle (auth-throttle.ts) does not
 * stop guesses spread over many addresses, and a process-wide hash gate alone lets a few addresses make every
 * sign-in wait: so failures (wrong password or TOTP code) also count per account name. After FREE_FAILURES in
 * a row the account waits 2^n s before the next attempt is even hashed (n = failures beyond the free ones),
 * at most 15 minutes; a success clears it. Unknown names count the same, so the answer tells nothing.
 */

/** Failures in a row an account gets without waiting. */
export const FREE_FAILURES = 4;
/** The longest wait. */
export const MAX_BACKOFF_MS = 15 * 60_000;
/** A count this old without a new failure starts again. */
const FORGET_MS = 60 * 60_000;
/** Names remembered at most (the oldest is forgotten first), so unknown names cannot fill memory. */
const MAX_ACCOUNTS = 10_000;

interface Failures {
  count: number;
  lastAt: number;
}

export class AccountBackoff {
  private readonly failures = new Map<string, Failures>();

  constructor(private readonly now: () => number = Date.now) {}

  /** How long (ms) the account must still wait before an attempt; 0 if it may try now. */
  waitFor(name: string): number {
    const f = this.current(name);
    if (!f || f.count <= FREE_FAILURES) return 0;
    const wait = Math.min(2 ** (f.count - FREE_FAILURES) * 1000, MAX_BACKOFF_MS);
    return Math.max(0, f.lastAt + wait - this.now());
  }

  /** Counts a failed attempt (wrong password or code). */
  fail(name: string): void {
    const count = (this.current(name)?.count ?? 0) + 1;
    this.failures.delete(name); // re-inserted last: the Map's order is oldest failure first
    this.failures.set(name, { count, lastAt: this.now() });
    if (this.failures.size > MAX_ACCOUNTS) this.failures.delete(this.failures.keys().next().value!);
  }

  /** A successful sign-in clears the account's count. */
  succeed(name: string): void {
    this.failures.delete(name);
  }

  private current(name: string): Failures | undefined {
    const f = this.failures.get(name);
    if (f && this.now() - f.lastAt > FORGET_MS) {
      this.failures.delete(name);
      return undefined;
    }
    return f;
  }
}
