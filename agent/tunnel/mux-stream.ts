/**
 * One stream of a StreamMux (stream-mux.ts) as a Node Duplex: what its writer writes is coalesced into
 * records of up to maxChunk and sent as the peer's credit allows; what the peer sends is delivered to the
 * reader (or straight to a socket, attachSink) and credited back as it is consumed, in steps of half a
 * window, the window growing for a reader that keeps up. Not the multiplexer: stream ids, opening,
 * refusing and the carrier's backpressure are StreamMux's, reached through StreamOwner.
 */
import { Duplex } from 'node:stream';
import type { EnvelopeInit } from '#common/codec.js';
import { ProtocolError } from '#common/errors.js';
import { peerCode } from '#common/error-codes.js';

/** Writes up to this size, arriving on an idle stream, are sent without waiting for coalescing. */
const SMALL_WRITE_BYTES = 16 * 1024;

/** What a stream's data can be written to directly (a net.Socket): see MuxStream.attachSink. */
export interface StreamSink {
  write(chunk: Buffer): boolean;
  cork(): void;
  uncork(): void;
  end(): void;
  readonly writableLength: number;
  on(event: 'drain', listener: () => void): unknown;
}

/** What a stream needs of its multiplexer (StreamMux implements it); for MuxStream only. */
export interface StreamOwner {
  /** Whether the carrier takes stream data as parts (gathered writes). */
  readonly gathers: boolean;
  sendFrame(frame: EnvelopeInit): void;
  /** Stream data, as parts only when the carrier gathers; `disposable`: see MuxStream.writesDisposable. */
  sendData(streamId: number, data: Buffer | Buffer[], disposable?: boolean): void;
  /** The carrier's send buffer is full: data waits for waitUnblocked's call back (MuxStream.flush). */
  isBlocked(): boolean;
  waitUnblocked(s: MuxStream): void;
  forget(id: number): void;
  reset(s: MuxStream, code: string, message: string): void;
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

  constructor(
    readonly id: number,
    readonly target: string,
    private readonly mux: StreamOwner,
    private window: number,
    private readonly maxWindow: number,
    private readonly maxChunk: number,
  ) {
    // The write side buffers little beyond `out`: a 64 KiB high-water mark, as before records grew.
    super({ readableHighWaterMark: window, writableHighWaterMark: 64 * 1024, allowHalfOpen: true });
    this.credit = window;
    this.granted = window;
  }

  /** Bytes the peer may still send before it must wait for us: what bounds our buffering. */
  get peerCredit(): number {
    return this.granted - this.received;
  }

  /**
   * Delivered but not yet consumed: in the Readable buffer, or in the sink's write buffer (not yet with the kernel).
   */
  private get unconsumed(): number {
    return this.sink ? this.sink.writableLength : this.readableLength;
  }

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
    if (this.outBytes <= SMALL_WRITE_BYTES)
      queueMicrotask(() => {
        this.flushScheduled = false;
        this.flush();
      });
    else
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
  }

  /** Sends what the credit allows, then releases a held write callback and a pending end(). */
  /** @internal */
  flush(): void {
    if (this.destroyed) return;
    while (this.outBytes > 0 && this.credit > 0) {
      if (this.mux.isBlocked()) {
        this.mux.waitUnblocked(this);
        break;
      }
      const n = Math.min(this.outBytes, this.credit, this.maxChunk);
      this.mux.sendData(this.id, this.takeOut(n, this.mux.gathers), this.writesDisposable);
      this.credit -= n;
    }
    const held = this.outBytes < this.maxChunk ? this.heldCb : undefined;
    if (held) {
      this.heldCb = undefined;
      held();
    }
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
      if (c.length <= need) {
        parts.push(c);
        this.out.shift();
        need -= c.length;
      } else {
        parts.push(c.subarray(0, need));
        this.out[0] = c.subarray(need);
        need = 0;
      }
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
      for (const p of parts) {
        if (this.destroyed) return;
        this.push(p);
      }
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
      this.mux.sendFrame({
        streamClose: { streamId: this.id, code: err ? (code ?? 'ERR_STREAM_RESET') : '', message: err?.message ?? '' },
      });
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
