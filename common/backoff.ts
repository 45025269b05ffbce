/**
 * Capped exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"):
 * sleep = random(0, min(cap, base · 2^attempt)). Full jitter spreads a reconnect storm after a main
 * restart evenly over the window instead of in synchronized waves.
 */
export interface BackoffOptions {
  baseMs?: number;
  capMs?: number;
  random?: () => number;
}

export const RECONNECT_BASE_MS = 250;
/** 30 s: an agent offline longer than that is noticed within a heartbeat or two of main coming back. */
export const RECONNECT_CAP_MS = 30_000;

export class Backoff {
  private attempt = 0;
  private readonly baseMs: number;
  private readonly capMs: number;
  private readonly random: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? RECONNECT_BASE_MS;
    this.capMs = opts.capMs ?? RECONNECT_CAP_MS;
    this.random = opts.random ?? Math.random;
  }

  /** Delay before the next attempt; a server's retry-after hint wins when it is longer. */
  next(retryAfterMs?: number): number {
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    const jittered = Math.floor(this.random() * ceiling);
    return retryAfterMs !== undefined && retryAfterMs > jittered ? retryAfterMs : jittered;
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
