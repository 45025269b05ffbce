/**
 * The tenant's end of its engines' sessions. Records arrive either relayed (engine → main → host → IPC)
 * or on the engine's own TCP connection, which the host hands over after checking its preamble (the
 * direct path, tunnel-direct.ts). Either way an engine's first record is its handshake, accepted only if
 * main vouches (signature) for that engine's key and name and has not revoked it (engine-trust.ts), and a
 * hello is accepted once (no replays). A direct session ends when main's statement for it expires unless
 * the engine renews it, and any session ends as soon as the host passes on main's revocation of its engine.
 * On top of the sessions:
 * - outbound tunnels: a listener here turns each accepted connection into a stream to a live engine,
 *   which dials the destination inside the customer network (allow-listed there);
 * - inbound tunnels: each engine listens on the customer side; its connections arrive here as streams
 *   naming the listener, and go only to that listener's configured tenant-side destination;
 * - integration commands run on an engine (`http.request`, `tcp.check`).
 */
import { connect, createServer, isIP, type Server, type Socket } from 'node:net';
import { randomBytes, type KeyObject } from 'node:crypto';
import { HELLO_MAX_SKEW_MS, tenantAccept, type BoxKeyPair, type EngineHello } from '../tunnel/tunnel-crypto.js';
import { aeadBackend } from '../tunnel/native-aead.js';
import { handshakeRecord, parseHandshake, RECORD_HANDSHAKE, RECORD_RENEWAL, RECORD_SEALED } from '../tunnel/tunnel-records.js';
import { DIRECT_SEND_BUFFER_BYTES, framedRecord, joinParts, parseRenewal, RecordReader, writeParts, type DirectPreamble } from '../tunnel/tunnel-direct.js';
import { DEFAULT_MAX_FRAME_BYTES } from '#common/codec.js';
import { TunnelSession } from '../tunnel/tunnel-session.js';
import { DIRECT_MAX_STREAM_CHUNK, DIRECT_MAX_STREAM_WINDOW, type MuxStream } from '../tunnel/stream-mux.js';
import { spliceSocket } from '../tunnel/socket-splice.js';
import { AccessDeniedError, BadParameterError, NotFoundError, ProtocolError, UnavailableError, errorMessage } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import { formatHostPort, parseHostPort } from '#common/address.js';
import { addressForms, sensitiveAddresses } from '#common/ip-address.js';
import type { LookupAddress } from 'node:dns';
import type { TenantAuditEntry } from './audit-store.js';
import { isLocalAddress, pinnedLookup, resolveAll } from './local-addresses.js';
import { EngineTrust, StatementLease } from './engine-trust.js';

export interface TunnelRecordIn { engineId: string; engineName?: string; record: Uint8Array; engineKey?: Uint8Array; engineKeySig?: Uint8Array }
export type Direction = 'outbound' | 'inbound';
export interface ListenerView {
  id: string; direction: Direction; listen: string; to: string; engine?: string; connections: number;
  /** Inbound: where each engine listens, or why it could not. */
  engines?: Record<string, string>;
}
export interface EngineView { id: string; name: string; since: string; streams: number; transport: 'relay' | 'direct' }

type Transport = 'relay' | 'direct';
interface Session { id: string; name: string; since: string; s: TunnelSession; transport: Transport; end?(): void; lease?: StatementLease }
/** How a new session sends: relayed records through the host, or framed records on the engine's socket. */
interface Outlet { transport: Transport; sendRecord(record: Uint8Array): void; end?(): void; sock?: Socket }

/** A sealed record is a frame (≤ the frame limit) plus type byte and tag: anything larger on a direct connection is an attack. */
const MAX_DIRECT_RECORD = DEFAULT_MAX_FRAME_BYTES + 64;
/** Dead-peer detection on direct connections (a vanished engine machine sends no FIN); main's dead-peer check backs it up. */
const DIRECT_KEEPALIVE_MS = 15_000;
interface Listener { view: ListenerView; server?: Server }

/** Inbound destinations are on the MSSP host's side: loopback is allowed, metadata and link-local never. */
const TENANT_SIDE_BLOCKED = sensitiveAddresses(false);

function isSensitiveTenantSide(host: string): boolean {
  const fam = isIP(host);
  if (!fam) return /^metadata(\.|$)/i.test(host);
  // Also as the IPv4 address a NAT64 or IPv4-compatible form carries (the allow-list's judgement).
  const inside = addressForms(host);
  return inside.opaque || TENANT_SIDE_BLOCKED.check(host, fam === 6 ? 'ipv6' : 'ipv4') || (inside.ipv4 !== undefined && TENANT_SIDE_BLOCKED.check(inside.ipv4, 'ipv4'));
}

