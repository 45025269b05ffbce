/**
 * The engine's syslog sockets (agent.json `syslog`): UDP (one message per datagram, RFC 5426), TCP (RFC 6587,
 * either framing, syslog-framing.ts) and TLS (RFC 5425: the same framing inside TLS with the engine's own
 * certificate and key, common/tls-profile.ts settings; senders are not asked for certificates). Each message goes to
 * the sink (the spool) with the time it arrived and the sender's address, as a span of the bytes read (no object per
 * message; a function sink gets a SyslogRecord); a message longer than MAX_SYSLOG_MESSAGE_BYTES is cut. A connection
 * whose framing breaks is closed alone; the listener goes on. Not what happens to records next (syslog-spool.ts,
 * syslog-forwarder.ts).
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIPv6, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { errorMessage, UnavailableError } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import { tlsProfile } from '#common/tls-profile.js';
import { formatSyslogListen, type SyslogListen } from '#common/syslog-listen.js';
import {
  MAX_SYSLOG_MESSAGE_BYTES as MAX_MESSAGE,
  messageText,
  type SyslogRecord,
  type SyslogTransport,
} from '#common/syslog-record.js';
import type { SyslogOrigin } from './syslog-batch.js';
import { SyslogFramer } from './syslog-framing.js';

const LF = 0x0a;
const CR = 0x0d;

/** Connections per TCP/TLS listener: senders hold one or a few each; past this, a flood of idle sockets. */
const MAX_CONNECTIONS = 1_000;
/**
 * The UDP socket's receive buffer asked of the kernel (capped by net.core.rmem_max): bursts arrive faster than one
 * event loop turn, and a datagram the buffer cannot hold is lost without a trace.
 */
const UDP_RECV_BUFFER = 8 * 1024 * 1024;
/** A TLS sender that does not finish its handshake in this time is dropped (it holds a connection slot). */
const TLS_HANDSHAKE_MS = 10_000;
/** Framing errors are logged at most this often per listener; the rest are counted. */
const ERROR_LOG_MS = 10_000;
/** A connection that sends nothing for this long is closed: idle sockets would hold the slots real senders need. */
export const SYSLOG_IDLE_TIMEOUT_MS = 120_000;
/** Open connections one sender address may hold (all TCP/TLS listeners together); more are refused. */
export const SYSLOG_MAX_PER_SOURCE = 16;
/** Refused connections are logged at most this often, with the count since. */
const REFUSED_LOG_MS = 60_000;

export interface ListenerOptions {
  /** Idle timeout of TCP/TLS connections (default SYSLOG_IDLE_TIMEOUT_MS). */
  idleTimeoutMs?: number;
  /** Open connections per sender address (default SYSLOG_MAX_PER_SOURCE). */
  maxPerSource?: number;
}

export interface ListenerCounts {
  /** Connections closed for a malformed octet count. */
  framingErrors: number;
  /** Messages cut at MAX_SYSLOG_MESSAGE_BYTES. */
  cut: number;
  /** Connections closed after sending nothing for the idle timeout. */
  idleClosed: number;
  /** Connections refused because their sender address already held its share. */
  refusedPerSource: number;
}

export interface SyslogListenerInfo {
  listen: string;
  transport: SyslogTransport;
  port: number;
}

/**
 * Where messages go: the spool's way (each message as a span of the bytes read and where and when it came from, so
 * no object is made per message) or, simpler, a function taking each as a SyslogRecord.
 */
export type SyslogSink =
  { message(src: Buffer, start: number, end: number, origin: SyslogOrigin): void } | ((rec: SyslogRecord) => void);

/** The IPv4 address inside an IPv4-mapped IPv6 one (a dual-stack socket's view of an IPv4 sender). */
const senderOf = (address: string | undefined) => (address?.startsWith('::ffff:') ? address.slice(7) : (address ?? ''));

export class SyslogListeners {
  private readonly closers: (() => Promise<void>)[] = [];
  readonly listening: SyslogListenerInfo[] = [];
  readonly counts: ListenerCounts = { framingErrors: 0, cut: 0, idleClosed: 0, refusedPerSource: 0 };
  private errorLoggedAt = 0;
  private refusedLoggedAt = 0;
  private refusedSinceLog = 0;
  /** Open TCP/TLS connections per sender address. */
  private readonly perSource = new Map<string, number>();
  private readonly idleTimeoutMs: number;
  private readonly maxPerSource: number;

  private readonly accept: (src: Buffer, start: number, end: number, origin: SyslogOrigin) => void;

  constructor(
    sink: SyslogSink,
    private readonly log: Logger,
    /** The engine's certificate and key (PEM), for TLS listeners. */
    private readonly tls: { cert: string; key: string },
    options: ListenerOptions = {},
  ) {
    this.accept =
      typeof sink === 'function'
        ? (src, start, end, o) =>
            sink({
              receivedAt: o.receivedAt,
              sender: o.sender,
              transport: o.transport,
              raw: messageText(src.subarray(start, end)),
            })
        : (src, start, end, o) => sink.message(src, start, end, o);
    this.idleTimeoutMs = options.idleTimeoutMs ?? SYSLOG_IDLE_TIMEOUT_MS;
    this.maxPerSource = options.maxPerSource ?? SYSLOG_MAX_PER_SOURCE;
  }

