/**
 * The agent's one connection to main: dial with mutual TLS (pinned CA), Hello → Welcome, then
 * heartbeats and frames until the socket drops; reconnect with capped exponential backoff and full
 * jitter. With several main URLs, a failed dial moves on to the next URL at once and the backoff comes
 * between passes over the list (main-url-rotation.ts). Auth and version refusals are permanent, from
 * whichever URL, and end the loop with a `fatal` callback.
 *
 * States: idle → connecting → handshaking → ready → backoff → connecting … ; connecting or handshaking
 * → connecting is the next URL of a pass; closed is terminal.
 */
import WebSocket from 'ws';
import { Agent as HttpsAgent } from 'node:https';
import { Backoff } from '#common/backoff.js';
import { MainUrlRotation, type NextDial } from './main-url-rotation.js';
import {
  decodeEnvelope,
  encodeEnvelope,
  encodeTunnelFrame,
  kindFromName,
  type Envelope,
  type EnvelopeInit,
  DEFAULT_MAX_FRAME_BYTES,
} from '#common/codec.js';
import { AccessDeniedError, ConnectionError, errorMessage, PalisadeError, ProtocolError } from '#common/errors.js';
import { peerCode } from '#common/error-codes.js';
import { tlsProfile } from '#common/tls-profile.js';
import { AGENT_VERSION, PROTOCOL_MAJOR, PROTOCOL_MINOR } from '#common/protocol-version.js';
import type { Logger } from '#common/logging.js';

export type ConnState = 'idle' | 'connecting' | 'handshaking' | 'ready' | 'backoff' | 'closed';

const TRANSITIONS: Readonly<Record<ConnState, readonly ConnState[]>> = {
  idle: ['connecting', 'closed'],
  connecting: ['handshaking', 'connecting', 'backoff', 'closed'],
  handshaking: ['ready', 'connecting', 'backoff', 'closed'],
  ready: ['backoff', 'closed'],
  backoff: ['connecting', 'closed'],
  closed: [],
};

/** Codes main uses for refusals that retrying cannot fix. */
const PERMANENT_CODES = new Set([
  'ERR_WIRE_VERSION',
  'ERR_AGENT_REVOKED',
  'ERR_AGENT_CERT_REQUIRED',
  'ERR_WIRE_IDENTITY',
]);
const HANDSHAKE_TIMEOUT_MS = 15_000;
/**
 * Send backlog beyond which the relayed tunnel holds its stream data (as the direct path does with its
 * socket's): flow-control credit alone let 100 streams × their windows queue in ws as several copies
 * each (plaintext, sealed, framed), and an engine's RSS grew by 200+ MiB in tunnel-flow-relay.
 */
export const SEND_BACKLOG_BYTES = 2 * 1024 * 1024;
/** { tenant?, tunnel: { engineId?, record } } and nothing else: what encodeTunnelFrame writes. */
function isPlainTunnel(env: EnvelopeInit): boolean {
  for (const k of Object.keys(env)) if (k !== 'tenant' && k !== 'tunnel') return false;
  for (const k of Object.keys(env.tunnel!)) if (k !== 'engineId' && k !== 'record') return false;
  return true;
}
const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

export interface ConnectionOptions {
  /** Main's URLs in the order to try them (at least one). */
  mainUrls: readonly string[];
  ca: string;
  cert: string;
  key: string;
  kind: 'host' | 'engine';
  name: string;
  /** The release this agent runs, reported in every Hello (AGENT_VERSION outside an installed release). */
  version?: string;
  /** How the last upgrade ended, reported in every Hello (agent/upgrade/). */
  lastUpgrade?: { attempt: string; version: string; ok: boolean; failed?: string; at: number };
  log: Logger;
  /** Hosts: where engines may dial this host directly, announced in every Hello (undefined: relay only). */
  engineEndpoint?: string;
  heartbeatPayload(): Promise<EnvelopeInit['heartbeat']>;
  onFrame(env: Envelope): void;
  /** Called on every (re)connect with main's Welcome. */
  onReady?(welcome: NonNullable<Envelope['welcome']>): void;
  onFatal(e: PalisadeError): void;
  backoff?: Backoff;
}

export class MainConnection {
  private stateValue: ConnState = 'idle';
  private ws?: WebSocket;
  private readonly backoff: Backoff;
  private readonly urls: MainUrlRotation;
  private heartbeatTimer?: NodeJS.Timeout;
  private wakeTimer?: NodeJS.Timeout;
  private wake?: () => void;
  private lastFromMain = 0;
  private retryAfterMs?: number;
  private maxFrameBytes = DEFAULT_MAX_FRAME_BYTES;
  private nextId = 1;
  private loop?: Promise<void>;

  /** Caches the TLS session, so a reconnect (e.g. after main restarts) resumes instead of a full handshake. */
  private readonly tlsAgent: HttpsAgent;

