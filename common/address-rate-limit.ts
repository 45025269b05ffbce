/**
 * A token bucket per remote address, for a door that anyone can knock on (the host's engine port): a
 * burst of `burst` attempts, then one every `refillMs`. Memory stays bounded however many addresses
 * knock. Sources are counted as the failure throttle counts them (common/ip-address.ts addressKey): an
 * IPv6 /64 is one source, so rotating addresses inside it earns no fresh burst. Pure: the clock is
 * injected, no timers.
 */
import { addressKey } from './ip-address.js';

export interface AddressRateLimitOptions {
  burst: number;
  refillMs: number;
  /** Addresses tracked at once; beyond that the refilled, then the least recently seen, are forgotten. */
  maxAddresses: number;
}

export class AddressRateLimit {
  /** In order of last attempt (an entry is re-inserted on each): the oldest come first. */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly o: AddressRateLimitOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether this address may make an attempt now (and counts it). */
  take(remoteAddress: string): boolean {
    const address = addressKey(remoteAddress);
    const now = this.now();
    let b = this.buckets.get(address);
    if (b) this.buckets.delete(address);
    else {
      if (this.buckets.size >= this.o.maxAddresses) this.makeRoom(now);
      b = { tokens: this.o.burst, at: now };
    }
    this.buckets.set(address, b);
    b.tokens = Math.min(this.o.burst, b.tokens + (now - b.at) / this.o.refillMs);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get tracked(): number {
    return this.buckets.size;
  }

  /**
   * Frees a tenth of the room at once (not a scan per new address): first the addresses whose burst has
   * refilled (as good as new), then the least recently seen. Forgetting them all at once would give an
   * address that keeps knocking a fresh burst whenever enough other sources appeared.
   */
  private makeRoom(now: number): void {
    for (const [address, b] of this.buckets) {
      if (b.tokens + (now - b.at) / this.o.refillMs >= this.o.burst) this.buckets.delete(address);
    }
    for (const address of this.buckets.keys()) {
      if (this.buckets.size < this.o.maxAddresses * 0.9) break;
      this.buckets.delete(address);
    }
  }
}