/** A tunnel's two addresses: where it listens (an IP address) and where its connections go (HOST:PORT). */
const LISTEN = { code: 'ERR_BAD_LISTEN', field: 'listen' } as const;
const TO = { code: 'ERR_BAD_TARGET', field: 'to' } as const;

/** The refusal of an inbound stream into a port reserved on this host: the engine hears "reserved", the audit log why. */
const CROSS_TENANT_REASON = "a port reserved on this host: another tenant's outbound tunnel listener or API, or the host's engine port";
const crossTenant = (view: ListenerView) => new AccessDeniedError('ERR_TUNNEL_CROSS_TENANT', `inbound tunnel ${view.id}: ${view.to} is reserved on this host`);

export class TunnelEndpoint {
  private readonly sessions = new Map<string, Session>();
  private readonly listeners = new Map<string, Listener>();
  /** Engine ephemeral keys of accepted hellos, until they are too old to be accepted anyway: no replays. */
  private readonly seenHellos = new Map<string, number>();
  private next = 0;
  /**
   * Ports on this host an inbound tunnel may not lead to, pushed by the host (agent/host/reserved-ports.ts):
   * the other tenants' outbound listeners (that would join two customers' networks through our engine and
   * theirs) and APIs, and the host's engine port.
   */
  private foreignPorts: ReadonlySet<number> = new Set();
  /** Live inbound dials to this machine, cut if their port turns out to be another tenant's listener. */
  private readonly localDials = new Map<Socket, { port: number; address: string; stream: MuxStream; view: ListenerView }>();
  /**
   * Tells the host our outbound listeners (all of them, after each change); resolves once the other tenants
   * hold the new set (they then refuse inbound streams into it). Set by tenant-main.
   */
  onOutboundListeners?: (listen: string[]) => Promise<void>;
  /** The tenant's audit log, for refused inbound streams and revoked engines; set by the tenant app. */
  audit?: { record(e: Omit<TenantAuditEntry, 'at'>): Promise<void> };
  private readonly trust: EngineTrust;

  constructor(
    private readonly tenant: string,
    private readonly box: BoxKeyPair,
    mainKey: KeyObject,
    private readonly sendRecord: (engineId: string, record: Uint8Array) => void,
    private readonly log: Logger,
  ) {
    this.trust = new EngineTrust(tenant, Buffer.from(box.publicKey).toString('base64'), mainKey);
  }

  onRecord(r: TunnelRecordIn): void {
    try {
      if (r.record.length === 0) {
        this.log.info({ engineId: r.engineId }, 'engine disconnected; its session ends');
        this.drop(r.engineId, 'engine disconnected');
      } else if (r.record[0] === RECORD_HANDSHAKE) this.acceptRelayed(r);
      else if (r.record[0] === RECORD_SEALED) {
        // No session (never opened, or ended and main not told yet): dropped without work or a word.
        const s = this.sessions.get(r.engineId);
        if (s?.transport === 'relay') s.s.onSealed(r.record.subarray(1));
      }
    } catch (e) {
      this.log.warn({ engineId: r.engineId, code: (e as { code?: string }).code, err: errorMessage(e) }, 'engine session refused or broken');
      const ended = this.sessions.get(r.engineId);
      this.drop(r.engineId, 'session failed');
      // Main then passes none of the engine's records any more (they would fail here too), and the engine starts anew.
      if (ended?.transport === 'relay') this.sendRecord(r.engineId, new Uint8Array(0));
    }
  }

  private acceptRelayed(r: TunnelRecordIn): void {
    const name = r.engineName ?? '';
    const vouched = this.trust.relayedKey(r.engineId, name, Buffer.from(r.engineKey ?? []), r.engineKeySig);
    this.accept(r.engineId, name, r.record, vouched, { transport: 'relay', sendRecord: (rec) => this.sendRecord(r.engineId, rec) });
  }

