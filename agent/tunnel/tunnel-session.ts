/**
 * One established engine ⇄ tenant session: sealed records in, sealed records out. Inside the seal travel
 * the stream frames of the multiplexer and, beside them, request/response commands (the tenant asks its
 * engine to open a listener or run an integration command) — so main and the host relay see neither the
 * streams' bytes nor the commands' arguments and results (credentials, URLs, response bodies).
 * A command or answer too large for the way it must travel is refused before it is sealed (MAX_COMMAND_FRAME_BYTES):
 * a record the peer must refuse would end the whole session, and every command and stream on it with it.
 */
import {
  DEFAULT_MAX_FRAME_BYTES,
  decodeEnvelope,
  encodeEnvelope,
  jsonBytes,
  parseJsonBytes,
  varintLength,
  writeVarint,
  type Envelope,
  type EnvelopeInit,
} from '#common/codec.js';
import { StreamMux } from './stream-mux.js';
import type { MuxStream } from './mux-stream.js';
import { SEAL_OVERHEAD, type SessionKeys } from './tunnel-crypto.js';
import { RECORD_SEALED } from './tunnel-records.js';
import {
  BadParameterError,
  PalisadeError,
  type ErrorCategory,
  TimeoutError,
  TooLargeError,
  UnavailableError,
  errorMessage,
} from '#common/errors.js';
import { peerCode } from '#common/error-codes.js';

export interface TunnelSessionOptions {
  keys: SessionKeys;
  /** The tenant opens streams with odd ids, the engine with even ones. */
  initiator: boolean;
  /**
   * Direct path: each sealed record goes out with its 4-byte length in front (tunnel-direct.ts), built
   * in the same buffer, so one record is one socket write.
   */
  lengthPrefixed?: boolean;
  /**
   * Direct path: sends one length-prefixed sealed record given as parts (a gathered write); replaces sendRecord for
   * sealed records.
   */
  sendRecordv?(parts: Uint8Array[]): void;
  /** See MuxOptions: stream windows may grow to this; data waits while the carrier is `blocked`. */
  maxWindow?: number;
  blocked?(): boolean;
  /** See MuxOptions.maxChunk (the direct path sends larger records). */
  maxChunk?: number;
  /** Initial stream window (both ends must agree); default DEFAULT_STREAM_WINDOW. */
  window?: number;
  sendRecord(record: Buffer): void;
  onOpen?(stream: MuxStream, target: string): true | string;
  /**
   * Commands handed to onCommand as their raw args bytes (a Uint8Array, maybe empty), not parsed as JSON: an
   * engine's events.batch, binary or JSON, read by the tenant in place (agent/tunnel/events-batch-binary.ts).
   */
  rawCommands?: ReadonlySet<string>;
  onCommand?(name: string, args: unknown): Promise<unknown>;
  /** The peer's protocol minor as its hello said (the engine's view of its tenant; 0 when unknown). */
  peerMinor?: number;
}

const CATEGORIES = new Set<ErrorCategory>([
  'bad-parameter',
  'not-found',
  'unauthenticated',
  'access-denied',
  'conflict',
  'too-large',
  'unavailable',
  'connection',
  'protocol',
  'timeout',
  'rate-limited',
  'dependency',
]);

/** A command that failed on the far side, with the code and category it gave (anything unknown is `internal`). */
export class RemoteCommandError extends PalisadeError {
  constructor(category: string, code: string, message: string) {
    super(
      CATEGORIES.has(category as ErrorCategory) ? (category as ErrorCategory) : 'internal',
      code ? peerCode(code) : 'ERR_COMMAND_FAILED',
      message,
    );
  }
}

const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
/**
 * The largest command or answer Envelope sent: a record's plaintext must stay a frame (≤ 1 MiB) after sealing (type
 * byte and tag: MAX_DIRECT_RECORD on the direct path) and, relayed, after main wraps the record with the tenant's
 * name and the engine's id (encodeTunnelFrame, about 110 bytes). 1 KiB below the frame limit covers both.
 */
