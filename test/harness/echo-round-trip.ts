/**
 * A user of a tunnel that must keep working while something else is under attack: round trips of random
 * bytes through a tunnel listener in front of an echo server (tunnel-hold.ts has the server), once or in a
 * loop. Each round trip checks that what came back is exactly what went out. Not a load generator: the
 * loop pauses between round trips so it measures availability, not throughput.
 */
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';

/** The pause between two round trips of `echoLoop`. */
const LOOP_PAUSE_MS = 250;

/** One round trip of `bytes` random bytes through the tunnel listening on `port`. */
export function echoOnce(port: number, bytes = 64 * 1024, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const sent = randomBytes(bytes);
    const chunks: Buffer[] = [];
    let got = 0;
    const s = connect(port, '127.0.0.1', () => s.write(sent));
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`echo through port ${port}: ${got} of ${bytes} bytes within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got < bytes) return;
      clearTimeout(timer);
      s.destroy();
      if (Buffer.concat(chunks).equals(sent)) resolve();
      else reject(new Error(`echo through port ${port} came back altered`));
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * Round trips through the tunnel on `port`, one after another, until `stop()`, which resolves with how many
 * succeeded; any failure ends the loop and rejects `stop()`.
 */
export function echoLoop(port: number): { stop(): Promise<number> } {
  let running = true;
  let ok = 0;
  const loop = (async () => {
    while (running) {
      await echoOnce(port);
      ok++;
      await new Promise((r) => setTimeout(r, LOOP_PAUSE_MS));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return ok;
    },
  };
}