  /**
   * An engine's direct connection, handed over by the host with the bytes it read (the preamble's
   * hello). The host checked main's statement; we check it again, since we do not trust the host.
   */
  onDirect(p: DirectPreamble, head: Uint8Array, sock: Socket): void {
    sock.on('error', () => undefined);
    const refuse = (e: unknown) => {
      this.log.warn({ engineId: p.engineId, code: (e as { code?: string }).code, err: errorMessage(e) }, 'engine session refused or broken');
      sock.destroy();
    };
    const problem = this.trust.directProblem(p);
    if (problem) return refuse(new AccessDeniedError('ERR_TUNNEL_ENGINE_UNKNOWN', `main's statement for this engine is missing, expired or not for this tenant (${problem})`));
    const key = Buffer.from(p.engineKey, 'base64');
    sock.setNoDelay(true);
    sock.setKeepAlive(true, DIRECT_KEEPALIVE_MS);
    let session: Session | undefined;
    const reader = new RecordReader(MAX_DIRECT_RECORD, (parts) => {
      const type = parts[0][0];
      if (session) {
        if (type === RECORD_RENEWAL) return session.lease?.renew(parseRenewal(joinParts(parts)), this.trust);
        if (type !== RECORD_SEALED) throw new ProtocolError('ERR_TUNNEL_RECORD', 'unexpected record in an established session');
        session.s.onSealedParts(parts);
        return;
      }
      const rec = joinParts(parts);
      if (type !== RECORD_HANDSHAKE) throw new ProtocolError('ERR_TUNNEL_HELLO', 'a direct connection starts with the engine hello');
      const s = this.accept(p.engineId, p.engineName, rec, key, {
        transport: 'direct', sock,
        sendRecord: (out) => { if (!sock.destroyed) sock.write(out); },
        end: () => sock.destroy(),
      }, (reply) => sock.write(framedRecord(reply)));
      sock.on('drain', () => s.s.mux.unblocked());
      s.lease = new StatementLease(p, this.log, () => this.drop(p.engineId, "main's statement for the engine expired"));
      session = s;
    });
    const onData = (chunk: Buffer) => {
      try { reader.push(chunk); } catch (e) {
        sock.off('data', onData);
        refuse(e);
        if (session && this.sessions.get(p.engineId) === session) this.drop(p.engineId, 'session failed');
      }
    };
    sock.on('close', () => { if (session && this.sessions.get(p.engineId) === session) this.drop(p.engineId, 'direct connection closed'); });
    onData(Buffer.from(head.buffer, head.byteOffset, head.byteLength));
    if (!sock.destroyed) sock.on('data', onData);
  }

  /**
   * Accepts an engine hello for a key main vouched for (`vouchedKey`), replacing that engine's previous
   * session; answers through `answer` (default: the outlet). Throws (nothing changed) on refusal.
   */
  private accept(engineId: string, name: string, record: Uint8Array, vouchedKey: Buffer | undefined, out: Outlet, answer?: (reply: Buffer) => void): Session {
    if (this.trust.isRevoked(engineId)) throw new AccessDeniedError('ERR_TUNNEL_ENGINE_REVOKED', `engine ${name || engineId} was revoked by main`);
    const hello = parseHandshake<EngineHello>(record);
    const eph = Buffer.from(hello.engineEph ?? []).toString('base64');
    const { reply, keys } = tenantAccept(this.box, hello, (k) => vouchedKey !== undefined && Buffer.from(k).equals(vouchedKey));
    this.rememberHello(eph);
    this.drop(engineId, 'engine started a new session');
    const sock = out.sock;
    const s = new TunnelSession({
      keys, initiator: true, lengthPrefixed: sock !== undefined,
      ...(sock ? { maxWindow: DIRECT_MAX_STREAM_WINDOW, maxChunk: DIRECT_MAX_STREAM_CHUNK, blocked: () => sock.writableLength >= DIRECT_SEND_BUFFER_BYTES, sendRecordv: (parts: Uint8Array[]) => writeParts(sock, parts) } : {}),
      sendRecord: (rec) => out.sendRecord(rec),
      onOpen: (stream, target) => this.inbound(stream, target),
    });
    const session: Session = { id: engineId, name, since: new Date().toISOString(), s, transport: out.transport, end: out.end };
    this.sessions.set(engineId, session);
    (answer ?? out.sendRecord)(handshakeRecord(reply));
    this.log.info({ engineId, engine: name, transport: out.transport, aead: aeadBackend() }, 'engine session established');
    for (const l of this.listeners.values()) if (l.view.direction === 'inbound') void this.listenOn(session, l.view);
    return session;
  }

  /** A hello opens only once: a captured one replayed (on either path) is refused and cannot unseat the live session. */
  private rememberHello(eph: string): void {
    const now = Date.now();
    if (this.seenHellos.has(eph)) throw new AccessDeniedError('ERR_TUNNEL_HELLO_REPLAY', 'this engine hello was already used');
    for (const [k, t] of this.seenHellos) if (t < now) this.seenHellos.delete(k);
    this.seenHellos.set(eph, now + 2 * HELLO_MAX_SKEW_MS);
  }

