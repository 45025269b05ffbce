/**
 * The tenant's end of its engines' sessions, and the MSSP-side listeners of outbound tunnels. Records
 * arrive from the host over IPC; an engine's first record is its handshake, accepted only if main vouches
 * (signature) for that engine's key. Each listener turns every accepted TCP connection into a stream to
 * a live engine, which dials the destination inside the customer network.
 */
import { createServer, type Server } from 'node:net';
import { randomBytes, verify, type KeyObject } from 'node:crypto';
import { decodeEnvelope, encodeEnvelope, type EnvelopeInit } from '#common/codec.js';
import { tenantAccept, type BoxKeyPair, type SessionKeys, type EngineHello } from '#common/tunnel-crypto.js';
import { handshakeRecord, parseHandshake, sealedRecord, RECORD_HANDSHAKE, RECORD_SEALED } from '#common/tunnel-records.js';
import { StreamMux } from '#common/stream-mux.js';
import { BadParameterError, NotFoundError, UnavailableError, errorMessage } from '#common/errors.js';
import type { Logger } from '#common/logging.js';

export interface TunnelRecordIn { engineId: string; record: Buffer; engineKey?: Buffer; engineKeySig?: Buffer }
export interface ListenerView { id: string; listen: string; to: string; connections: number }

interface Session { keys: SessionKeys; mux: StreamMux }

export class TunnelEndpoint {
  private readonly sessions = new Map<string, Session>();
  private readonly listeners = new Map<string, { view: ListenerView; server: Server }>();
  private next = 0;

  constructor(
    private readonly tenant: string,
    private readonly box: BoxKeyPair,
    private readonly mainKey: KeyObject,
    private readonly sendRecord: (engineId: string, record: Buffer) => void,
    private readonly log: Logger,
  ) {}

  onRecord(r: TunnelRecordIn): void {
    try {
      if (r.record.length === 0) {
        this.log.info({ engineId: r.engineId }, 'engine disconnected; its session ends');
        this.drop(r.engineId, 'engine disconnected');
      } else if (r.record[0] === RECORD_HANDSHAKE) this.accept(r);
      else if (r.record[0] === RECORD_SEALED) {
        const s = this.sessions.get(r.engineId);
        if (s) s.mux.onFrame(decodeEnvelope(s.keys.receive.open(r.record.subarray(1))));
      }
    } catch (e) {
      this.log.warn({ engineId: r.engineId, code: (e as { code?: string }).code, err: errorMessage(e) }, 'engine session refused or broken');
      this.drop(r.engineId, 'session failed');
    }
  }

  private accept(r: TunnelRecordIn): void {
    const key = r.engineKey ?? Buffer.alloc(0);
    const statement = Buffer.from(`palisade engine key v1\n${r.engineId}\n${this.tenant}\n${key.toString('base64')}`, 'utf8');
    const vouched = key.length === 32 && r.engineKeySig !== undefined && verify(null, statement, this.mainKey, r.engineKeySig);
    const { reply, keys } = tenantAccept(this.box, parseHandshake<EngineHello>(r.record), (k) => vouched && Buffer.from(k).equals(key));
    this.drop(r.engineId, 'engine started a new session');
    const mux = new StreamMux({ initiator: true, send: (f: EnvelopeInit) => this.sendRecord(r.engineId, sealedRecord(keys.send.seal(encodeEnvelope(f)))) });
    this.sessions.set(r.engineId, { keys, mux });
    this.sendRecord(r.engineId, handshakeRecord(reply));
    this.log.info({ engineId: r.engineId }, 'engine session established');
  }

  private drop(engineId: string, why: string): void {
    this.sessions.get(engineId)?.mux.close(why);
    this.sessions.delete(engineId);
  }

  engines(): string[] { return [...this.sessions.keys()]; }

  /** Spreads new streams over the live engine sessions (an engine group). */
  private pickSession(): Session | undefined {
    const all = [...this.sessions.values()];
    return all.length ? all[this.next++ % all.length] : undefined;
  }

  async openListener(to: string, listen: string): Promise<ListenerView> {
    const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen);
    if (!m || Number(m[2]) > 65535) throw new BadParameterError('ERR_BAD_LISTEN', `listen: "${listen}" is not ADDR:PORT`, { field: 'listen' });
    if (!/^(\[[^\]]+\]|[^:\s]+):\d{1,5}$/.test(to)) throw new BadParameterError('ERR_BAD_TARGET', `to: "${to}" is not HOST:PORT`, { field: 'to' });
    const view: ListenerView = { id: `tun_${randomBytes(6).toString('hex')}`, listen, to, connections: 0 };
    const server = createServer((sock) => {
      const s = this.pickSession();
      if (!s) { sock.destroy(); this.log.warn({ to }, 'no engine connected for this tunnel'); return; }
      view.connections++;
      sock.setNoDelay(true);
      const stream = s.mux.open(to);
      stream.on('error', (e) => { this.log.info({ to, code: (e as { code?: string }).code }, 'tunnel stream ended with an error'); sock.destroy(); });
      sock.on('error', () => stream.destroy());
      sock.on('close', () => stream.destroy());
      sock.pipe(stream);
      stream.pipe(sock);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new UnavailableError('ERR_LISTEN', `cannot listen on ${listen}: ${e.message}`)));
      server.listen(Number(m[2]), m[1].replace(/^\[|\]$/g, ''), () => resolve());
    });
    const addr = server.address();
    if (addr && typeof addr === 'object') view.listen = `${m[1]}:${addr.port}`;
    this.listeners.set(view.id, { view, server });
    return view;
  }

  listListeners(): ListenerView[] { return [...this.listeners.values()].map((l) => l.view); }

  closeListener(id: string): ListenerView {
    const l = this.listeners.get(id);
    if (!l) throw new NotFoundError('ERR_TUNNEL_NOT_FOUND', `no tunnel ${id}`, { field: 'id' });
    l.server.close();
    this.listeners.delete(id);
    return l.view;
  }

  close(): void {
    for (const id of [...this.listeners.keys()]) this.closeListener(id);
    for (const id of [...this.sessions.keys()]) this.drop(id, 'tenant stopping');
  }
}
