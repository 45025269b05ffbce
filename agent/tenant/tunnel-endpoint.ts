/**
 * The tenant's end of its engines' sessions. Records arrive from the host over IPC; an engine's first
 * record is its handshake, accepted only if main vouches (signature) for that engine's key and name.
 * On top of the sessions:
 * - outbound tunnels: a listener here turns each accepted connection into a stream to a live engine,
 *   which dials the destination inside the customer network (allow-listed there);
 * - inbound tunnels: each engine listens on the customer side; its connections arrive here as streams
 *   naming the listener, and go only to that listener's configured tenant-side destination;
 * - integration commands run on an engine (`http.request`, `tcp.check`).
 */
import { connect, createServer, isIP, type Server } from 'node:net';
import { sensitiveAddresses } from '../engine/allow-list.js';
import { randomBytes, verify, type KeyObject } from 'node:crypto';
import { tenantAccept, type BoxKeyPair, type EngineHello } from '#common/tunnel-crypto.js';
import { engineKeyStatement, handshakeRecord, parseHandshake, RECORD_HANDSHAKE, RECORD_SEALED } from '#common/tunnel-records.js';
import { TunnelSession } from '#common/tunnel-session.js';
import type { MuxStream } from '#common/stream-mux.js';
import { spliceSocket } from '#common/socket-splice.js';
import { BadParameterError, NotFoundError, UnavailableError, errorMessage } from '#common/errors.js';
import type { Logger } from '#common/logging.js';

export interface TunnelRecordIn { engineId: string; engineName?: string; record: Uint8Array; engineKey?: Uint8Array; engineKeySig?: Uint8Array }
export type Direction = 'outbound' | 'inbound';
export interface ListenerView {
  id: string; direction: Direction; listen: string; to: string; engine?: string; connections: number;
  /** Inbound: where each engine listens, or why it could not. */
  engines?: Record<string, string>;
}
export interface EngineView { id: string; name: string; since: string; streams: number }

interface Session { id: string; name: string; since: string; s: TunnelSession }
interface Listener { view: ListenerView; server?: Server }

/** Inbound destinations are on the MSSP host's side: loopback is allowed, metadata and link-local never. */
const TENANT_SIDE_BLOCKED = sensitiveAddresses(false);

function isSensitiveTenantSide(host: string): boolean {
  const fam = isIP(host);
  if (!fam) return /^metadata(\.|$)/i.test(host);
  return TENANT_SIDE_BLOCKED.check(host, fam === 6 ? 'ipv6' : 'ipv4');
}

const HOST_PORT = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/;

export class TunnelEndpoint {
  private readonly sessions = new Map<string, Session>();
  private readonly listeners = new Map<string, Listener>();
  private next = 0;

  constructor(
    private readonly tenant: string,
    private readonly box: BoxKeyPair,
    private readonly mainKey: KeyObject,
    private readonly sendRecord: (engineId: string, record: Uint8Array) => void,
    private readonly log: Logger,
  ) {}

  onRecord(r: TunnelRecordIn): void {
    try {
      if (r.record.length === 0) {
        this.log.info({ engineId: r.engineId }, 'engine disconnected; its session ends');
        this.drop(r.engineId, 'engine disconnected');
      } else if (r.record[0] === RECORD_HANDSHAKE) this.accept(r);
      else if (r.record[0] === RECORD_SEALED) this.sessions.get(r.engineId)?.s.onSealed(r.record.subarray(1));
    } catch (e) {
      this.log.warn({ engineId: r.engineId, code: (e as { code?: string }).code, err: errorMessage(e) }, 'engine session refused or broken');
      this.drop(r.engineId, 'session failed');
    }
  }

  private accept(r: TunnelRecordIn): void {
    const key = Buffer.from(r.engineKey ?? []);
    const name = r.engineName ?? '';
    const statement = engineKeyStatement(r.engineId, name, this.tenant, key.toString('base64'));
    const vouched = key.length === 32 && r.engineKeySig !== undefined && verify(null, statement, this.mainKey, r.engineKeySig);
    const { reply, keys } = tenantAccept(this.box, parseHandshake<EngineHello>(r.record), (k) => vouched && Buffer.from(k).equals(key));
    this.drop(r.engineId, 'engine started a new session');
    const s = new TunnelSession({
      keys, initiator: true,
      sendRecord: (rec) => this.sendRecord(r.engineId, rec),
      onOpen: (stream, target) => this.inbound(stream, target),
    });
    this.sessions.set(r.engineId, { id: r.engineId, name, since: new Date().toISOString(), s });
    this.sendRecord(r.engineId, handshakeRecord(reply));
    this.log.info({ engineId: r.engineId, engine: name }, 'engine session established');
    for (const l of this.listeners.values()) if (l.view.direction === 'inbound') void this.listenOn(this.sessions.get(r.engineId)!, l.view);
  }

  private drop(engineId: string, why: string): void {
    const s = this.sessions.get(engineId);
    if (!s) return;
    s.s.close(why);
    this.sessions.delete(engineId);
    for (const l of this.listeners.values()) delete l.view.engines?.[s.name];
  }

  engines(): EngineView[] {
    return [...this.sessions.values()].map((s) => ({ id: s.id, name: s.name, since: s.since, streams: s.s.mux.size }));
  }

  /** Spreads new work over the live engine sessions (an engine group), or uses the one named. */
  private pick(engine?: string): Session {
    const all = [...this.sessions.values()].filter((s) => !engine || s.name === engine);
    if (all.length === 0) {
      throw engine
        ? new UnavailableError('ERR_ENGINE_OFFLINE', `engine "${engine}" has no session with tenant ${this.tenant}`)
        : new UnavailableError('ERR_NO_ENGINE', `no engine of tenant ${this.tenant} is connected`);
    }
    return all[this.next++ % all.length];
  }

