/**
 * What carries one engine ⇄ tenant session, for both ends: the relay (records in Tunnel frames through
 * main and the tenant's host, fed in by whoever owns that channel) or the direct path (one TCP connection
 * of length-prefixed records, tunnel-direct.ts). A carrier sends the records that are not sealed (hellos,
 * renewals) framed its way, builds the session so that its sealed records go out the same way, and paces
 * the session's stream data by the carrier's own send buffer. The direct carrier also reads its socket
 * and hands each record on: the peer's hello to the side's handshake, sealed records to the session, a
 * renewal to the side that takes them (the tenant).
 *
 * Not the handshake (tunnel-crypto.ts), nor who dials, listens, checks statements or decides which path
 * (the engine role, the host's engine listener, the tenant's sessions).
 */
import type { Socket } from 'node:net';
import { DEFAULT_MAX_FRAME_BYTES } from '#common/codec.js';
import { ProtocolError } from '#common/errors.js';
import type { SessionKeys } from './tunnel-crypto.js';
import { framedRecord, joinParts, parseRenewal, RecordReader, type DirectPreamble } from './tunnel-direct.js';
import { RECORD_HANDSHAKE, RECORD_RENEWAL, RECORD_SEALED } from './tunnel-records.js';
import { TunnelSession, type TunnelSessionOptions } from './tunnel-session.js';
import { DIRECT_MAX_STREAM_CHUNK, DIRECT_MAX_STREAM_WINDOW } from './stream-mux.js';

export type Transport = 'relay' | 'direct';

/** What a session is besides its carrier: which end (the tenant initiates), and what it accepts from the peer. */
export type SessionRole = Pick<
  TunnelSessionOptions,
  'initiator' | 'onOpen' | 'onCommand' | 'rawCommands' | 'peerMinor'
>;

export interface Carrier {
  readonly transport: Transport;
  /** The session over this carrier, once startSession made it. */
  readonly session: TunnelSession | undefined;
  /** Sends a record that is not sealed (a hello, a renewal), framed as this carrier frames records. */
  sendRecord(record: Uint8Array): void;
  /** Starts the session with the keys of a finished handshake; its records go out through this carrier. */
  startSession(keys: SessionKeys, role: SessionRole): TunnelSession;
  /** Ends the session (its streams end with `reason`) and lets go of the carrier. Idempotent. */
  end(reason: string): void;
}

/**
 * The relayed path: records go out through `send` (one Tunnel frame each, towards main or the host) and
 * come in through the owner of that channel, which hands sealed ones to `session.onSealed`. `blocked`:
 * the channel's send backlog is full (the engine's connection to main); the owner calls unblocked() when
 * it drains.
 */
export class RelayCarrier implements Carrier {
  readonly transport = 'relay';
  session: TunnelSession | undefined;

  constructor(
    private readonly send: (record: Uint8Array) => void,
    private readonly blocked?: () => boolean,
  ) {}

  sendRecord(record: Uint8Array): void {
    this.send(record);
  }

  startSession(keys: SessionKeys, role: SessionRole): TunnelSession {
    this.session = new TunnelSession({
      keys,
      ...role,
      sendRecord: this.send,
      ...(this.blocked ? { blocked: this.blocked } : {}),
    });
    return this.session;
  }

  /** The channel drained: stream data waiting for it goes on. */
  unblocked(): void {
    this.session?.mux.unblocked();
  }

  end(reason: string): void {
    this.session?.close(reason);
  }
}

/**
 * A sealed record is a frame (≤ the frame limit) plus type byte and tag: anything larger on a direct connection is an
 * attack.
 */
export const MAX_DIRECT_RECORD = DEFAULT_MAX_FRAME_BYTES + 64;
/** Dead-peer detection on direct connections (a vanished machine sends no FIN); main's dead-peer check backs it up. */
const DIRECT_KEEPALIVE_MS = 15_000;
/**
 * A direct connection's send buffer beyond which stream data waits for 'drain': with windows that grow
 * (DIRECT_MAX_STREAM_WINDOW), this, not streams × window, bounds what a sender holds for the kernel.
 */
export const DIRECT_SEND_BUFFER_BYTES = 2 * 1024 * 1024;

