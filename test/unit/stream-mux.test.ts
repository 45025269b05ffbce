/**
 * Stream multiplexing with credit-based flow control: two muxes wired back to back through the real
 * codec (every frame is encoded and decoded), asynchronous delivery like a socket.
 */
import { describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { decodeEnvelope, encodeEnvelope, type EnvelopeInit } from '#common/codec.js';
import { StreamMux, DEFAULT_STREAM_WINDOW } from '../../agent/tunnel/stream-mux.js';
import type { MuxStream } from '../../agent/tunnel/mux-stream.js';

function pair(onOpen?: (s: MuxStream, target: string) => true | string) {
  const ends: { a?: StreamMux; b?: StreamMux } = {};
  const wire = (to: () => StreamMux) => (f: EnvelopeInit) => {
    const bytes = encodeEnvelope(f);
    setImmediate(() => {
      try {
        to().onFrame(decodeEnvelope(bytes));
      } catch {
        /* session-level violation: tested separately */
      }
    });
  };
  const a = new StreamMux({ send: wire(() => ends.b!), initiator: true });
  const b = new StreamMux({
    send: wire(() => ends.a!),
    initiator: false,
    onOpen:
      onOpen ??
      ((s) => {
        s.pipe(s);
        return true;
      }),
  });
  Object.assign(ends, { a, b });
  return { a, b };
}

async function collect(s: MuxStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  await once(s, 'end');
  return Buffer.concat(chunks);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * Writes `payload` to `s` until `upTo` bytes, as fast as the stream's backpressure lets; returns how much it has
 * written so far.
 */
function keepWriting(s: MuxStream, payload: Buffer, upTo: number): () => number {
  let written = 0;
  const more = () => {
    while (written < upTo && s.write(payload)) written += payload.length;
  };
  s.on('drain', () => {
    written += payload.length;
    more();
  });
  more();
  return () => written;
}

describe('stream mux', () => {
  it('carries bytes intact both ways (echo of 4 MiB)', async () => {
    const { a } = pair();
    const s = a.open('echo');
    const data = randomBytes(4 * 1024 * 1024);
    const got = collect(s);
    s.end(data);
    expect(sha(await got)).toBe(sha(data));
  });

  it('a slow reader holds back only its own stream: buffering stays within one window, the other 99 finish', async () => {
    const accepted: MuxStream[] = [];
    const { a } = pair((s) => {
      accepted.push(s);
      return true;
    });
    const slow = a.open('slow');
    const fast = Array.from({ length: 99 }, (_, i) => a.open(`fast-${i}`));
    const payload = randomBytes(256 * 1024);
    // The slow stream's writer keeps writing 16 MiB; its reader never reads.
    const slowWritten = keepWriting(slow, payload, 16 * 1024 * 1024);
    await new Promise((r) => setTimeout(r, 50));
    // Every fast stream delivers 1 MiB to its acceptor, which reads it all.
    const done = fast.map(async (f) => {
      const data = randomBytes(1024 * 1024);
      f.end(data);
      await new Promise<void>((r) => setImmediate(r));
      const peer = accepted.find((p) => p.id === f.id)!;
      expect(sha(await collect(peer))).toBe(sha(data));
    });
    await Promise.all(done);
    const slowPeer = accepted.find((p) => p.id === slow.id)!;
    slowPeer.pause();
    // Bounded: the receiver holds at most a window; the sender is parked, not buffering megabytes.
    expect(slowPeer.readableLength).toBeLessThanOrEqual(DEFAULT_STREAM_WINDOW);
    expect(slow.writableLength).toBeLessThanOrEqual(2 * payload.length);
    expect(slowWritten()).toBeLessThan(2 * 1024 * 1024);
    // Once it reads, the rest flows.
    slowPeer.resume();
    slowPeer.on('data', () => undefined);
    await new Promise<void>((r) => {
      const t = setInterval(() => {
        if (slowWritten() >= 16 * 1024 * 1024) {
          clearInterval(t);
          r();
        }
      }, 10);
    });
  });

  it('half-close: the peer sees end and can still answer', async () => {
    const { a } = pair((s) => {
      void collect(s).then((got) => s.end(Buffer.from(`got ${got.length}`)));
      return true;
    });
    const s = a.open('half');
    s.end(Buffer.alloc(1000));
    expect((await collect(s)).toString()).toBe('got 1000');
  });

  it('a reset reaches the peer as an error with its code', async () => {
    const peers: MuxStream[] = [];
    const { a } = pair((s) => {
      peers.push(s);
      return true;
    });
    const s = a.open('reset');
    s.write('x');
    await new Promise((r) => setTimeout(r, 20));
    const err = once(peers[0], 'error');
    s.on('error', () => undefined); // the resetting side sees its own error too
    s.destroy(Object.assign(new Error('gone'), { code: 'ERR_TARGET_GONE' }));
    const [e] = await err;
    expect((e as { code: string }).code).toBe('ERR_TARGET_GONE');
  });

  it('a refused open ends the stream with ERR_STREAM_REFUSED and the reason', async () => {
    const { a } = pair(() => 'destination 10.9.9.9:22 is not in the allow-list');
    const s = a.open('10.9.9.9:22');
    const [e] = await once(s, 'error');
    expect((e as { code: string }).code).toBe('ERR_STREAM_REFUSED');
    expect((e as Error).message).toContain('allow-list');
    expect(a.size).toBe(0);
  });

  it('closing the session ends every stream with an error instead of hanging', async () => {
    const { a } = pair();
    const streams = [a.open('x'), a.open('y')];
    const errors = streams.map((s) => once(s, 'error'));
    a.close('engine died');
    for (const e of await Promise.all(errors)) expect((e[0] as { code: string }).code).toBe('ERR_SESSION_CLOSED');
  });

  it('data beyond the granted credit resets that stream (ERR_STREAM_FLOW)', async () => {
    const frames: EnvelopeInit[] = [];
    const b = new StreamMux({
      send: (f) => frames.push(f),
      initiator: false,
      onOpen: (s) => {
        s.on('error', () => undefined);
        return true;
      },
    });
    b.onFrame(
      decodeEnvelope(
        encodeEnvelope({ streamOpen: { streamId: 1, target: 't', initialWindow: DEFAULT_STREAM_WINDOW } }),
      ),
    );
    const big = Buffer.alloc(DEFAULT_STREAM_WINDOW + 1);
    b.onFrame(decodeEnvelope(encodeEnvelope({ streamData: { streamId: 1, data: big } })));
    await new Promise((r) => setImmediate(r));
    expect(frames.some((f) => f.streamClose?.code === 'ERR_STREAM_FLOW')).toBe(true);
    expect(b.size).toBe(0);
  });

  describe('spliced to a sink (attachSink, as to a socket)', () => {
    /** A socket stand-in: keeps what it is given; with `stuck`, takes nothing more after the first write. */
    function sink(stuck = false) {
      const got: Buffer[] = [];
      let writevCalls = 0;
      const w = new Writable({
        write(c: Buffer, _e, cb) {
          got.push(c);
          if (!stuck || got.length === 1) cb();
        },
        writev(chunks, cb) {
          writevCalls++;
          for (const { chunk } of chunks) got.push(chunk as Buffer);
          cb();
        },
      });
      return { w, got, writev: () => writevCalls, finished: once(w, 'finish') };
    }

    it('data and a half-close that arrived before the sink reach it first, in order, then the rest', async () => {
      const peers: MuxStream[] = [];
      const { a } = pair((s) => {
        peers.push(s);
        return true;
      });
      const s = a.open('late-dial');
      const early = randomBytes(100_000);
      s.end(early);
      await new Promise((r) => setTimeout(r, 20)); // the peer holds it all, and the end, before its destination answers
      const k = sink();
      peers[0].attachSink(k.w);
      await k.finished;
      expect(sha(Buffer.concat(k.got))).toBe(sha(early));
    });

    it("a record's parts go to the sink in one gathered write", () => {
      const b = new StreamMux({
        send: () => undefined,
        initiator: false,
        onOpen: (s) => {
          s.attachSink(k.w);
          return true;
        },
      });
      const k = sink();
      b.onFrame(
        decodeEnvelope(
          encodeEnvelope({ streamOpen: { streamId: 1, target: 't', initialWindow: DEFAULT_STREAM_WINDOW } }),
        ),
      );
      const parts = [randomBytes(1000), randomBytes(2000), randomBytes(3000)];
      b.onData(1, parts);
      expect(k.writev()).toBe(1);
      expect(Buffer.concat(k.got).equals(Buffer.concat(parts))).toBe(true);
    });

    it('a sink that stops taking data stops the credit: it holds at most a window, the writer is parked', async () => {
      const k = sink(true);
      const { a } = pair((s) => {
        s.attachSink(k.w);
        return true;
      });
      const s = a.open('stuck');
      const payload = randomBytes(64 * 1024);
      const written = keepWriting(s, payload, 16 * 1024 * 1024);
      await new Promise((r) => setTimeout(r, 200));
      expect(k.w.writableLength).toBeLessThanOrEqual(DEFAULT_STREAM_WINDOW);
      expect(written()).toBeLessThan(2 * 1024 * 1024);
    });
  });

  it('an open in the wrong id space is a session-level protocol error', () => {
    const b = new StreamMux({ send: () => undefined, initiator: false, onOpen: () => true });
    expect(() =>
      b.onFrame(
        decodeEnvelope(
          encodeEnvelope({ streamOpen: { streamId: 2, target: 't', initialWindow: DEFAULT_STREAM_WINDOW } }),
        ),
      ),
    ).toThrow(expect.objectContaining({ code: 'ERR_STREAM_ID' }));
  });
});