export const MAX_COMMAND_FRAME_BYTES = DEFAULT_MAX_FRAME_BYTES - 1024;
/** The record type byte, sealed records being built in one piece by SealingKey.seal. */
const SEALED_PREFIX = Uint8Array.of(RECORD_SEALED);

/** [u32 record length][record type]: the head of a sealed record on the direct path. */
function lengthPrefix(plainBytes: number): Buffer {
  const p = Buffer.allocUnsafe(5);
  p.writeUInt32BE(1 + plainBytes + SEAL_OVERHEAD, 0);
  p[4] = RECORD_SEALED;
  return p;
}

/**
 * The protobuf bytes of `Envelope { stream_data (20) { stream_id (1); data (2) } }` up to the data itself,
 * as protobufjs would write them: with the data appended it decodes as that Envelope. With `room`, the
 * buffer has that many bytes more after the head, for a small record's data (one buffer, one seal).
 */
function streamDataHead(streamId: number, dataLen: number, room = 0): Buffer {
  const innerLen = 1 + varintLength(streamId) + 1 + varintLength(dataLen);
  const headLen = 2 + varintLength(innerLen + dataLen) + innerLen;
  const b = Buffer.allocUnsafe(headLen + room);
  b[0] = 0xa2;
  b[1] = 0x01;
  let at = writeVarint(b, 2, innerLen + dataLen);
  b[at++] = 0x08;
  at = writeVarint(b, at, streamId);
  b[at++] = 0x12;
  writeVarint(b, at, dataLen);
  return b;
}

/**
 * The protobuf bytes of `Envelope { id (1); command (14) { name (1); deadline_ms (3); args (2) } }` up to the args
 * themselves, args last (protobuf takes fields in any order): with the args appended it decodes as that Envelope, so
 * large args (an engine's event batch) are sealed where they lie, not copied into an encoded Envelope first.
 */
export function commandHead(id: number, name: string, deadlineMs: number, argsLen: number): Buffer {
  const nameLen = Buffer.byteLength(name);
  const cmdLen =
    1 + varintLength(nameLen) + nameLen + 1 + varintLength(deadlineMs) + 1 + varintLength(argsLen) + argsLen;
  const headLen = 1 + varintLength(id) + 1 + varintLength(cmdLen) + cmdLen - argsLen;
  const b = Buffer.allocUnsafe(headLen);
  b[0] = 0x08;
  let at = writeVarint(b, 1, id);
  b[at++] = 0x72;
  at = writeVarint(b, at, cmdLen);
  b[at++] = 0x0a;
  at = writeVarint(b, at, nameLen);
  at += b.write(name, at, 'utf8');
  b[at++] = 0x18;
  at = writeVarint(b, at, deadlineMs);
  b[at++] = 0x12;
  writeVarint(b, at, argsLen);
  return b;
}

/**
 * The inverse of streamDataHead over decrypted parts: the stream id and the data as views of the parts,
 * when the record is exactly one such Envelope with its head in the first part; else undefined (the
 * caller decodes it the ordinary way).
 */
function streamDataParts(plain: Buffer[]): { streamId: number; parts: Buffer[] } | undefined {
  const b = plain[0];
  if (b[0] !== 0xa2 || b[1] !== 0x01) return undefined;
  let at = 2;
  const read = (): number | undefined => {
    let n = 0,
      mul = 1;
    for (let i = 0; i < 5 && at < b.length; i++) {
      const x = b[at++];
      n += (x & 0x7f) * mul;
      if (x < 0x80) return n;
      mul *= 128;
    }
    return undefined;
  };
  const envLen = read();
  if (envLen === undefined || b[at++] !== 0x08) return undefined;
  const streamId = read();
  if (streamId === undefined || b[at++] !== 0x12) return undefined;
  const dataLen = read();
  if (dataLen === undefined || at > b.length) return undefined;
  let total = 0;
  for (const p of plain) total += p.length;
  if (total !== at + dataLen || envLen !== total - 2 - varintLength(envLen)) return undefined;
  if (plain.length === 1) return { streamId, parts: [b.subarray(at)] };
  const parts = at < b.length ? [b.subarray(at), ...plain.slice(1)] : plain.slice(1);
  return { streamId, parts };
}

