/**
 * A hello opens only once: the ephemeral keys of the engine hellos this tenant accepted, each kept until
 * a hello that old would be refused as stale anyway (HELLO_MAX_SKEW_MS either way), so a captured hello
 * replayed on either path can neither open a session nor unseat the live one. Pure (the clock is passed
 * in); not the check that a hello is fresh and genuine (tunnel-crypto.ts tenantAccept).
 */
import { AccessDeniedError } from '#common/errors.js';
import { HELLO_MAX_SKEW_MS } from '../../tunnel/tunnel-crypto.js';

export class HelloReplayGuard {
  /** Ephemeral key (base64) → until when it is worth remembering (unix ms). */
  private readonly seen = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Remembers an accepted hello's ephemeral key; throws ERR_TUNNEL_HELLO_REPLAY if it was accepted before. */
  remember(engineEph: Uint8Array): void {
    const eph = Buffer.from(engineEph).toString('base64');
    const now = this.now();
    if (this.seen.has(eph))
      throw new AccessDeniedError('ERR_TUNNEL_HELLO_REPLAY', 'this engine hello was already used');
    for (const [k, t] of this.seen) if (t < now) this.seen.delete(k);
    this.seen.set(eph, now + 2 * HELLO_MAX_SKEW_MS);
  }

  get size(): number {
    return this.seen.size;
  }
}
