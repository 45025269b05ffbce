/**
 * Streams multiplexed over one message channel with credit-based flow control (as SSH channels and
 * HTTP/2 streams): each side may send only as many bytes as the receiver has granted, and grants more
 * only as its reader consumes, so a slow reader never makes the sender buffer without bound.
 * Transport-agnostic: frames go out through `send` and come in through `onFrame`; the tunnel layer
 * (engines, issue 4) decides what carries them and what a stream connects to.
 */
import { Duplex } from 'node:stream';
import type { EnvelopeInit, Envelope } from '#common/codec.js';
import { peerCode, type CodeOf } from '#common/error-codes.js';
import { ProtocolError, UnavailableError } from '#common/errors.js';

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
/** Writes up to this size, arriving on an idle stream, are sent without waiting for coalescing. */
const SMALL_WRITE_BYTES = 16 * 1024;
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

/** What a stream's data can be written to directly (a net.Socket): see MuxStream.attachSink. */
export interface StreamSink {
  write(chunk: Buffer): boolean;
  cork(): void;
  uncork(): void;
  end(): void;
  readonly writableLength: number;
  on(event: 'drain', listener: () => void): unknown;
}

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

export class MuxStream extends Duplex {
  private credit: number;
  /**
   * Written but not yet sent. A socket delivers at most 64 KiB per read, often several reads per turn of
   * the event loop; sending them from one setImmediate coalesces them into records of up to
   * maxChunk (fewer seals, IPC messages and WebSocket frames per byte). Chunks are kept by
   * reference until then, as net.Socket does with what is written to it.
   */
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushScheduled = false;
  /** The write callback held back while `out` holds a full record or more: the Writable's backpressure. */
  private heldCb?: (e?: Error | null) => void;
  /** end() waits for `out` to drain (it may need credit) before the half-close goes out. */
  private finalCb?: (e?: Error | null) => void;
  private received = 0;
  private granted: number;
  /**
   * Where delivered data goes once the stream is spliced to a socket (attachSink): written straight to it
   * rather than pushed through the Readable side and a pipe, which cost a Readable push, a 'data' event and
   * a pipe write per 64 KiB, and wrote a record's parts one syscall each (a pipe pauses on the socket's
   * 16 KiB high-water mark, so corking could not gather them).
   */
  private sink?: StreamSink;
  /**
   * Whoever writes to this stream hands its buffers over and never reads them again (socket reads, see
   * spliceSocket): they may then be encrypted in place on their way out. Off by default — a writer that
   * reuses a buffer would find it scrambled.
   */
  writesDisposable = false;
  private remoteEnded = false;
  private localClosed = false;

  constructor(readonly id: number, readonly target: string, private readonly mux: StreamMux, private window: number, private readonly maxWindow = window, private readonly maxChunk = MAX_STREAM_CHUNK) {
    // The write side buffers little beyond `out`: a 64 KiB high-water mark, as before records grew.
    super({ readableHighWaterMark: window, writableHighWaterMark: 64 * 1024, allowHalfOpen: true });
    this.credit = window;
    this.granted = window;
  }

  /** Bytes the peer may still send before it must wait for us: what bounds our buffering. */
  get peerCredit(): number { return this.granted - this.received; }

  /** Delivered but not yet consumed: in the Readable buffer, or in the sink's write buffer (not yet with the kernel). */
  private get unconsumed(): number { return this.sink ? this.sink.writableLength : this.readableLength; }

