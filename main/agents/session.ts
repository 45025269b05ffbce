/**
 * One agent's WebSocket session on main: handshake (Hello → Welcome), then the steady state in which
 * the agent may send only the upward messages its kind owns. Every protocol violation is answered with
 * an Error frame and a close code; it ends this connection only, never the process.
 */
import type { WebSocket, RawData } from 'ws';
import {
  bodyKind,
  decodeEnvelope,
  encodeEnvelope,
  kindName,
  type BodyKind,
  type Envelope,
  type EnvelopeInit,
} from '#common/codec.js';
import { isPalisadeError, ProtocolError, WS_CLOSE } from '#common/errors.js';
import { PROTOCOL_MAJOR, PROTOCOL_MINOR, SUPPORTED_MAJORS } from '#common/protocol-version.js';
import type { Logger } from '#common/logging.js';
import { formatHostPort, readHostPort } from '#common/address.js';
import { isUnspecified } from '#common/ip-address.js';
import type { AgentRecord } from '../registry.js';

export type SessionState = 'handshaking' | 'ready' | 'closed';

/** Queued toward a peer past which closing it politely is pointless: an Error frame would wait behind all of it. */
const NOT_READING_BYTES = 16 * 1024 * 1024;

/** What each kind of agent may send once ready. Anything else is a protocol violation. */
const UPWARD: Readonly<Record<'host' | 'engine', ReadonlySet<BodyKind>>> = Object.freeze({
  host: new Set<BodyKind>(['result', 'heartbeat', 'event', 'error', 'tunnel']),
  engine: new Set<BodyKind>(['result', 'heartbeat', 'event', 'error', 'tunnel']),
});

export interface SessionLimits {
  maxFrameBytes: number;
  heartbeatIntervalMs: number;
  deadPeerTimeoutMs: number;
  helloTimeoutMs: number;
  /** Sent in Welcome so hosts can hand it to their tenants. */
  signingPublicKey: string;
}

export type WelcomeInit = NonNullable<EnvelopeInit['welcome']>;

export interface SessionHandlers {
  /** What else this agent's Welcome carries (hosts: the engines of their tenants main revoked recently). */
  welcomeExtras?(s: AgentSession): Partial<WelcomeInit>;
  onReady(s: AgentSession): void;
  onFrame(s: AgentSession, env: Envelope): void;
  onClosed(s: AgentSession): void;
}

export class AgentSession {
  state: SessionState = 'handshaking';
  lastFrameAt = Date.now();
  readonly connectedAt = new Date();
  /** Hosts: where engines may dial this host directly (from its Hello), for as long as this connection lives. */
  engineEndpoint?: string;
  /** The agent's Hello (its version, its last upgrade), once it came. */
  hello?: NonNullable<Envelope['hello']>;
  private readonly helloTimer: NodeJS.Timeout;

  constructor(
    readonly ws: WebSocket,
    readonly agent: AgentRecord,
    readonly remote: string,
    private readonly limits: SessionLimits,
    private readonly handlers: SessionHandlers,
    private readonly log: Logger,
  ) {
    this.helloTimer = setTimeout(
      () => this.fail(new ProtocolError('ERR_WIRE_HELLO_TIMEOUT', `no Hello within ${limits.helloTimeoutMs} ms`)),
      limits.helloTimeoutMs,
    );
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('close', () => this.onClose());
    ws.on('error', (e) => this.log.warn({ err: e.message }, 'agent socket error'));
  }

  /** Sends a frame if the session is ready; false otherwise (the caller keeps it queued). */
  send(env: EnvelopeInit): boolean {
    if (this.state !== 'ready') return false;
    this.ws.send(encodeEnvelope(env, this.limits.maxFrameBytes));
    return true;
  }

  /**
   * Sends an already encoded frame (a relayed tunnel record) if the session is ready; `done` runs once it is
   * written to the socket, or the socket closed (not when false is returned).
   */
  sendEncoded(frame: Uint8Array, done?: () => void): boolean {
    if (this.state !== 'ready') return false;
    this.ws.send(frame, done);
    return true;
  }

  /** Bytes sent to this agent and not yet written to its socket (a peer that does not read makes it grow). */
  get queuedBytes(): number {
    return this.ws.bufferedAmount;
  }

  /**
   * Stops (or resumes) reading this agent's socket: its own send backlog then holds what it sends, as TCP's
   * would. Held, it cannot show it is alive (its frames and pongs wait unread): the silence counts from the
   * resume, not from its last frame read.
   */
  pauseReading(paused: boolean): void {
    if (this.state === 'closed' || this.ws.isPaused === paused) return;
    if (paused) this.ws.pause();
    else this.ws.resume();
    this.lastFrameAt = Date.now();
  }

  /** Main holds this agent's socket unread (pauseReading): neither its silence nor a missing pong means it is gone. */
  get readingPaused(): boolean {
    return this.ws.isPaused;
  }

  /**
   * Ends the session with an Error frame (if the socket still takes one) and a close code. A peer with more
   * than NOT_READING_BYTES queued toward it is not reading: its socket is cut at once rather than kept, with
   * all that it holds, while the Error frame and the closing handshake wait behind it.
   */
  close(closeCode: number, code: string, message: string, retryAfterMs?: number): void {
    if (this.state === 'closed') return;
    try {
      if (this.ws.bufferedAmount > NOT_READING_BYTES) this.ws.terminate();
      else {
        if (this.ws.readyState === this.ws.OPEN) {
          this.ws.send(
            encodeEnvelope({
              error: { code, message, retryable: retryAfterMs !== undefined, retryAfterMs: retryAfterMs ?? 0 },
            }),
          );
        }
        this.ws.close(closeCode, code.slice(0, 120));
      }
    } catch {
      this.ws.terminate();
    }
    this.markClosed();
  }

