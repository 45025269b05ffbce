/**
 * What makes an agent an engine: on every connection to main it opens an end-to-end session with its
 * tenant (handshake via main and the tenant's host), then does what the tenant asks over that session:
 * dials allow-listed destinations for outbound tunnel streams, listens for inbound tunnels, and runs
 * integration commands. Every refusal closes that stream (or fails that command) with a reason, and is
 * reported to main's audit log.
 */
import { connect, createServer, type Server } from 'node:net';
import { readFile } from 'node:fs/promises';
import { jsonBytes, type Envelope, type EnvelopeInit } from '#common/codec.js';
import { engineHandshake, type EngineHandshake, type EngineHello, type TenantHello } from '#common/tunnel-crypto.js';
import { handshakeRecord, parseHandshake, RECORD_HANDSHAKE, RECORD_SEALED } from '#common/tunnel-records.js';
import { TunnelSession } from '#common/tunnel-session.js';
import type { MuxStream } from '#common/stream-mux.js';
import { spliceSocket } from '#common/socket-splice.js';
import { BadParameterError, ProtocolError, UnavailableError, errorMessage } from '#common/errors.js';
import type { AgentConfig } from '#common/agent-dir.js';
import type { Logger } from '#common/logging.js';
import { AllowList } from './allow-list.js';
import { runHttpRequest, runTcpCheck } from './integration-commands.js';

const DIAL_TIMEOUT_MS = 10_000;
const HANDSHAKE_WAIT_MS = 15_000;
const LISTENER_ID = /^tun_[0-9a-f]{12}$/;
const LISTEN_ADDR = /^(\[[0-9a-fA-F:.]+\]|[0-9.]+|localhost):(\d{1,5})$/;

export class EngineRole {
  private hs?: EngineHandshake;
  private hsTimer?: NodeJS.Timeout;
  private session?: TunnelSession;
  private send?: (env: EnvelopeInit) => boolean;
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

  /** Each (re)connection to main starts a fresh session; streams of the old one end with an error. */
  onWelcome(send: (env: EnvelopeInit) => boolean): void {
    this.send = send;
    this.endSession('engine reconnected');
    if (!this.config.tenant || !this.config.tenantPublicKey) return;
    const hs = engineHandshake(this.box, Buffer.from(this.config.tenantPublicKey, 'base64'));
    this.hs = hs;
    send({ tenant: this.config.tenant, tunnel: { record: handshakeRecord(hs.hello as EngineHello) } });
    // The tenant stays silent towards a hello it cannot open (it must not help a prober): say so here.
    clearTimeout(this.hsTimer);
    this.hsTimer = setTimeout(() => {
      if (this.hs === hs) this.log.error({ tenant: this.config.tenant, code: 'ERR_TUNNEL_HANDSHAKE_TIMEOUT' }, `no tunnel session after ${HANDSHAKE_WAIT_MS / 1000} s: the tenant is down, or refused this engine (a wrong tenantPublicKey in the config, or an engine key main does not know)`);
    }, HANDSHAKE_WAIT_MS);
    this.hsTimer.unref();
  }

  onTunnel(env: Envelope): void {
    const record = env.tunnel?.record ?? new Uint8Array(0);
    try {
      if (record[0] === RECORD_HANDSHAKE && this.hs) {
        const keys = this.hs.finish(parseHandshake<TenantHello>(record));
        this.hs = undefined;
        this.session = new TunnelSession({
          keys, initiator: false,
          sendRecord: (r) => this.send?.({ tenant: this.config.tenant, tunnel: { record: r } }),
          onOpen: (s, target) => this.dial(s, target),
          onCommand: (name, args) => this.command(name, args),
        });
        this.log.info({ tenant: this.config.tenant }, 'tunnel session established');
      } else if (record[0] === RECORD_SEALED && this.session) {
        this.session.onSealed(record.subarray(1));
      }
    } catch (e) {
      this.log.warn({ err: errorMessage(e), code: (e as { code?: string }).code }, 'tunnel session failed; it restarts on the next connection');
      this.endSession('tunnel session failed');
    }
  }

  private endSession(why: string): void {
    this.session?.close(why);
    this.session = undefined;
    this.hs = undefined;
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
        default: throw new BadParameterError('ERR_UNKNOWN_COMMAND', `engines run http.request, tcp.check, tunnel.listen, tunnel.unlisten; not "${name}"`, { field: 'command' });
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
    const m = typeof a.listen === 'string' ? LISTEN_ADDR.exec(a.listen) : null;
    if (!m || Number(m[2]) > 65535) throw new BadParameterError('ERR_BAD_LISTEN', 'args.listen must be ADDR:PORT on this engine', { field: 'args.listen' });
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
      server.listen(Number(m[2]), m[1].replace(/^\[|\]$/g, ''), () => resolve());
    });
    this.listeners.set(id, server);
    const port = (server.address() as { port: number }).port;
    this.log.info({ id, port }, 'inbound tunnel listening');
    return { id, listen: `${m[1]}:${port}` };
  }

  private unlisten(args: unknown): { id: string; closed: boolean } {
    const id = (args as { id?: unknown } | null)?.id;
    if (typeof id !== 'string') throw new ProtocolError('ERR_BAD_ARGS', 'args.id is required');
    const s = this.listeners.get(id);
    s?.close();
    this.listeners.delete(id);
    return { id, closed: s !== undefined };
  }

  close(): void {
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