/** What the side that owns a direct connection hears from it. */
export interface DirectEvents {
  /** The peer's hello, the connection's first record: run the handshake and startSession, or throw to refuse. */
  onHello(record: Buffer): void;
  /** Main's renewed statement, in an established session. Without this handler a renewal breaks the connection. */
  onRenewal?(statement: DirectPreamble): void;
  /**
   * The record stream broke (a record oversized, malformed, unexpected or failing to open, or the hello refused): the
   * connection is closed right after.
   */
  onBroken(e: unknown): void;
  /** The connection closed, for whatever reason; `err` is the socket's error if it had one. */
  onClose(err?: Error): void;
}

/** Writes one record given as parts with a single gathered write (writev): no joining copy. */
function writeParts(sock: Socket, parts: Uint8Array[]): void {
  if (sock.destroyed) return;
  sock.cork();
  for (const p of parts) sock.write(p);
  sock.uncork();
}

/**
 * The direct path on one connection, at either end: the engine's dialled socket, or the one the host
 * handed to the tenant. Its session sends sealed records length-prefixed in one piece or as a gathered
 * write, grows stream windows up to DIRECT_MAX_STREAM_WINDOW in records of DIRECT_MAX_STREAM_CHUNK, and
 * holds stream data while the socket's buffer is over DIRECT_SEND_BUFFER_BYTES.
 */
export class DirectCarrier implements Carrier {
  readonly transport = 'direct';
  session: TunnelSession | undefined;
  private readonly reader = new RecordReader(MAX_DIRECT_RECORD, (parts) => this.onRecord(parts));

  constructor(
    readonly sock: Socket,
    private readonly events: DirectEvents,
  ) {}

  /**
   * Starts reading the connection: first `head`, the bytes of it already read elsewhere (the host's, at
   * the hand-off), then the socket. The engine calls this before it is connected.
   */
  start(head?: Uint8Array): void {
    const sock = this.sock;
    let error: Error | undefined;
    sock.on('error', (e) => {
      error ??= e;
    });
    sock.once('close', () => this.events.onClose(error));
    const tune = () => {
      sock.setNoDelay(true);
      sock.setKeepAlive(true, DIRECT_KEEPALIVE_MS);
    };
    if (sock.connecting) sock.once('connect', tune);
    else tune();
    sock.on('drain', () => this.session?.mux.unblocked());
    if (head?.length) this.onData(Buffer.from(head.buffer, head.byteOffset, head.byteLength));
    if (!sock.destroyed) sock.on('data', this.onData);
  }

  /** The engine's side: sends the connection's opening (preamble and hello) once connected. */
  sendOpening(opening: Buffer): void {
    if (this.sock.connecting) this.sock.once('connect', () => this.sock.write(opening));
    else this.sock.write(opening);
  }

  sendRecord(record: Uint8Array): void {
    if (!this.sock.destroyed) this.sock.write(framedRecord(record));
  }

  startSession(keys: SessionKeys, role: SessionRole): TunnelSession {
    const sock = this.sock;
    this.session = new TunnelSession({
      keys,
      ...role,
      lengthPrefixed: true,
      maxWindow: DIRECT_MAX_STREAM_WINDOW,
      maxChunk: DIRECT_MAX_STREAM_CHUNK,
      blocked: () => sock.writableLength >= DIRECT_SEND_BUFFER_BYTES,
      sendRecordv: (parts) => writeParts(sock, parts),
      sendRecord: (record) => {
        if (!sock.destroyed) sock.write(record);
      },
    });
    return this.session;
  }

  end(reason: string): void {
    this.session?.close(reason);
    this.sock.destroy();
  }

  private readonly onData = (chunk: Buffer): void => {
    try {
      this.reader.push(chunk);
    } catch (e) {
      this.sock.off('data', this.onData);
      this.events.onBroken(e);
      this.sock.destroy();
    }
  };

  private onRecord(parts: Buffer[]): void {
    const type = parts[0][0];
    if (this.session) {
      if (type === RECORD_SEALED) return this.session.onSealedParts(parts);
      if (type === RECORD_RENEWAL && this.events.onRenewal)
        return this.events.onRenewal(parseRenewal(joinParts(parts)));
      throw new ProtocolError('ERR_TUNNEL_RECORD', 'unexpected record in an established session');
    }
    if (type !== RECORD_HANDSHAKE)
      throw new ProtocolError('ERR_TUNNEL_HELLO', 'a direct connection starts with a hello');
    this.events.onHello(joinParts(parts));
  }
}