/**
 * Records up to this size (window updates, closes, interactive data) are built and sealed in one buffer
 * and go out in one write: a gathered write of three pieces costs more than copying a few hundred bytes,
 * in time and in garbage per message (round-trip latency).
 */
const SMALL_RECORD_BYTES = 2048;

export class TunnelSession {
  readonly mux: StreamMux;
  private readonly pending = new Map<
    number,
    { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }
  >();
  private nextId = 1;
  private closed = false;
  /** The peer's protocol minor (TunnelSessionOptions.peerMinor): what it may be sent. */
  readonly peerMinor: number;

  constructor(private readonly o: TunnelSessionOptions) {
    this.peerMinor = o.peerMinor ?? 0;
    this.mux = new StreamMux({
      initiator: o.initiator,
      send: (f) => this.send(f),
      onOpen: o.onOpen,
      window: o.window,
      maxWindow: o.maxWindow,
      blocked: o.blocked,
      maxChunk: o.maxChunk,
      ...(o.sendRecordv
        ? { sendData: (id: number, parts: Buffer[], disposable: boolean) => this.sendData(id, parts, disposable) }
        : {}),
    });
  }

  /** A sealed record's body (after its type byte). Throws on a record that fails to open: the session is over. */
  onSealed(body: Uint8Array): void {
    this.dispatch(decodeEnvelope(this.o.keys.receive.open(body)));
  }

  /**
   * A sealed record given as parts, type byte included (the direct path). Stream data is handed to its
   * stream as the decrypted parts; anything else is decoded as usual. Throws like onSealed.
   */
  onSealedParts(parts: Buffer[]): void {
    let plain: Buffer[];
    if (parts.length === 1) plain = [this.o.keys.receive.open(parts[0].subarray(1))];
    else {
      const body = parts[0].length > 1 ? [parts[0].subarray(1), ...parts.slice(1)] : parts.slice(1);
      plain = this.o.keys.receive.openv(body).filter((p) => p.length > 0);
    }
    const data = plain[0]?.length ? streamDataParts(plain) : undefined;
    if (data) this.mux.onData(data.streamId, data.parts);
    else this.dispatch(decodeEnvelope(plain.length === 1 ? plain[0] : Buffer.concat(plain)));
  }

  private dispatch(env: Envelope): void {
    if (env.command) void this.runCommand(Number(env.id), env.command.name ?? '', env.command.args);
    else if (env.result) this.settle(Number(env.replyTo), env.result);
    else this.mux.onFrame(env);
  }

  request(name: string, args: unknown, timeoutMs = DEFAULT_COMMAND_TIMEOUT_MS): Promise<unknown> {
    return this.requestJson(name, jsonBytes(args ?? {}), timeoutMs);
  }