  /**
   * From now on, data from the peer is written to `sink` (a socket) as it arrives, a record's parts in one
   * gathered write, and credit is granted as the sink hands it to the kernel. The peer's half-close ends
   * the sink. The Readable side then carries only the end (nothing must read from it).
   */
  attachSink(sink: StreamSink): void {
    // What arrived before the sink (an engine resolves and dials its destination after accepting the
    // stream) goes first, and a half-close that came with it ends the sink.
    for (let c = this.read() as Buffer | null; c !== null; c = this.read() as Buffer | null) sink.write(c);
    this.sink = sink;
    sink.on('drain', () => this.maybeGrant());
    if (this.remoteEnded) sink.end();
    this.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.out.push(chunk);
    this.outBytes += chunk.length;
    this.scheduleFlush();
    if (this.outBytes < this.maxChunk) cb();
    else this.heldCb = cb;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // A small write with nothing before it is interactive traffic: it goes at the end of this callback
    // (no wait for the next turn of the loop, which costs a round trip tens of µs per hop); bulk data
    // waits for the turn, so the socket reads of this one coalesce into full records.
    if (this.outBytes <= SMALL_WRITE_BYTES) queueMicrotask(() => { this.flushScheduled = false; this.flush(); });
    else setImmediate(() => { this.flushScheduled = false; this.flush(); });
  }

  /** Sends what the credit allows, then releases a held write callback and a pending end(). */
  /** @internal */
  flush(): void {
    if (this.destroyed) return;
    while (this.outBytes > 0 && this.credit > 0) {
      if (this.mux.isBlocked()) { this.mux.waitUnblocked(this); break; }
      const n = Math.min(this.outBytes, this.credit, this.maxChunk);
      this.mux.sendData(this.id, this.takeOut(n, this.mux.gathers), this.writesDisposable);
      this.credit -= n;
    }
    const held = this.outBytes < this.maxChunk ? this.heldCb : undefined;
    if (held) { this.heldCb = undefined; held(); }
    const fin = this.outBytes === 0 ? this.finalCb : undefined;
    if (fin) {
      this.finalCb = undefined;
      this.mux.sendFrame({ streamClose: { streamId: this.id, half: true } });
      fin();
    }
  }