  private drop(engineId: string, why: string): void {
    const s = this.sessions.get(engineId);
    if (!s) return;
    s.s.close(why);
    s.end?.();
    s.lease?.close();
    this.sessions.delete(engineId);
    for (const l of this.listeners.values()) delete l.view.engines?.[s.name];
  }

  /** Main's current list of this tenant's revoked engines (through the host): their sessions end now. */
  setRevoked(engineIds: readonly string[]): void {
    this.trust.setRevoked(engineIds);
    for (const s of [...this.sessions.values()]) {
      if (!this.trust.isRevoked(s.id)) continue;
      this.log.warn({ engineId: s.id, engine: s.name, transport: s.transport, code: 'ERR_TUNNEL_ENGINE_REVOKED' }, 'engine revoked by main; its session ends');
      void this.audit?.record({ actor: 'main', action: 'tunnel.engine.revoked', target: `engine:${s.name}`, outcome: 'ok', code: 'ERR_TUNNEL_ENGINE_REVOKED', detail: { engineId: s.id, transport: s.transport, reason: 'the engine was revoked by main; its session ended' } })
        .catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'audit write failed'));
      this.drop(s.id, 'engine revoked by main');
    }
  }

  engines(): EngineView[] {
    return [...this.sessions.values()].map((s) => ({ id: s.id, name: s.name, since: s.since, streams: s.s.mux.size, transport: s.transport }));
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
    const listenHost = parseHostPort(listen, 'listen', LISTEN).host;
    const toHost = parseHostPort(to, 'dial', TO).host;
    const view: ListenerView = { id: `tun_${randomBytes(6).toString('hex')}`, direction, listen, to, connections: 0, ...(engine ? { engine } : {}) };
    // Outbound listeners live on the MSSP host: loopback only, or anyone reaching the host could use the engine.
    if (direction === 'outbound' && !['127.0.0.1', '::1', 'localhost'].includes(listenHost)) {
      throw new BadParameterError('ERR_BAD_LISTEN', `listen: outbound tunnels listen on loopback only (127.0.0.1 or [::1]), not "${listenHost}"`, { field: 'listen' });
    }
    // Inbound destinations are on the MSSP side: never the host's cloud metadata or link-local addresses.
    if (direction === 'inbound' && isSensitiveTenantSide(toHost)) {
      throw new BadParameterError('ERR_BAD_TARGET', `to: "${to}" is a link-local, metadata or unspecified address`, { field: 'to' });
    }
    if (direction === 'outbound') return this.openOutbound(view);
    await this.refuseForeignTarget(to);
    view.engines = {};
    this.listeners.set(view.id, { view });
    await Promise.all([...this.sessions.values()].filter((s) => !engine || s.name === engine).map((s) => this.listenOn(s, view)));
    return view;
  }

  private async openOutbound(view: ListenerView): Promise<ListenerView> {
    // Closed to connections until the other tenants on this host know its port (announceOutbound).
    let confirmed = false;
    const server = createServer({ allowHalfOpen: true }, (sock) => {
      if (!confirmed) { sock.destroy(); return; }
      let s: Session;
      try { s = this.pick(view.engine); } catch (e) { sock.destroy(); this.log.warn({ to: view.to, err: errorMessage(e) }, 'tunnel connection dropped'); return; }
      view.connections++;
      spliceSocket(sock, s.s.mux.open(view.to), (e) => this.log.info({ to: view.to, code: (e as { code?: string }).code }, 'tunnel stream ended with an error'));
    });
    const { host, port } = parseHostPort(view.listen, 'listen', LISTEN);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new UnavailableError('ERR_LISTEN', `cannot listen on ${view.listen}: ${e.message}`)));
      server.listen(port, host, () => resolve());
    });
    view.listen = formatHostPort(host, (server.address() as { port: number }).port);
    this.listeners.set(view.id, { view, server });
    try { await this.announceOutbound(); } catch (e) {
      server.close();
      this.listeners.delete(view.id);
      this.announceOutbound().catch(() => undefined);
      throw e;
    }
    confirmed = true;
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

  /**
   * An engine opened a stream: only for an inbound listener we configured, to that listener's destination,
   * and never to a port reserved here (foreignPorts; one may have become reserved since the tunnel opened).
   */
  private inbound(stream: MuxStream, target: string): true | string {
    const id = target.startsWith('listener:') ? target.slice('listener:'.length) : '';
    const l = this.listeners.get(id);
    if (!l || l.view.direction !== 'inbound') return `no inbound tunnel "${id}" on tenant ${this.tenant}`;
    l.view.connections++;
    stream.on('error', () => undefined); // until spliced: a reset while resolving must not throw
    this.dialInbound(stream, l.view).catch((e: unknown) => stream.destroy(Object.assign(new Error(`dial ${l.view.to}: ${errorMessage(e)}`), { code: 'ERR_TUNNEL_DIAL' })));
    return true;
  }

  /** Resolves the destination once, checks what it resolved to, and dials only those addresses (no DNS rebinding). */
  private async dialInbound(stream: MuxStream, view: ListenerView): Promise<void> {
    const { host, port } = parseHostPort(view.to, 'dial', TO);
    let addresses: LookupAddress[];
    try { addresses = await resolveAll(host); } catch (e) {
      stream.destroy(Object.assign(new Error(`dial ${view.to}: ${errorMessage(e)}`), { code: 'ERR_TUNNEL_DIAL' }));
      return;
    }
    if (stream.destroyed) return;
    // The literal check at open() cannot see what a name resolves to: metadata and link-local stay refused.
    const sensitive = addresses.find((a) => isSensitiveTenantSide(a.address));
    if (sensitive) {
      return this.refuseInbound(stream, view, sensitive.address, new AccessDeniedError('ERR_TUNNEL_TARGET_DENIED', `inbound tunnel ${view.id}: ${view.to} resolves to ${sensitive.address}, a link-local, metadata or unspecified address`));
    }
    const local = addresses.find((a) => isLocalAddress(a.address));
    if (local && this.foreignPorts.has(port)) return this.refuseInbound(stream, view, local.address, crossTenant(view), CROSS_TENANT_REASON);
    const sock = connect({ host, port, allowHalfOpen: true, lookup: pinnedLookup(addresses) });
    sock.on('error', (e) => stream.destroy(Object.assign(new Error(`dial ${view.to}: ${e.message}`), { code: 'ERR_TUNNEL_DIAL' })));
    spliceSocket(sock, stream);
    if (!local) return;
    this.localDials.set(sock, { port, address: local.address, stream, view });
    sock.once('close', () => this.localDials.delete(sock));
  }

  /** Refuses (or cuts) an inbound stream to a destination it may not reach: engine told why, audited, logged. */
  private refuseInbound(stream: MuxStream, view: ListenerView, address: string, e: AccessDeniedError, reason = e.message): void {
    this.log.warn({ audit: { action: 'tunnel.inbound', target: view.id, outcome: 'denied', code: e.code }, to: view.to, address }, 'inbound tunnel stream refused');
    void this.audit?.record({ actor: 'engine', action: 'tunnel.inbound', target: view.id, outcome: 'denied', code: e.code, detail: { to: view.to, address, reason } })
      .catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'audit write failed'));
    stream.destroy(e);
  }

  /**
   * At open: an inbound destination on this machine at a reserved port (foreignPorts) is refused. A name
   * that does not resolve yet passes; the check at each stream open covers it then.
   */
  private async refuseForeignTarget(to: string): Promise<void> {
    const { host, port } = parseHostPort(to, 'dial', TO);
    if (!this.foreignPorts.has(port)) return;
    const addresses = await resolveAll(host).catch(() => []);
    if (addresses.some((a) => isLocalAddress(a.address))) {
      // Not "whose": which ports carry other customers' tunnels is none of this caller's business.
      throw new BadParameterError('ERR_BAD_TARGET', `to: "${to}" is reserved on this host; an inbound tunnel may not lead there`, { field: 'to' });
    }
  }

  /** The host's current set of reserved ports (foreignPorts); live dials into one of them are cut. */
  setForeignPorts(ports: readonly number[]): void {
    this.foreignPorts = new Set(ports);
    for (const [sock, d] of this.localDials) {
      if (!this.foreignPorts.has(d.port)) continue;
      this.localDials.delete(sock);
      this.refuseInbound(d.stream, d.view, d.address, crossTenant(d.view), CROSS_TENANT_REASON);
      sock.destroy();
    }
  }

  private announceOutbound(): Promise<void> {
    return this.onOutboundListeners?.([...this.listeners.values()].filter((l) => l.view.direction === 'outbound').map((l) => l.view.listen)) ?? Promise.resolve();
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
    if (l.view.direction === 'outbound') this.announceOutbound().catch(() => undefined); // a closed port needs no confirmation
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