  constructor(private readonly o: ConnectionOptions) {
    this.backoff = o.backoff ?? new Backoff();
    this.urls = new MainUrlRotation(o.mainUrls);
    this.tlsAgent = new HttpsAgent({
      ca: o.ca,
      cert: o.cert,
      key: o.key,
      ...tlsProfile(),
      keepAlive: false,
      maxCachedSessions: 4,
    });
  }

  get state(): ConnState {
    return this.stateValue;
  }

  /** The main URL being dialled, or connected to once ready. */
  get url(): string {
    return this.urls.current;
  }

  private isClosed(): boolean {
    return this.stateValue === 'closed';
  }

  private to(next: ConnState): void {
    if (this.stateValue === 'closed') return; // close() may race any event; it wins
    if (!TRANSITIONS[this.stateValue].includes(next))
      throw new PalisadeError(
        'internal',
        'ERR_CONNECTION_STATE',
        `bad connection transition ${this.stateValue} → ${next}`,
      );
    if (this.stateValue !== next) this.o.log.debug({ from: this.stateValue, to: next }, 'connection state');
    this.stateValue = next;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Bytes handed to ws.send and not yet written to the socket: the connection's send backlog. */
  private unsent = 0;
  private readonly drainListeners: (() => void)[] = [];

  /** Whether the send backlog is over SEND_BACKLOG_BYTES: bulk senders (the relayed tunnel) should wait for onDrain. */
  get backlogged(): boolean {
    return this.unsent >= SEND_BACKLOG_BYTES;
  }

  /** Called each time the send backlog falls back under SEND_BACKLOG_BYTES. */
  onDrain(listener: () => void): void {
    this.drainListeners.push(listener);
  }

  send(env: EnvelopeInit): boolean {
    if (this.stateValue !== 'ready' || !this.ws) return false;
    const t = env.tunnel;
    // Tunnel records, the bulk of the traffic, skip protobufjs (one copy, no writer objects) and carry
    // no id: nothing correlates them.
    const frame =
      t?.record && isPlainTunnel(env)
        ? encodeTunnelFrame(env.tenant ?? '', t.engineId ?? '', t.record, this.maxFrameBytes)
        : encodeEnvelope({ id: env.id ?? this.nextId++, ...env }, this.maxFrameBytes);
    const len = frame.length;
    this.unsent += len;
    // ws calls back once the frame is written to the socket, or with an error when the connection closes.
    this.ws.send(frame, () => {
      const was = this.backlogged;
      this.unsent -= len;
      if (was && !this.backlogged) for (const l of this.drainListeners) l();
    });
    return true;
  }

  private async run(): Promise<void> {
    while (this.stateValue !== 'closed') {
      const url = this.urls.current;
      this.to('connecting');
      this.o.log.info({ url }, 'connecting to main');
      let next: NextDial;
      try {
        await this.connectOnce(url);
        next = this.urls.lost();
      } catch (e) {
        if (this.isClosed()) break;
        if (e instanceof PalisadeError && PERMANENT_CODES.has(e.code)) {
          this.o.log.error({ url, code: e.code }, 'main refused this agent permanently');
          this.close();
          this.o.onFatal(e);
          break;
        }
        this.o.log.warn({ url, err: errorMessage(e) }, 'connection to main failed');
        next = this.urls.failed();
      }
      if (this.isClosed()) break;
      // Main's "come back later" (shutting down, duplicate session) is honoured before any URL: the
      // other URLs are usually the same main by another route, and the hint exists to spread a fleet.
      if (next.backOff || this.retryAfterMs !== undefined) await this.waitBackoff(next.url);
    }
  }

  private async waitBackoff(url: string): Promise<void> {
    this.to('backoff');
    const delay = this.backoff.next(this.retryAfterMs);
    this.retryAfterMs = undefined;
    this.o.log.info({ delayMs: delay, url }, 'reconnecting after backoff');
    await new Promise<void>((r) => {
      this.wake = r;
      this.wakeTimer = setTimeout(r, delay);
    });
  }

  /** Resolves when an established connection closes; rejects when it could not be established. */
  private connectOnce(url: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(new URL('/agent/v1', url), {
        agent: this.tlsAgent,
        ca: this.o.ca,
        cert: this.o.cert,
        key: this.o.key,
        ...tlsProfile(),
        perMessageDeflate: false,
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
        maxPayload: DEFAULT_MAX_FRAME_BYTES + 64 * 1024,
        // An all-zero mask lets ws send frames without copying and XOR-ing every payload byte (tunnel
        // records are up to 256 KiB). Masking only guards browser-scripted bytes against confused HTTP
        // intermediaries; this client is not a browser and its frames travel inside mTLS to main.
        generateMask: zeroMask,
      });
      this.ws = ws;
      let established = false;
      let failure: Error | undefined;
      const handshakeTimer = setTimeout(() => {
        failure = new ConnectionError('ERR_HANDSHAKE_TIMEOUT', 'no Welcome from main');
        ws.terminate();
      }, HANDSHAKE_TIMEOUT_MS);

      ws.on('unexpected-response', (_req, res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let code = `ERR_HTTP_${res.statusCode}`;
          let message = `main answered HTTP ${res.statusCode}`;
          try {
            const b = JSON.parse(Buffer.concat(chunks).toString()) as { error?: { code: string; message: string } };
            if (b.error) {
              code = b.error.code;
              message = b.error.message;
            }
          } catch {
            /* not JSON */
          }
          failure =
            res.statusCode === 401 || res.statusCode === 403
              ? new AccessDeniedError(peerCode(code), message)
              : new ConnectionError(peerCode(code), message);
          ws.terminate();
        });
      });
      ws.on('open', () => {
        this.to('handshaking');
        ws.send(
          encodeEnvelope({
            id: this.nextId++,
            hello: {
              protocolMajor: PROTOCOL_MAJOR,
              protocolMinor: PROTOCOL_MINOR,
              agentVersion: this.o.version ?? AGENT_VERSION,
              kind: kindFromName(this.o.kind),
              name: this.o.name,
              engineEndpoint: this.o.engineEndpoint ?? '',
              lastUpgrade: upgradeReport(this.o.lastUpgrade),
            },
          }),
        );
      });
      ws.on('message', (data) => {
        let env: Envelope;
        try {
          env = decodeEnvelope(data as Buffer, this.maxFrameBytes + 64 * 1024);
        } catch (e) {
          failure = e as Error;
          ws.close(1002);
          return;
        }
        this.lastFromMain = Date.now();
        if (env.error) {
          this.retryAfterMs = env.error.retryAfterMs || undefined;
          // Permanent refusals are access errors: the CLI exits 2 and systemd does not restart.
          const err = PERMANENT_CODES.has(env.error.code ?? '')
            ? new AccessDeniedError(peerCode(env.error.code!), env.error.message ?? '')
            : new ConnectionError(
                env.error.code ? peerCode(env.error.code) : 'ERR_MAIN_ERROR',
                env.error.message || 'main reported an error',
              );
          failure = err;
          this.o.log.warn({ code: env.error.code }, 'main sent an error');
          return;
        }
        if (this.stateValue === 'handshaking') {
          if (!env.welcome) {
            failure = new ProtocolError('ERR_WIRE_EXPECTED_WELCOME', 'main did not answer Hello with Welcome');
            ws.close(1002);
            return;
          }
          clearTimeout(handshakeTimer);
          established = true;
          this.maxFrameBytes = env.welcome.maxFrameBytes || DEFAULT_MAX_FRAME_BYTES;
          this.to('ready');
          this.backoff.reset();
          this.startHeartbeats(env.welcome.heartbeatIntervalMs || 10_000, env.welcome.deadPeerTimeoutMs || 30_000);
          this.o.log.info({ agentId: env.welcome.agentId, url }, 'connected to main');
          this.o.onReady?.(env.welcome);
          return;
        }
        if (env.heartbeat) return; // main's heartbeat answer: lastFromMain already updated
        this.o.onFrame(env);
      });
      ws.on('error', (e) => {
        failure ??= e;
      });
      ws.on('close', (code) => {
        clearTimeout(handshakeTimer);
        this.stopHeartbeats();
        if (this.ws === ws) this.ws = undefined;
        if (established) {
          this.o.log.info({ code, url }, 'disconnected from main');
          if (failure instanceof PalisadeError && PERMANENT_CODES.has(failure.code)) reject(failure);
          else resolve();
        } else {
          reject(
            failure ??
              new ConnectionError('ERR_CONNECT_CLOSED', `connection closed (${code}) before the handshake finished`),
          );
        }
      });
    });
  }

  private startHeartbeats(intervalMs: number, deadPeerMs: number): void {
    const beat = async () => {
      if (Date.now() - this.lastFromMain > deadPeerMs) {
        this.o.log.warn({ deadPeerMs }, 'main silent too long; reconnecting');
        this.ws?.terminate();
        return;
      }
      try {
        this.send({ heartbeat: await this.o.heartbeatPayload() });
      } catch (e) {
        this.o.log.warn({ err: errorMessage(e) }, 'heartbeat failed');
      }
    };
    void beat();
    this.heartbeatTimer = setInterval(() => void beat(), intervalMs);
  }

  private stopHeartbeats(): void {
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  /** Idempotent: stops reconnecting and closes the socket. */
  close(): void {
    if (this.stateValue === 'closed') return;
    this.stateValue = 'closed';
    this.stopHeartbeats();
    clearTimeout(this.wakeTimer);
    this.wake?.();
    this.ws?.close(1000);
  }

  async closed(): Promise<void> {
    await this.loop;
  }
}

function upgradeReport(r: ConnectionOptions['lastUpgrade']): NonNullable<EnvelopeInit['hello']>['lastUpgrade'] {
  if (!r) return undefined;
  return { attempt: r.attempt, version: r.version, ok: r.ok, reason: r.failed ?? '', atMs: r.at };
}
