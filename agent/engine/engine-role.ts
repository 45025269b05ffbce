/**
 * What makes an agent an engine: on every connection to main it opens an end-to-end session with its
 * tenant, then does what the tenant asks over that session. The session runs on the shortest path that
 * works: main answers the engine's hello with the tenant's host's direct endpoint (and main's signed word
 * on the engine's key) when the host offers one, and the engine dials it; if that fails (customer networks
 * often cannot reach the MSSP's hosts), a fresh hello goes the relayed way, engine → main → host → tenant.
 * On the direct path the session lives as long as main's statement about the engine: halfway through its
 * life the engine asks main for a fresh one and hands it to the tenant over the session (the tenant ends a
 * session whose statement expired, so an engine main no longer vouches for loses it). Over either path it
 * dials allow-listed destinations for outbound tunnel streams, listens for inbound tunnels, and runs
 * integration commands. Every refusal closes that stream (or fails that command) with a reason, and is
 * reported to main's audit log.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import { DEFAULT_MAX_FRAME_BYTES, jsonBytes, type Envelope, type EnvelopeInit } from '#common/codec.js';
import { engineHandshake, type EngineHandshake, type EngineHello, type SessionKeys, type TenantHello } from '../tunnel/tunnel-crypto.js';
import { aeadBackend } from '../tunnel/native-aead.js';
import { DIRECT_SEND_BUFFER_BYTES, encodePreamble, framedRecord, joinParts, RecordReader, renewalRecord, writeParts, type DirectPreamble } from '../tunnel/tunnel-direct.js';
import { handshakeRecord, parseHandshake, RECORD_HANDSHAKE, RECORD_SEALED } from '../tunnel/tunnel-records.js';
import { TunnelSession } from '../tunnel/tunnel-session.js';
import { DIRECT_MAX_STREAM_CHUNK, DIRECT_MAX_STREAM_WINDOW, type MuxStream } from '../tunnel/stream-mux.js';
import { spliceSocket } from '../tunnel/socket-splice.js';
import { BadParameterError, ProtocolError, UnavailableError, errorMessage } from '#common/errors.js';
import type { AgentConfig } from '#common/agent-dir.js';
import type { Logger } from '#common/logging.js';
import { formatHostPort, parseHostPort, readHostPort } from '#common/address.js';
import { AllowList } from './allow-list.js';
import { runHttpRequest, runTcpCheck } from './integration-commands.js';

const DIAL_TIMEOUT_MS = 10_000;
const HANDSHAKE_WAIT_MS = 15_000;
/** Connect plus handshake on the direct path; past it the engine relays through main instead. */
const DIRECT_SETUP_MS = 5_000;
const DIRECT_KEEPALIVE_MS = 15_000;
/** Session restarts (direct connection lost, handshake unanswered) back off up to this. */
const RESTART_CAP_MS = 60_000;
const MAX_DIRECT_RECORD = DEFAULT_MAX_FRAME_BYTES + 64;
const LISTENER_ID = /^tun_[0-9a-f]{12}$/;
/**
 * A direct session asks main for a fresh statement this far into the current one's life: with main's
 * default of a minute, every 30 s, leaving 30 s for the answer to arrive before the tenant ends the session.
 */
const RENEW_AT = 0.5;
/** Until main answers a renewal request (a reconnect, a lost frame), it is asked again this often. */
const RENEW_RETRY_MS = 5_000;

type DirectOffer = NonNullable<NonNullable<Envelope['tunnel']>['direct']>;

/** What the relayed session needs of the connection to main besides send: its backlog and when it drains. */
export interface RelayLink { readonly backlogged: boolean; onDrain(listener: () => void): void }

export class EngineRole {
  private hs?: EngineHandshake;
  private hsTimer?: NodeJS.Timeout;
  private session?: TunnelSession;
  /** The direct connection to the tenant's host, being set up or carrying the session. */
  private direct?: Socket;
  private restartTimer?: NodeJS.Timeout;
  private renewTimer?: NodeJS.Timeout;
  private restarts = 0;
  private send?: (env: EnvelopeInit) => boolean;
  private link?: RelayLink;
  private readonly allow: AllowList;
  /** Inbound tunnel listeners the tenant asked for; they live as long as the session that asked. */
  private readonly listeners = new Map<string, Server>();

