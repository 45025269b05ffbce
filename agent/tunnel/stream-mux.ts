/**
 * Streams multiplexed over one message channel with credit-based flow control (as SSH channels and
 * HTTP/2 streams): each side may send only as many bytes as the receiver has granted, and grants more
 * only as its reader consumes, so a slow reader never makes the sender buffer without bound.
 * Transport-agnostic: frames go out through `send` and come in through `onFrame`; the tunnel layer
 * (agent/tunnel/) decides what carries them and what a stream connects to. This module is the
 * multiplexer (ids, opening, refusing, the carrier's backpressure); one stream is a MuxStream (mux-stream.ts).
 */
import type { EnvelopeInit, Envelope } from '#common/codec.js';
import { type CodeOf } from '#common/error-codes.js';
import { ProtocolError, UnavailableError } from '#common/errors.js';
import { MuxStream, type StreamOwner } from './mux-stream.js';

/**
 * 384 KiB per stream: three full records, so the sender never idles for a grant's round trip (which
 * crosses tenant, host, main and engine); 256 KiB capped the tunnel benchmark. Not more: each busy
 * stream may hold this much in its sender's WebSocket queue, and test/e2e/tunnel-flow bounds RSS with
 * 100 streams (512 KiB measured +30 MiB there; 768 KiB failed it).
 */
export const DEFAULT_STREAM_WINDOW = 384 * 1024;
/**
 * Largest StreamData payload. Writes are coalesced up to this size (see MuxStream.out):
 * fewer, larger sealed records, each of which costs an Envelope encode, a seal, an IPC message and two
 * WebSocket frames on its way. Well under the 1 MiB frame limit.
 */
export const MAX_STREAM_CHUNK = 128 * 1024;
export const DEFAULT_MAX_STREAMS = 1024;
/**
 * How far a stream's receive window may grow on a carrier that bounds its own send buffer (the direct
 * path): 384 KiB per round trip caps a loopback tunnel at ~60 MB/s once two busy processes on two
 * cores add scheduling delays to each credit round trip. 2 MiB, as ssh's channel window: a paused
 * reader may have grown its window while kernel buffers still took its data (tunnel-flow bounds that).
 */
export const DIRECT_MAX_STREAM_WINDOW = 2 * 1024 * 1024;
/**
 * Largest StreamData payload on the direct path, whose records carry no WebSocket or IPC frame limit but
 * the 1 MiB record bound: against 128 KiB, 512 KiB records took the tunnel benchmark from 223 to 233 MB/s
 * up and 181 to 209 down (medians of 3 and 5 runs), tenant + engine CPU per MB ~10% lower (fewer seals,
 * gathered writes, flushes and credit updates per byte). A stream may then hold up to this much written
 * but unsent (see MuxStream.out).
 */
export const DIRECT_MAX_STREAM_CHUNK = 512 * 1024;

export interface MuxOptions {
  send(frame: EnvelopeInit): void;
  /** Which half of the id space this side allocates from: initiators use odd ids, acceptors even. */
  initiator: boolean;
  window?: number;
  /** Largest StreamData payload, and how much a stream coalesces before its writer waits; default MAX_STREAM_CHUNK. */
  maxChunk?: number;
  /**
   * Receive windows start at `window` and double, up to this, while the sender keeps running out of
   * credit and our reader keeps up (a reader that lags never grows its window). Default: no growth.
   */
  maxWindow?: number;
  /**
   * Sends stream data given as parts without joining them (a carrier with gathered writes); default: one
   * StreamData frame via `send`. `disposable`: the parts are the stream's own (see MuxStream.writesDisposable).
   */
  sendData?(streamId: number, parts: Buffer[], disposable: boolean): void;
  /** The carrier's send buffer is full: data waits (window and close frames still go) until `unblocked()`. */
  blocked?(): boolean;
  maxStreams?: number;
  /** A peer opened a stream; accept by returning true (the stream is then live), refuse with a reason string. */
  onOpen?(stream: MuxStream, target: string): true | string;
}

export class StreamMux implements StreamOwner {
  private readonly streams = new Map<number, MuxStream>();
  private nextId: number;
  private readonly window: number;
  private readonly maxWindow: number;
  private readonly maxStreams: number;
  private readonly maxChunk: number;
  private readonly waiting = new Set<MuxStream>();
  private closed = false;

  constructor(private readonly o: MuxOptions) {
    this.nextId = o.initiator ? 1 : 2;
    this.window = o.window ?? DEFAULT_STREAM_WINDOW;
    this.maxWindow = Math.max(this.window, o.maxWindow ?? this.window);
    this.maxStreams = o.maxStreams ?? DEFAULT_MAX_STREAMS;
    this.maxChunk = o.maxChunk ?? MAX_STREAM_CHUNK;
  }

  get size(): number {
    return this.streams.size;
  }

