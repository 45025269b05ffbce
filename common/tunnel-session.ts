/**
 * One established engine ⇄ tenant session: sealed records in, sealed records out. Inside the seal travel
 * the stream frames of the multiplexer and, beside them, request/response commands (the tenant asks its
 * engine to open a listener or run an integration command) — so main and the host relay see neither the
 * streams' bytes nor the commands' arguments and results (credentials, URLs, response bodies).
 */
import { decodeEnvelope, encodeEnvelope, jsonBytes, parseJsonBytes, type EnvelopeInit } from './codec.js';
import { StreamMux, type MuxStream } from './stream-mux.js';
import type { SessionKeys } from './tunnel-crypto.js';
import { RECORD_SEALED } from './tunnel-records.js';
import { PalisadeError, type ErrorCategory, ProtocolError, TimeoutError, UnavailableError, errorMessage } from './errors.js';

export interface TunnelSessionOptions {
  keys: SessionKeys;
  /** The tenant opens streams with odd ids, the engine with even ones. */
  initiator: boolean;
  sendRecord(record: Buffer): void;
  onOpen?(stream: MuxStream, target: string): true | string;
  onCommand?(name: string, args: unknown): Promise<unknown>;
}

const CATEGORIES = new Set<ErrorCategory>(['bad-parameter', 'not-found', 'unauthenticated', 'access-denied', 'conflict', 'too-large', 'unavailable', 'connection', 'protocol', 'timeout']);

/** A command that failed on the far side, with the code and category it gave (anything unknown is `internal`). */
export class RemoteCommandError extends PalisadeError {
  constructor(category: string, code: string, message: string) {
    super(CATEGORIES.has(category as ErrorCategory) ? category as ErrorCategory : 'internal', code || 'ERR_REMOTE_COMMAND', message);
  }
}

const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
/** The record type byte, sealed records being built in one piece by SealingKey.seal. */
const SEALED_PREFIX = Uint8Array.of(RECORD_SEALED);

export class TunnelSession {
  readonly mux: StreamMux;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void; timer: NodeJS.Timeout }>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly o: TunnelSessionOptions) {
    this.mux = new StreamMux({ initiator: o.initiator, send: (f) => this.send(f), onOpen: o.onOpen });
  }

  /** A sealed record's body (after its type byte). Throws on a record that fails to open: the session is over. */
  onSealed(body: Uint8Array): void {
    const env = decodeEnvelope(this.o.keys.receive.open(body));
    if (env.command) void this.runCommand(Number(env.id), env.command.name ?? '', env.command.args);
    else if (env.result) this.settle(Number(env.replyTo), env.result);
    else this.mux.onFrame(env);
  }

  request(name: string, args: unknown, timeoutMs = DEFAULT_COMMAND_TIMEOUT_MS): Promise<unknown> {
    if (this.closed) return Promise.reject(new UnavailableError('ERR_SESSION_CLOSED', 'the engine session is closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new TimeoutError('ERR_ENGINE_TIMEOUT', `engine did not answer ${name} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.send({ id, command: { name, args: jsonBytes(args ?? {}), deadlineMs: Date.now() + timeoutMs } });
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
    if (!this.closed) this.o.sendRecord(this.o.keys.send.seal(encodeEnvelope(frame), SEALED_PREFIX));
  }

  private async runCommand(id: number, name: string, rawArgs: Uint8Array | null | undefined): Promise<void> {
    try {
      if (!this.o.onCommand) throw new ProtocolError('ERR_UNKNOWN_COMMAND', 'this side runs no commands');
      const value = await this.o.onCommand(name, parseJsonBytes(rawArgs));
      this.send({ replyTo: id, result: { ok: true, value: jsonBytes(value ?? null) } });
    } catch (e) {
      this.send({ replyTo: id, result: { ok: false, errorCode: (e as { code?: string }).code ?? 'ERR_COMMAND_FAILED', errorMessage: errorMessage(e), errorCategory: (e as { category?: string }).category ?? 'internal' } });
    }
  }

  private settle(id: number, r: { ok?: boolean | null; value?: Uint8Array | null; errorCode?: string | null; errorMessage?: string | null; errorCategory?: string | null }): void {
    const p = this.pending.get(id);
    if (!p) return; // answered after its timeout: nobody waits any more
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (r.ok) {
      try { p.resolve(parseJsonBytes(r.value)); } catch (e) { p.reject(e as Error); }
    } else p.reject(new RemoteCommandError(r.errorCategory ?? '', r.errorCode ?? '', r.errorMessage ?? 'engine command failed'));
  }
}