  private constructor(private readonly config: AgentConfig, private readonly box: { publicKey: Uint8Array; secretKey: Uint8Array }, private readonly log: Logger) {
    this.allow = new AllowList(config.allow ?? []);
  }

  static async load(config: AgentConfig, boxKeyPath: string, log: Logger): Promise<EngineRole> {
    const raw = JSON.parse(await readFile(boxKeyPath, 'utf8')) as { publicKey: string; secretKey: string };
    return new EngineRole(config, { publicKey: Buffer.from(raw.publicKey, 'base64'), secretKey: Buffer.from(raw.secretKey, 'base64') }, log);
  }

  /**
   * Each (re)connection to main starts a fresh session; streams of the old one end with an error. `link` is
   * the connection to main: its send backlog paces the relayed session (data waits while it is backlogged,
   * and goes on at its drain).
   */
  onWelcome(send: (env: EnvelopeInit) => boolean, link?: RelayLink): void {
    this.send = send;
    if (link && this.link !== link) {
      this.link = link;
      link.onDrain(() => { if (this.session && !this.direct) this.session.mux.unblocked(); });
    }
    this.endSession('engine reconnected');
    this.restarts = 0;
    this.startSession(this.config.direct !== false);
  }

  /** Sends a fresh hello through main; with `direct`, main may answer with the host's endpoint instead of relaying it. */
  private startSession(direct: boolean): void {
    clearTimeout(this.restartTimer);
    if (!this.send || !this.config.tenant || !this.config.tenantPublicKey) return;
    const hs = engineHandshake(this.box, Buffer.from(this.config.tenantPublicKey, 'base64'));
    // Not connected to main: the next Welcome starts a session.
    if (!this.send({ tenant: this.config.tenant, tunnel: { record: handshakeRecord(hs.hello as EngineHello), directOk: direct } })) return;
    this.hs = hs;
    // The tenant stays silent towards a hello it cannot open (it must not help a prober): say so here.
    clearTimeout(this.hsTimer);
    this.hsTimer = setTimeout(() => {
      if (this.hs !== hs) return;
      this.log.error({ tenant: this.config.tenant, code: 'ERR_TUNNEL_HANDSHAKE_TIMEOUT' }, `no tunnel session after ${HANDSHAKE_WAIT_MS / 1000} s: the tenant is down, or refused this engine (a wrong tenantPublicKey in the config, or an engine key main does not know)`);
      this.endSession('handshake unanswered');
      this.scheduleRestart();
    }, HANDSHAKE_WAIT_MS);
    this.hsTimer.unref();
  }

  /** Tries again later (capped exponential backoff with jitter), while main's connection lasts. */
  private scheduleRestart(): void {
    clearTimeout(this.restartTimer);
    const delay = Math.min(RESTART_CAP_MS, 1000 * 2 ** this.restarts++) * (0.5 + Math.random() / 2);
    this.restartTimer = setTimeout(() => { if (!this.session && !this.hs) this.startSession(this.config.direct !== false); }, delay);
    this.restartTimer.unref();
  }