  open(target: string): MuxStream {
    if (this.closed) throw new UnavailableError('ERR_SESSION_CLOSED', 'the session is closed');
    if (this.streams.size >= this.maxStreams)
      throw new ProtocolError('ERR_STREAM_LIMIT', `at most ${this.maxStreams} streams per session`);
    const s = new MuxStream(this.nextId, target, this, this.window, this.maxWindow, this.maxChunk);
    this.nextId += 2;
    this.streams.set(s.id, s);
    this.sendFrame({ streamOpen: { streamId: s.id, target, initialWindow: this.window } });
    return s;
  }

  /** Feeds one incoming stream frame. Throws ProtocolError for a violation of the session as a whole. */
  onFrame(env: Envelope): void {
    if (env.streamOpen)
      return this.onOpen(env.streamOpen.streamId ?? 0, env.streamOpen.target ?? '', env.streamOpen.initialWindow ?? 0);
    const id = env.streamData?.streamId ?? env.streamWindow?.streamId ?? env.streamClose?.streamId ?? 0;
    const s = this.streams.get(id);
    if (!s) return; // frames racing a close: harmless, dropped
    // A view, not a copy: the decoded frame's bytes are freshly decrypted and owned by nobody else.
    if (env.streamData) {
      const d = env.streamData.data ?? new Uint8Array(0);
      s.deliver([Buffer.from(d.buffer, d.byteOffset, d.byteLength)]);
    } else if (env.streamWindow) s.addCredit(env.streamWindow.credit ?? 0);
    else if (env.streamClose) {
      if (env.streamClose.half) s.remoteEnd();
      else s.remoteClose(env.streamClose.code ?? '', env.streamClose.message ?? '');
    }
  }

  /** Stream data that arrived as parts (the direct path's decrypted record): delivered part by part. */
  onData(streamId: number, parts: Buffer[]): void {
    const s = this.streams.get(streamId);
    if (!s) return; // racing a close: dropped, as in onFrame
    s.deliver(parts);
  }

  private onOpen(id: number, target: string, peerWindow: number): void {
    const ours = id % 2 === (this.o.initiator ? 1 : 0);
    if (id === 0 || ours || this.streams.has(id))
      throw new ProtocolError('ERR_STREAM_ID', `peer opened stream ${id} outside its id space or twice`);
    if (peerWindow !== this.window)
      throw new ProtocolError('ERR_STREAM_WINDOW', `peer window ${peerWindow} differs from ours (${this.window})`);
    if (this.streams.size >= this.maxStreams) {
      this.sendFrame({
        streamClose: {
          streamId: id,
          code: 'ERR_STREAM_LIMIT',
          message: `at most ${this.maxStreams} streams per session`,
        },
      });
      return;
    }
    const s = new MuxStream(id, target, this, this.window, this.maxWindow, this.maxChunk);
    this.streams.set(id, s);
    const verdict = this.o.onOpen ? this.o.onOpen(s, target) : 'this side accepts no streams';
    if (verdict !== true) {
      // Refusing is not an error on this side: tell the opener why and drop the stream quietly.
      this.sendFrame({ streamClose: { streamId: id, code: 'ERR_STREAM_REFUSED', message: verdict } });
      s.remoteClose('', '');
    }
  }

  /** @internal */
  sendFrame(frame: EnvelopeInit): void {
    if (!this.closed) this.o.send(frame);
  }

  /** @internal */
  forget(id: number): void {
    this.streams.delete(id);
  }

  /** Whether the carrier takes stream data as parts (MuxOptions.sendData). */
  get gathers(): boolean {
    return this.o.sendData !== undefined;
  }

  /** @internal stream data, as parts only when the carrier gathers */
  sendData(streamId: number, data: Buffer | Buffer[], disposable = false): void {
    if (this.closed) return;
    if (this.o.sendData) this.o.sendData(streamId, Array.isArray(data) ? data : [data], disposable);
    else this.o.send({ streamData: { streamId, data: Array.isArray(data) ? Buffer.concat(data) : data } });
  }

  /** @internal */
  isBlocked(): boolean {
    return this.o.blocked?.() ?? false;
  }

  /** @internal a stream has data to send once the carrier drains */
  waitUnblocked(s: MuxStream): void {
    this.waiting.add(s);
  }

  /** The carrier drained: streams waiting with data send again (until it fills up again). */
  unblocked(): void {
    const ready = [...this.waiting];
    this.waiting.clear();
    for (const s of ready) {
      if (this.isBlocked()) {
        this.waiting.add(s);
        continue;
      }
      s.flush();
    }
  }

  reset(s: MuxStream, code: CodeOf<'protocol'>, message: string): void {
    s.destroy(new ProtocolError(code, message));
  }

  /** The carrying session ended: every stream ends with an error rather than hanging. */
  close(reason = 'session closed'): void {
    if (this.closed) return;
    this.closed = true;
    this.waiting.clear();
    for (const s of [...this.streams.values()]) s.remoteClose('ERR_SESSION_CLOSED', reason);
    this.streams.clear();
  }
}