  async open(direction: Direction, to: string, listen: string, engine?: string): Promise<ListenerView> {
    if (!HOST_PORT.test(listen) || Number(HOST_PORT.exec(listen)![2]) > 65535) throw new BadParameterError('ERR_BAD_LISTEN', `listen: "${listen}" is not ADDR:PORT`, { field: 'listen' });
    if (!HOST_PORT.test(to) || Number(HOST_PORT.exec(to)![2]) > 65535) throw new BadParameterError('ERR_BAD_TARGET', `to: "${to}" is not HOST:PORT`, { field: 'to' });
    const view: ListenerView = { id: `tun_${randomBytes(6).toString('hex')}`, direction, listen, to, connections: 0, ...(engine ? { engine } : {}) };
    const listenHost = HOST_PORT.exec(listen)![1].replace(/^\[|\]$/g, '');
    // Outbound listeners live on the MSSP host: loopback only, or anyone reaching the host could use the engine.
    if (direction === 'outbound' && !['127.0.0.1', '::1', 'localhost'].includes(listenHost)) {
      throw new BadParameterError('ERR_BAD_LISTEN', `listen: outbound tunnels listen on loopback only (127.0.0.1 or [::1]), not "${listenHost}"`, { field: 'listen' });
    }
    // Inbound destinations are on the MSSP side: never the host's cloud metadata or link-local addresses.
    if (direction === 'inbound' && isSensitiveTenantSide(HOST_PORT.exec(to)![1].replace(/^\[|\]$/g, ''))) {
      throw new BadParameterError('ERR_BAD_TARGET', `to: "${to}" is a link-local, metadata or unspecified address`, { field: 'to' });
    }
    if (direction === 'outbound') return this.openOutbound(view);
    view.engines = {};
    this.listeners.set(view.id, { view });
    await Promise.all([...this.sessions.values()].filter((s) => !engine || s.name === engine).map((s) => this.listenOn(s, view)));
    return view;
  }

  private async openOutbound(view: ListenerView): Promise<ListenerView> {
    const server = createServer({ allowHalfOpen: true }, (sock) => {
      let s: Session;
      try { s = this.pick(view.engine); } catch (e) { sock.destroy(); this.log.warn({ to: view.to, err: errorMessage(e) }, 'tunnel connection dropped'); return; }
      view.connections++;
      spliceSocket(sock, s.s.mux.open(view.to), (e) => this.log.info({ to: view.to, code: (e as { code?: string }).code }, 'tunnel stream ended with an error'));
    });
    const [, addr, port] = HOST_PORT.exec(view.listen)!;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new UnavailableError('ERR_LISTEN', `cannot listen on ${view.listen}: ${e.message}`)));
      server.listen(Number(port), addr.replace(/^\[|\]$/g, ''), () => resolve());
    });
    view.listen = `${addr}:${(server.address() as { port: number }).port}`;
    this.listeners.set(view.id, { view, server });
    return view;
  }

  /** Asks one engine to listen for an inbound tunnel; records where it listens or why it cannot. */
  private async listenOn(s: Session, view: ListenerView): Promise<void> {
    if (view.engine && view.engine !== s.name) return;
    try {
      const r = await s.s.request('tunnel.listen', { id: view.id, listen: view.listen }, 10_000) as { listen: string };
      view.engines![s.name] = r.listen;
    } catch (e) {
      view.engines![s.name] = `error: ${errorMessage(e)}`;
      this.log.warn({ id: view.id, engine: s.name, err: errorMessage(e) }, 'engine could not open an inbound listener');
    }
  }

  /** An engine opened a stream: only for an inbound listener we configured, to that listener's destination. */
  private inbound(stream: MuxStream, target: string): true | string {
    const id = target.startsWith('listener:') ? target.slice('listener:'.length) : '';
    const l = this.listeners.get(id);
    if (!l || l.view.direction !== 'inbound') return `no inbound tunnel "${id}" on tenant ${this.tenant}`;
    const [, host, port] = HOST_PORT.exec(l.view.to)!;
    l.view.connections++;
    const sock = connect({ host: host.replace(/^\[|\]$/g, ''), port: Number(port), allowHalfOpen: true });
    sock.on('error', (e) => stream.destroy(Object.assign(new Error(`dial ${l.view.to}: ${e.message}`), { code: 'ERR_TUNNEL_DIAL' })));
    spliceSocket(sock, stream);
    return true;
  }

  /** Runs an integration command on one engine (the one named, or the next of the group). */
  async runCommand(command: string, args: unknown, engine?: string, timeoutMs?: number): Promise<{ engine: string; command: string; result: unknown }> {
    const s = this.pick(engine);
    const result = await s.s.request(command, args, timeoutMs);
    return { engine: s.name, command, result };
  }

  listListeners(): ListenerView[] { return [...this.listeners.values()].map((l) => l.view); }

  closeListener(id: string): ListenerView {
    const l = this.listeners.get(id);
    if (!l) throw new NotFoundError('ERR_TUNNEL_NOT_FOUND', `no tunnel ${id}`, { field: 'id' });
    l.server?.close();
    this.listeners.delete(id);
    if (l.view.direction === 'inbound') {
      for (const s of this.sessions.values()) void s.s.request('tunnel.unlisten', { id }, 10_000).catch(() => undefined);
    }
    return l.view;
  }

  close(): void {
    for (const id of [...this.listeners.keys()]) this.closeListener(id);
    for (const id of [...this.sessions.keys()]) this.drop(id, 'tenant stopping');
  }
}