  /** Opens every listener; throws (closing those already open) if one cannot bind. */
  async start(specs: readonly SyslogListen[]): Promise<void> {
    try {
      for (const spec of specs) {
        const port = spec.transport === 'udp' ? await this.udp(spec) : await this.stream(spec);
        const listen = formatSyslogListen({ ...spec, port });
        this.listening.push({ listen, transport: spec.transport, port });
        this.log.info({ listen, transport: spec.transport, port }, `syslog listening on ${listen}`);
      }
    } catch (e) {
      await this.close();
      throw e;
    }
  }

  async close(): Promise<void> {
    const closers = this.closers.splice(0);
    await Promise.all(closers.map((c) => c()));
  }

  private record(src: Buffer, start: number, end: number, origin: SyslogOrigin): void {
    if (end - start > MAX_MESSAGE) this.counts.cut++;
    this.accept(src, start, end, origin);
  }

  private async udp(spec: SyslogListen): Promise<number> {
    const sock: UdpSocket = createSocket({
      type: isIPv6(spec.host) ? 'udp6' : 'udp4',
      recvBufferSize: UDP_RECV_BUFFER,
    });
    sock.on('message', (msg, rinfo) => {
      // A datagram is one message; senders that end it with a newline (printf, some devices) do not mean one in it.
      let end = msg.length;
      if (end > 0 && msg[end - 1] === LF) end--;
      if (end > 0 && msg[end - 1] === CR) end--;
      if (end > 0)
        this.record(msg, 0, end, { receivedAt: Date.now(), sender: senderOf(rinfo.address), transport: 'udp' });
    });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', (e) => reject(cannotListen(spec, e)));
      sock.bind(spec.port, spec.host, () => resolve());
    });
    sock.on('error', (e) => this.log.warn({ err: errorMessage(e) }, 'syslog UDP socket error'));
    this.closers.push(() => new Promise<void>((r) => sock.close(() => r())));
    return sock.address().port;
  }

  private async stream(spec: SyslogListen): Promise<number> {
    const transport = spec.transport;
    const onConnection = (sock: Socket) => this.connection(sock, transport);
    const server: Server =
      transport === 'tls'
        ? createTlsServer(
            { ...tlsProfile(), cert: this.tls.cert, key: this.tls.key, handshakeTimeout: TLS_HANDSHAKE_MS },
            onConnection,
          )
        : createServer(onConnection);
    server.maxConnections = MAX_CONNECTIONS;
    // A failed TLS handshake (a scanner, a sender without our CA) is the sender's problem, not ours.
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(cannotListen(spec, e)));
      server.listen(spec.port, spec.host, () => resolve());
    });
    const open = new Set<Socket>();
    // The raw socket, before any TLS handshake: the per-source cap holds for sockets still in their handshake too.
    server.on('connection', (s: Socket) => {
      if (!this.admit(s)) return;
      open.add(s);
      s.once('close', () => open.delete(s));
    });
    this.closers.push(
      () =>
        new Promise<void>((r) => {
          server.close(() => r());
          for (const s of open) s.destroy();
        }),
    );
    return (server.address() as { port: number }).port;
  }

  /** Counts the connection against its sender's share; false (and destroyed) past it. */
  private admit(s: Socket): boolean {
    const sender = senderOf(s.remoteAddress);
    const held = this.perSource.get(sender) ?? 0;
    if (held >= this.maxPerSource) {
      s.destroy();
      this.counts.refusedPerSource++;
      this.refusedSinceLog++;
      if (Date.now() - this.refusedLoggedAt >= REFUSED_LOG_MS) {
        this.refusedLoggedAt = Date.now();
        this.log.warn(
          { sender, refused: this.refusedSinceLog, maxPerSource: this.maxPerSource },
          'syslog connections refused: too many open from one address',
        );
        this.refusedSinceLog = 0;
      }
      return false;
    }
    this.perSource.set(sender, held + 1);
    s.once('close', () => {
      const n = (this.perSource.get(sender) ?? 1) - 1;
      if (n > 0) this.perSource.set(sender, n);
      else this.perSource.delete(sender);
    });
    return true;
  }

  private connection(sock: Socket, transport: SyslogTransport): void {
    const sender = senderOf(sock.remoteAddress);
    // One origin per connection and millisecond: the messages of one read arrived together.
    let origin: SyslogOrigin = { receivedAt: 0, sender, transport };
    const framer = SyslogFramer.ofSpans((src, start, end) => this.record(src, start, end, origin), MAX_MESSAGE + 3);
    sock.on('error', () => undefined);
    // On the TLS socket itself (its handshake has its own timeout): the raw one does not see the decrypted reads.
    sock.setTimeout(this.idleTimeoutMs, () => {
      this.counts.idleClosed++;
      sock.destroy();
    });
    sock.on('data', (chunk: Buffer) => {
      const now = Date.now();
      if (now !== origin.receivedAt) origin = { receivedAt: now, sender, transport };
      try {
        framer.push(chunk);
      } catch (e) {
        this.counts.framingErrors++;
        if (Date.now() - this.errorLoggedAt >= ERROR_LOG_MS) {
          this.errorLoggedAt = Date.now();
          this.log.warn(
            { sender, transport, code: (e as { code?: string }).code, err: errorMessage(e) },
            'syslog connection closed',
          );
        }
        sock.destroy();
      }
    });
    sock.on('end', () => framer.end());
  }
}

function cannotListen(spec: SyslogListen, e: Error): UnavailableError {
  return new UnavailableError(
    'ERR_LISTEN',
    `engine cannot listen for syslog on ${formatSyslogListen(spec)}: ${e.message}`,
  );
}