  onTunnel(env: Envelope): void {
    const t = env.tunnel;
    if (t?.direct) {
      if (this.hs && !this.direct) this.dialDirect(this.hs, t.direct);
      else if (this.session && this.direct) this.renewDirect(this.direct, t.direct);
      return;
    }
    const record = t?.record ?? new Uint8Array(0);
    // Empty: the tenant's side ended our relayed session (main stops relaying it); start another.
    if (record.length === 0) {
      if (!this.session || this.direct) return;
      this.log.info({ tenant: this.config.tenant }, 'the tenant side ended the relayed tunnel session; starting another');
      this.endSession('ended by the tenant side');
      this.scheduleRestart();
      return;
    }
    try {
      if (record[0] === RECORD_HANDSHAKE && this.hs && !this.direct) {
        const keys = this.hs.finish(parseHandshake<TenantHello>(record));
        this.established(keys, { transport: 'relay', sendRecord: (r) => this.send?.({ tenant: this.config.tenant, tunnel: { record: r } }) });
      } else if (record[0] === RECORD_SEALED && this.session && !this.direct) {
        this.session.onSealed(record.subarray(1));
      }
    } catch (e) {
      this.log.warn({ err: errorMessage(e), code: (e as { code?: string }).code }, 'tunnel session failed; starting another');
      this.endSession('tunnel session failed');
      this.scheduleRestart();
    }
  }

  private established(keys: SessionKeys, out: { transport: 'relay' | 'direct'; sendRecord(r: Buffer): void; endpoint?: string; sock?: Socket }): void {
    this.hs = undefined;
    clearTimeout(this.hsTimer);
    this.restarts = 0;
    const sock = out.sock;
    this.session = new TunnelSession({
      keys, initiator: false, lengthPrefixed: sock !== undefined,
      ...(sock ? { maxWindow: DIRECT_MAX_STREAM_WINDOW, maxChunk: DIRECT_MAX_STREAM_CHUNK, blocked: () => sock.writableLength >= DIRECT_SEND_BUFFER_BYTES, sendRecordv: (parts: Uint8Array[]) => writeParts(sock, parts) } : {}),
      ...(!sock && this.link ? { blocked: () => this.link?.backlogged ?? false } : {}),
      sendRecord: out.sendRecord,
      onOpen: (s, target) => this.dial(s, target),
      onCommand: (name, args) => this.command(name, args),
    });
    this.log.info({ tenant: this.config.tenant, transport: out.transport, endpoint: out.endpoint, aead: aeadBackend() }, 'tunnel session established');
  }

  /**
   * The direct path: TCP to the tenant's host, preamble (main's statement) and hello, then framed records.
   * Any failure before the tenant answers falls back to the relayed path with a fresh hello (a hello is
   * accepted once); losing the connection later ends the session and starts another.
   */
  private dialDirect(hs: EngineHandshake, offer: DirectOffer): void {
    const endpoint = offer.endpoint ?? '';
    const at = readHostPort(endpoint, 'dial');
    if ('problem' in at || !offer.engineKeySig?.length || !offer.engineId) {
      this.log.warn({ endpoint }, 'main offered an unusable direct endpoint; relaying through main');
      this.startSession(false);
      return;
    }
    const sock = connect({ host: at.host, port: at.port });
    this.direct = sock;
    let up = false;
    const fallback = (reason: string) => {
      if (up || this.direct !== sock) return;
      this.direct = undefined;
      sock.destroy();
      if (this.hs !== hs) return;
      this.log.info({ endpoint, reason }, 'direct tunnel path failed; relaying through main');
      this.startSession(false);
    };
    const timer = setTimeout(() => fallback(`no session within ${DIRECT_SETUP_MS} ms`), DIRECT_SETUP_MS);
    sock.on('error', (e) => fallback(e.message));
    sock.on('close', () => {
      clearTimeout(timer);
      if (!up) { fallback('connection closed before the tenant answered'); return; }
      if (this.direct !== sock) return;
      this.direct = undefined;
      this.log.info({ endpoint }, 'direct tunnel connection closed; starting another session');
      this.endSession('direct connection closed');
      this.scheduleRestart();
    });
    sock.once('connect', () => {
      sock.setNoDelay(true);
      sock.setKeepAlive(true, DIRECT_KEEPALIVE_MS);
      sock.write(Buffer.concat([encodePreamble(this.statementOf(offer)), framedRecord(handshakeRecord(hs.hello as EngineHello))]));
    });
    const reader = new RecordReader(MAX_DIRECT_RECORD, (parts) => {
      const type = parts[0][0];
      if (up) {
        if (type !== RECORD_SEALED) throw new ProtocolError('ERR_TUNNEL_RECORD', 'unexpected record in an established session');
        this.session?.onSealedParts(parts);
        return;
      }
      const rec = joinParts(parts);
      if (type !== RECORD_HANDSHAKE || this.hs !== hs) throw new ProtocolError('ERR_TUNNEL_HELLO', 'expected the tenant hello');
      const keys = hs.finish(parseHandshake<TenantHello>(rec));
      up = true;
      clearTimeout(timer);
      this.established(keys, { transport: 'direct', endpoint, sock, sendRecord: (r) => { if (!sock.destroyed) sock.write(r); } });
      const session = this.session;
      sock.on('drain', () => session?.mux.unblocked());
      this.scheduleRenewal(offer);
    });
    const onData = (chunk: Buffer) => {
      try { reader.push(chunk); } catch (e) {
        sock.off('data', onData);
        this.log.warn({ err: errorMessage(e), code: (e as { code?: string }).code }, 'direct tunnel session failed');
        sock.destroy();
      }
    };
    sock.on('data', onData);
  }