  /**
   * The next n bytes of `out`: a view when one chunk holds them; else, when the carrier takes data in
   * parts (gathered writes), the chunks' views; else one copy.
   */
  private takeOut(n: number, asParts: boolean): Buffer | Buffer[] {
    this.outBytes -= n;
    const first = this.out[0];
    if (first.length >= n) {
      if (first.length === n) this.out.shift();
      else this.out[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const parts: Buffer[] = [];
    for (let need = n; need > 0;) {
      const c = this.out[0];
      if (c.length <= need) { parts.push(c); this.out.shift(); need -= c.length; }
      else { parts.push(c.subarray(0, need)); this.out[0] = c.subarray(need); need = 0; }
    }
    return asParts ? parts : Buffer.concat(parts, n);
  }

  /** @internal the peer granted more credit */
  addCredit(n: number): void {
    this.credit += n;
    if (this.outBytes > 0 || this.finalCb) this.flush();
  }

  /** @internal data from the peer: one record's worth, as one or more parts */
  deliver(parts: Buffer[]): void {
    let n = 0;
    for (const p of parts) n += p.length;
    this.received += n;
    if (this.received > this.granted) {
      this.mux.reset(this, 'ERR_STREAM_FLOW', 'peer sent more than its credit');
      return;
    }
    const sink = this.sink;
    if (sink) {
      if (parts.length > 1) sink.cork();
      for (const p of parts) sink.write(p);
      if (parts.length > 1) sink.uncork();
    } else {
      for (const p of parts) { if (this.destroyed) return; this.push(p); }
    }
    this.maybeGrant();
  }

  override _read(): void {
    // Credit is granted on consumption (read() below), not here: Readable calls _read before it takes
    // data out of the buffer, and not again until the next push — too early and too rarely.
  }

  /** Every consumption path (flowing 'data', pipe, explicit read) goes through read(). */
  override read(size?: number): unknown {
    const chunk: unknown = super.read(size);
    if (chunk !== null) queueMicrotask(() => this.maybeGrant());
    return chunk;
  }

  /** Grants credit for what the reader consumed, in steps of half a window (fewer, larger updates), or
   * whatever is free once the sender has nothing left to send with. */
  private maybeGrant(): void {
    if (this.remoteEnded || this.destroyed) return;
    const unconsumed = this.unconsumed;
    let free = this.window - unconsumed - this.peerCredit;
    if (free >= this.window / 2 || (free > 0 && this.peerCredit === 0)) {
      // Granting while our reader has taken everything delivered: the window, not the reader, paces the
      // stream, so it may grow (a reader that lags keeps its window; one that never reads grants nothing).
      if (this.window < this.maxWindow && unconsumed === 0) {
        this.window = Math.min(this.maxWindow, this.window * 2);
        free = this.window - this.peerCredit;
      }
      this.granted += free;
      this.mux.sendFrame({ streamWindow: { streamId: this.id, credit: free } });
    }
  }

  /** @internal the peer will send no more */
  remoteEnd(): void {
    this.remoteEnded = true;
    this.sink?.end();
    this.push(null);
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.finalCb = cb;
    if (this.flushScheduled) return; // the scheduled flush sends the rest, then the half-close
    this.flush();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    if (!this.localClosed) {
      this.localClosed = true;
      const code = (err as { code?: string } | null)?.code;
      this.mux.sendFrame({ streamClose: { streamId: this.id, code: err ? (code ?? 'ERR_STREAM_RESET') : '', message: err?.message ?? '' } });
    }
    const closed = err ?? new ProtocolError('ERR_STREAM_CLOSED', 'stream closed');
    this.heldCb?.(closed);
    this.finalCb?.(closed);
    this.heldCb = this.finalCb = undefined;
    this.out = [];
    this.outBytes = 0;
    this.mux.forget(this.id);
    cb(err);
  }

  /** @internal closed by the peer (reset or full close) */
  remoteClose(code: string, message: string): void {
    this.localClosed = true; // no close frame back
    this.destroy(code ? new ProtocolError(peerCode(code), message || 'stream reset by peer') : undefined);
  }
}

export class StreamMux {
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

  get size(): number { return this.streams.size; }

  open(target: string): MuxStream {
    if (this.closed) throw new UnavailableError('ERR_SESSION_CLOSED', 'the session is closed');
    if (this.streams.size >= this.maxStreams) throw new ProtocolError('ERR_STREAM_LIMIT', `at most ${this.maxStreams} streams per session`);
    const s = new MuxStream(this.nextId, target, this, this.window, this.maxWindow, this.maxChunk);
    this.nextId += 2;
    this.streams.set(s.id, s);
    this.sendFrame({ streamOpen: { streamId: s.id, target, initialWindow: this.window } });
    return s;
  }

  /** Feeds one incoming stream frame. Throws ProtocolError for a violation of the session as a whole. */
  onFrame(env: Envelope): void {
    if (env.streamOpen) return this.onOpen(env.streamOpen.streamId ?? 0, env.streamOpen.target ?? '', env.streamOpen.initialWindow ?? 0);
    const id = env.streamData?.streamId ?? env.streamWindow?.streamId ?? env.streamClose?.streamId ?? 0;
    const s = this.streams.get(id);
    if (!s) return; // frames racing a close: harmless, dropped
    // A view, not a copy: the decoded frame's bytes are freshly decrypted and owned by nobody else.
    if (env.streamData) { const d = env.streamData.data ?? new Uint8Array(0); s.deliver([Buffer.from(d.buffer, d.byteOffset, d.byteLength)]); }
    else if (env.streamWindow) s.addCredit(env.streamWindow.credit ?? 0);
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
    if (id === 0 || ours || this.streams.has(id)) throw new ProtocolError('ERR_STREAM_ID', `peer opened stream ${id} outside its id space or twice`);
    if (peerWindow !== this.window) throw new ProtocolError('ERR_STREAM_WINDOW', `peer window ${peerWindow} differs from ours (${this.window})`);
    if (this.streams.size >= this.maxStreams) {
      this.sendFrame({ streamClose: { streamId: id, code: 'ERR_STREAM_LIMIT', message: `at most ${this.maxStreams} streams per session` } });
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
  get gathers(): boolean { return this.o.sendData !== undefined; }

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
      if (this.isBlocked()) { this.waiting.add(s); continue; }
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