  /**
   * request() with args already encoded as JSON (an engine's spooled event batch, sent as it is on disk).
   * `disposable`: the caller will not read the args again, so they may be sealed in place (the direct path).
   */
  requestJson(
    name: string,
    args: Uint8Array,
    timeoutMs = DEFAULT_COMMAND_TIMEOUT_MS,
    disposable = false,
  ): Promise<unknown> {
    if (this.closed) return Promise.reject(new UnavailableError('ERR_SESSION_CLOSED', 'the engine session is closed'));
    const id = this.nextId++;
    const head = commandHead(id, name, Date.now() + timeoutMs, args.length);
    const bytes = head.length + args.length;
    if (bytes > MAX_COMMAND_FRAME_BYTES)
      return Promise.reject(
        new TooLargeError(
          'ERR_ENGINE_COMMAND_TOO_LARGE',
          `${name}'s args are ${bytes} bytes, more than the ${MAX_COMMAND_FRAME_BYTES} a command to an engine ` +
            'may carry: send less (a smaller body)',
        ),
      );
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TimeoutError('ERR_ENGINE_TIMEOUT', `engine did not answer ${name} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      if (this.closed) return;
      // The args are sealed where they lie: not copied into an encoded Envelope.
      if (this.o.sendRecordv) this.sendPlain([head, args], disposable);
      else this.sendEncoded(Buffer.concat([head, args]));
    });
  }

  close(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.mux.close(reason);
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new UnavailableError('ERR_SESSION_CLOSED', `engine session ended: ${reason}`));
      this.pending.delete(id);
    }
  }

  private send(frame: EnvelopeInit): void {
    if (!this.closed) this.sendEncoded(encodeEnvelope(frame));
  }

  private sendEncoded(plain: Uint8Array): void {
    if (this.closed) return;
    if (this.o.sendRecordv) return this.sendPlain([plain]);
    this.o.sendRecord(this.o.keys.send.seal(plain, this.o.lengthPrefixed ? lengthPrefix(plain.length) : SEALED_PREFIX));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Direct path: stream data framed by hand around the caller's bytes, which go straight into the cipher
   * (no copy) unless the record is small (one buffer, see SMALL_RECORD_BYTES). `disposable`: the caller
   * will not read the parts again, so they may be encrypted in place (SealingKey.sealv).
   */
  private sendData(streamId: number, parts: Buffer[], disposable: boolean): void {
    if (this.closed) return;
    let len = 0;
    for (const p of parts) len += p.length;
    if (len > SMALL_RECORD_BYTES) {
      this.sendPlain([streamDataHead(streamId, len), ...parts], disposable);
      return;
    }
    const plain = streamDataHead(streamId, len, len);
    let at = plain.length - len;
    for (const p of parts) {
      plain.set(p, at);
      at += p.length;
    }
    this.sealOne(plain);
  }

  private sendPlain(plain: Uint8Array[], disposable = false): void {
    let bytes = 0;
    for (const p of plain) bytes += p.length;
    if (bytes <= SMALL_RECORD_BYTES) this.sealOne(plain.length === 1 ? plain[0] : Buffer.concat(plain, bytes));
    else this.o.sendRecordv!([lengthPrefix(bytes), ...this.o.keys.send.sealv(plain, disposable)]);
  }

  /** Direct path: a small record sealed with its length prefix into one buffer, one write. */
  private sealOne(plain: Uint8Array): void {
    this.o.sendRecord(this.o.keys.send.seal(plain, lengthPrefix(plain.length)));
  }

  private async runCommand(id: number, name: string, rawArgs: Uint8Array | null | undefined): Promise<void> {
    try {
      if (!this.o.onCommand) throw new BadParameterError('ERR_COMMAND_UNKNOWN', 'this side runs no commands');
      const args = this.o.rawCommands?.has(name) ? (rawArgs ?? new Uint8Array(0)) : parseJsonBytes(rawArgs);
      const value = await this.o.onCommand(name, args);
      const plain = encodeEnvelope({ replyTo: id, result: { ok: true, value: jsonBytes(value ?? null) } }, Infinity);
      if (plain.length > MAX_COMMAND_FRAME_BYTES)
        throw new TooLargeError(
          'ERR_ENGINE_COMMAND_TOO_LARGE',
          `the answer to ${name} is ${plain.length} bytes, more than the ${MAX_COMMAND_FRAME_BYTES} an engine's ` +
            'answer may carry: ask for less',
        );
      this.sendEncoded(plain);
    } catch (e) {
      this.send({
        replyTo: id,
        result: {
          ok: false,
          errorCode: (e as { code?: string }).code ?? 'ERR_COMMAND_FAILED',
          errorMessage: errorMessage(e),
          errorCategory: (e as { category?: string }).category ?? 'internal',
        },
      });
    }
  }

  private settle(
    id: number,
    r: {
      ok?: boolean | null;
      value?: Uint8Array | null;
      errorCode?: string | null;
      errorMessage?: string | null;
      errorCategory?: string | null;
    },
  ): void {
    const p = this.pending.get(id);
    if (!p) return; // answered after its timeout: nobody waits any more
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (r.ok) {
      try {
        p.resolve(parseJsonBytes(r.value));
      } catch (e) {
        p.reject(e as Error);
      }
    } else
      p.reject(
        new RemoteCommandError(r.errorCategory ?? '', r.errorCode ?? '', r.errorMessage ?? 'engine command failed'),
      );
  }
}