  /** Main's statement in the form the host and the tenant check (preamble, renewal record). */
  private statementOf(offer: DirectOffer): DirectPreamble {
    return {
      tenant: this.config.tenant!, engineId: offer.engineId!, engineName: offer.engineName ?? '',
      engineKey: Buffer.from(offer.engineKey ?? []).toString('base64'), expiresAt: Number(offer.expiresAtMs ?? 0),
      sig: Buffer.from(offer.engineKeySig ?? []).toString('base64'),
    };
  }

  /**
   * Asks main for the next statement halfway through this one's life, and again every RENEW_RETRY_MS until
   * one arrives. A main that does not say how long its statements last (before protocol 1.2) renews nothing.
   */
  private scheduleRenewal(offer: DirectOffer): void {
    clearTimeout(this.renewTimer);
    if (!offer.ttlMs) return;
    const ask = (delay: number) => {
      this.renewTimer = setTimeout(() => {
        if (!this.session || !this.direct) return;
        this.send?.({ tenant: this.config.tenant, tunnel: { directRenew: true } });
        ask(RENEW_RETRY_MS);
      }, delay);
      this.renewTimer.unref();
    };
    ask(offer.ttlMs * RENEW_AT);
  }

  /** Main's fresh statement for the live direct session: to the tenant, which would otherwise end the session at expiry. */
  private renewDirect(sock: Socket, offer: DirectOffer): void {
    if (!offer.engineKeySig?.length || !offer.engineId) return;
    sock.write(framedRecord(renewalRecord(this.statementOf(offer))));
    this.scheduleRenewal(offer);
  }

  private endSession(why: string): void {
    clearTimeout(this.renewTimer);
    this.session?.close(why);
    this.session = undefined;
    this.hs = undefined;
    clearTimeout(this.hsTimer);
    const direct = this.direct;
    this.direct = undefined;
    direct?.destroy();
    for (const [id, server] of this.listeners) { server.close(); this.listeners.delete(id); }
  }

  /** A refusal goes to main's audit log (main names the engine from its certificate) and our own log. */
  private refused(action: string, target: string, e: unknown): void {
    const code = (e as { code?: string }).code;
    this.log.warn({ audit: { action, target, outcome: 'denied', code } }, `${action} refused`);
    this.send?.({ event: { type: 'audit', data: jsonBytes({ action, target, code, reason: errorMessage(e) }) } });
  }