  /**
   * Whether the peer answers a WebSocket ping within `timeoutMs` (any frame from it counts too). ws
   * answers pings by itself, so this tests the peer's socket and event loop, not its application.
   */
  answersPing(timeoutMs: number): Promise<boolean> {
    if (this.state !== 'ready' || this.ws.readyState !== this.ws.OPEN) return Promise.resolve(false);
    // Held by main, its pong would wait unread: it was alive when held, and a copy must not take over.
    if (this.ws.isPaused) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (alive: boolean) => {
        clearTimeout(timer);
        this.ws.off('pong', yes).off('message', yes).off('close', no);
        resolve(alive);
      };
      const yes = () => done(true);
      const no = () => done(false);
      const timer = setTimeout(no, timeoutMs);
      this.ws.on('pong', yes).on('message', yes).on('close', no);
      this.ws.ping();
    });
  }

  private fail(e: unknown): void {
    const err = isPalisadeError(e) ? e : new ProtocolError('ERR_WIRE_INTERNAL', 'internal error handling frame');
    this.log.warn({ code: err.code, agentId: this.agent.id }, 'closing agent connection on protocol error');
    const closeCode =
      err.category === 'too-large'
        ? WS_CLOSE.tooBig
        : err.code === 'ERR_WIRE_VERSION'
          ? WS_CLOSE.version
          : err.category === 'access-denied'
            ? WS_CLOSE.policy
            : WS_CLOSE.protocol;
    this.close(closeCode, err.code, err.message);
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (this.state === 'closed') return;
    try {
      if (!isBinary) throw new ProtocolError('ERR_WIRE_TEXT_FRAME', 'frames must be binary protobuf Envelopes');
      // ws hands over a Buffer (binaryType nodebuffer): use it as is; Buffer.from(buffer) would copy every frame.
      const bytes = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      const env = decodeEnvelope(bytes, this.limits.maxFrameBytes);
      this.lastFrameAt = Date.now();
      if (this.state === 'handshaking') this.onHello(env);
      else this.onSteady(env);
    } catch (e) {
      this.fail(e);
    }
  }

  private onHello(env: Envelope): void {
    const hello = env.hello;
    if (!hello) throw new ProtocolError('ERR_WIRE_EXPECTED_HELLO', `first frame must be Hello, got ${bodyKind(env)}`);
    const major = hello.protocolMajor ?? 0;
    if (!SUPPORTED_MAJORS.includes(major)) {
      throw new ProtocolError(
        'ERR_WIRE_VERSION',
        `protocol ${major}.${hello.protocolMinor ?? 0} is not supported; main speaks ${SUPPORTED_MAJORS.join(', ')}.x — upgrade the agent`,
      );
    }
    const kind = kindName(hello.kind);
    if (kind !== this.agent.kind || hello.name !== this.agent.name) {
      throw new ProtocolError(
        'ERR_WIRE_IDENTITY',
        `Hello names ${kind} "${hello.name}" but the certificate belongs to ${this.agent.kind} "${this.agent.name}"`,
      );
    }
    clearTimeout(this.helloTimer);
    this.hello = hello;
    if (this.agent.kind === 'host') this.engineEndpoint = directEndpoint(hello.engineEndpoint ?? '', this.remote);
    this.state = 'ready';
    this.send({
      replyTo: env.id,
      welcome: {
        protocolMajor: PROTOCOL_MAJOR,
        protocolMinor: PROTOCOL_MINOR,
        agentId: this.agent.id,
        heartbeatIntervalMs: this.limits.heartbeatIntervalMs,
        deadPeerTimeoutMs: this.limits.deadPeerTimeoutMs,
        maxFrameBytes: this.limits.maxFrameBytes,
        signingPublicKey: this.limits.signingPublicKey,
        ...this.handlers.welcomeExtras?.(this),
      },
    });
    this.handlers.onReady(this);
  }

  private onSteady(env: Envelope): void {
    const kind = bodyKind(env);
    if (!UPWARD[this.agent.kind].has(kind)) {
      throw new ProtocolError('ERR_WIRE_UNEXPECTED', `a ${this.agent.kind} may not send ${kind}`);
    }
    // Only tunnel records name a tenant; the tunnel router checks this agent serves it.
    if (env.tenant && kind !== 'tunnel')
      throw new ProtocolError(
        'ERR_WIRE_FOREIGN_TENANT',
        `frame names tenant "${env.tenant}" which this agent does not serve`,
      );
    this.handlers.onFrame(this, env);
  }

  private onClose(): void {
    this.markClosed();
  }

  private markClosed(): void {
    if (this.state === 'closed') return;
    clearTimeout(this.helloTimer);
    this.state = 'closed';
    this.handlers.onClosed(this);
  }
}

/**
 * A host's announced engine endpoint, checked; an unspecified address (the host listens on all of its
 * interfaces) becomes the address main sees the host connect from.
 */
export function directEndpoint(announced: string, remote: string): string | undefined {
  const at = readHostPort(announced, 'dial');
  if ('problem' in at) return undefined;
  if (!isUnspecified(at.host)) return announced;
  // `remote` is ADDRESS:PORT as the socket reports it (ws-upgrade.ts), an IPv6 address without brackets.
  const ip = remote.slice(0, remote.lastIndexOf(':')).replace(/^::ffff:/, '');
  if (!ip || ip === '?') return undefined;
  return formatHostPort(ip, at.port);
}
