/** The tenant's guard against replayed engine hellos (agent/tenant/tunnels/hello-replay-guard.ts), on a fake clock. */
import { describe, expect, it } from 'vitest';
import { HelloReplayGuard } from '../../agent/tenant/tunnels/hello-replay-guard.js';
import { HELLO_MAX_SKEW_MS } from '../../agent/tunnel/tunnel-crypto.js';

describe('hello replay guard', () => {
  it('accepts a hello once, and forgets it only once a hello that old is stale anyway', () => {
    let now = 1_800_000_000_000;
    const guard = new HelloReplayGuard(() => now);
    const a = Buffer.alloc(32, 1),
      b = Buffer.alloc(32, 2);
    guard.remember(a);
    expect(() => guard.remember(Buffer.from(a))).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_HELLO_REPLAY' }));
    now += 2 * HELLO_MAX_SKEW_MS; // still remembered: the hello could still be fresh from a clock ahead of ours
    expect(() => guard.remember(a)).toThrow(expect.objectContaining({ code: 'ERR_TUNNEL_HELLO_REPLAY' }));
    now += 1;
    guard.remember(b); // a later hello sweeps what has expired
    expect(guard.size).toBe(1);
  });
});