  private dial(stream: MuxStream, target: string): true {
    stream.on('error', () => undefined);
    this.allow.resolve(target).then(({ address, port }) => {
      const sock = connect({ host: address, port, allowHalfOpen: true });
      // A destination that never answers (filtered port) fails the stream in bounded time, not the OS's minutes.
      sock.setTimeout(DIAL_TIMEOUT_MS, () => sock.destroy(Object.assign(new Error(`no answer within ${DIAL_TIMEOUT_MS} ms`), { code: 'ERR_TUNNEL_DIAL_TIMEOUT' })));
      sock.once('connect', () => sock.setTimeout(0));
      sock.on('error', (e) => stream.destroy(Object.assign(new Error(`dial ${target}: ${e.message}`), { code: (e as { code?: string }).code === 'ERR_TUNNEL_DIAL_TIMEOUT' ? 'ERR_TUNNEL_DIAL_TIMEOUT' : 'ERR_TUNNEL_DIAL' })));
      spliceSocket(sock, stream);
      this.log.info({ target, address }, 'tunnel stream opened');
    }, (e: unknown) => {
      this.refused('tunnel.dial', target, e);
      stream.destroy(e as Error);
    });
    return true;
  }

  private async command(name: string, args: unknown): Promise<unknown> {
    const target = describeTarget(args);
    try {
      switch (name) {
        case 'http.request': return await runHttpRequest(this.allow, args);
        case 'tcp.check': return await runTcpCheck(this.allow, args);
        case 'tunnel.listen': return await this.listen(args);
        case 'tunnel.unlisten': return this.unlisten(args);
        default: throw new BadParameterError('ERR_COMMAND_UNKNOWN', `engines run http.request, tcp.check, tunnel.listen, tunnel.unlisten; not "${name}"`, { field: 'command' });
      }
    } catch (e) {
      if ((e as { category?: string }).category === 'access-denied') this.refused(name, target, e);
      throw e;
    }
  }

  /** An inbound tunnel: each connection accepted here becomes a stream to the tenant's side of listener `id`. */
  private async listen(args: unknown): Promise<{ id: string; listen: string }> {
    const a = (args ?? {}) as { id?: unknown; listen?: unknown };
    if (typeof a.id !== 'string' || !LISTENER_ID.test(a.id)) throw new BadParameterError('ERR_BAD_ARGS', 'args.id must be a tunnel id', { field: 'args.id' });
    const at = parseHostPort(typeof a.listen === 'string' ? a.listen : '', 'listen', { code: 'ERR_BAD_LISTEN', field: 'args.listen' });
    this.listeners.get(a.id)?.close();
    const id = a.id;
    const server = createServer({ allowHalfOpen: true }, (sock) => {
      const session = this.session;
      if (!session) { sock.destroy(); return; }
      let stream: MuxStream;
      try { stream = session.mux.open(`listener:${id}`); } catch (e) { this.log.warn({ err: errorMessage(e) }, 'inbound connection dropped'); sock.destroy(); return; }
      spliceSocket(sock, stream, (e) => this.log.info({ id, code: (e as { code?: string }).code }, 'inbound stream ended with an error'));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new UnavailableError('ERR_LISTEN', `engine cannot listen on ${a.listen as string}: ${e.message}`)));
      server.listen(at.port, at.host, () => resolve());
    });
    this.listeners.set(id, server);
    const port = (server.address() as { port: number }).port;
    this.log.info({ id, port }, 'inbound tunnel listening');
    return { id, listen: formatHostPort(at.host, port) };
  }

  private unlisten(args: unknown): { id: string; closed: boolean } {
    const id = (args as { id?: unknown } | null)?.id;
    if (typeof id !== 'string') throw new BadParameterError('ERR_BAD_ARGS', 'args.id is required');
    const s = this.listeners.get(id);
    s?.close();
    this.listeners.delete(id);
    return { id, closed: s !== undefined };
  }

  close(): void {
    clearTimeout(this.restartTimer);
    this.send = undefined;
    this.endSession('engine stopping');
  }
}

function describeTarget(args: unknown): string {
  const a = (args ?? {}) as Record<string, unknown>;
  if (typeof a.url === 'string') {
    // Only the origin: a URL's path, query or userinfo may carry credentials, which never reach a log.
    try { return new URL(a.url).origin; } catch { return '(bad url)'; }
  }
  if (typeof a.host === 'string') return `${a.host}:${String(a.port)}`;
  return typeof a.listen === 'string' ? a.listen : '';
}
