/**
 * The tenant's end of its engines' sessions, one per engine. Records arrive either relayed (engine → main
 * → host → IPC, onRecord) or on the engine's own TCP connection, which the host hands over after checking
 * its preamble (the direct path, onDirect). Either way an engine's first record is its hello, accepted
 * only if main vouches (signature) for that engine's key and name and has not revoked it (engine-trust.ts),
 * and only once (hello-replay-guard.ts). A direct session ends when main's statement for it expires unless
 * the engine renews it; any session ends as soon as the host passes on main's revocation of its engine.
 *
 * Not what the sessions are used for (tunnel listeners, commands: tunnel-endpoint.ts and its parts), nor
 * how records travel (agent/tunnel/session-carrier.ts).
 */
import type { KeyObject } from 'node:crypto';
import type { Socket } from 'node:net';
import { AccessDeniedError, errorMessage } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import { tenantAccept, type BoxKeyPair } from '../../tunnel/tunnel-crypto.js';
import { aeadBackend } from '../../tunnel/native-aead.js';
import { parseEngineHello, RECORD_HANDSHAKE, RECORD_SEALED, tenantHelloRecord } from '../../tunnel/tunnel-records.js';
import type { DirectPreamble } from '../../tunnel/tunnel-direct.js';
import type { TunnelSession } from '../../tunnel/tunnel-session.js';
import type { MuxStream } from '../../tunnel/mux-stream.js';
import { DirectCarrier, RelayCarrier, type Carrier, type Transport } from '../../tunnel/session-carrier.js';
import type { TenantAuditEntry } from '../audit-store.js';
import type { TunnelRecord } from '../../tenant-ipc.js';
import { EngineTrust, StatementLease } from './engine-trust.js';
import { PROTOCOL_MINOR } from '#common/protocol-version.js';
import { EVENTS_BATCH } from '../../tunnel/events-batch.js';
import { HelloReplayGuard } from './hello-replay-guard.js';
import { checkTarget, choose, matches, type EngineTarget } from './engine-target.js';

/** Commands whose args the session hands over as bytes: an engine's event batch is read in place. */
const RAW_COMMANDS: ReadonlySet<string> = new Set([EVENTS_BATCH]);

/** A relayed record as the host passes it on (main adds the engine's enrolled key and its signature to a hello). */
export type TunnelRecordIn = TunnelRecord;
export interface EngineView {
  id: string;
  name: string;
  /** The group main signed for the engine; null for none. */
  group: string | null;
  since: string;
  streams: number;
  transport: Transport;
}
/** The tenant's audit log, as the tunnels write to it. */
export interface TunnelAudit {
  record(e: Omit<TenantAuditEntry, 'at'>): Promise<void>;
}

export interface EngineSession {
  readonly id: string;
  readonly name: string;
  /** The group main signed for the engine ('' for none): work bound to a group goes only to its engines. */
  readonly group: string;
  readonly since: string;
  readonly carrier: Carrier;
  readonly tunnel: TunnelSession;
  /** Direct sessions: main's statement, which the session outlives only by renewal. */
  lease?: StatementLease;
}

/** What the sessions' users hear of them (tunnel-endpoint.ts wires these to the tunnel listeners). */
export interface SessionHooks {
  /** An engine opened a stream: accept (true) or refuse with a reason. */
  onOpen(stream: MuxStream, target: string): true | string;
  onEstablished(s: EngineSession): void;
  onEnded(s: EngineSession): void;
  /** A command the engine sent (`events.batch`): its answer, or a throw (the engine hears the error). */
  onCommand(s: EngineSession, name: string, args: unknown): Promise<unknown>;
}

/**
 * Sessions that ended lately, kept so that main's revocation of their engine is still audited when the
 * session ended first: a revoked engine loses its connection to main and stops, which may close its direct
 * connection before the host passes the revocation on. Bounded: the oldest is forgotten first.
 */
const RECENTLY_ENDED_MS = 10 * 60_000;
const RECENTLY_ENDED_MAX = 256;

export class EngineSessions {
  private readonly sessions = new Map<string, EngineSession>();
  private readonly ended = new Map<string, { name: string; transport: Transport; at: number }>();
  private readonly hellos = new HelloReplayGuard();
  private readonly trust: EngineTrust;
  /** Every engine that held a session since this process started, name → group: the groups a target may name. */
  private readonly known = new Map<string, string>();
  private next = 0;

  constructor(
    private readonly tenant: string,
    private readonly box: BoxKeyPair,
    /** Main's signing key: it vouches for the engines. */
    mainKey: KeyObject,
    /** Sends a relayed record to an engine (through the host and main). */
    private readonly relay: (engineId: string, record: Uint8Array) => void,
    private readonly log: Logger,
    /** The tenant's audit log, for revoked engines (once the tenant app has it). */
    private readonly audit: () => TunnelAudit | undefined,
    private readonly hooks: SessionHooks,
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
        if (s?.carrier.transport === 'relay') s.tunnel.onSealed(r.record.subarray(1));
      }
    } catch (e) {
      this.log.warn(
        { engineId: r.engineId, code: (e as { code?: string }).code, err: errorMessage(e) },
        'engine session refused or broken',
      );
      const ended = this.sessions.get(r.engineId);
      this.drop(r.engineId, 'session failed');
      // Main then passes none of the engine's records any more (they would fail here too), and the engine starts anew.
      if (ended?.carrier.transport === 'relay') this.relay(r.engineId, new Uint8Array(0));
    }
  }

  private acceptRelayed(r: TunnelRecordIn): void {
    const engine = { id: r.engineId, name: r.engineName ?? '', group: r.engineGroup ?? '' };
    const vouched = this.trust.relayedKey(engine, Buffer.from(r.engineKey ?? []), r.engineKeySig);
    this.accept(engine, r.record, vouched, new RelayCarrier((rec) => this.relay(r.engineId, rec)));
  }

  /**
   * An engine's direct connection, handed over by the host with the bytes it read (the engine's hello,
   * framed). The host checked main's statement; we check it again, since we do not trust the host.
   */
  onDirect(p: DirectPreamble, head: Uint8Array, sock: Socket): void {
    sock.on('error', () => undefined);
    const broken = (e: unknown) =>
      this.log.warn(
        { engineId: p.engineId, code: (e as { code?: string }).code, err: errorMessage(e) },
        'engine session refused or broken',
      );
    const problem = this.trust.directProblem(p);
    if (problem) {
      broken(
        new AccessDeniedError(
          'ERR_TUNNEL_ENGINE_UNKNOWN',
          `main's statement for this engine is missing, expired or not for this tenant (${problem})`,
        ),
      );
      sock.destroy();
      return;
    }
    let session: EngineSession | undefined;
    const current = () => session !== undefined && this.sessions.get(p.engineId) === session;
    const carrier: DirectCarrier = new DirectCarrier(sock, {
      onHello: (record) => {
        const engine = { id: p.engineId, name: p.engineName, group: p.engineGroup };
        session = this.accept(engine, record, Buffer.from(p.engineKey), carrier);
        session.lease = new StatementLease(p, this.log, () =>
          this.drop(p.engineId, "main's statement for the engine expired"),
        );
      },
      onRenewal: (next) => session?.lease?.renew(next, this.trust),
      onBroken: (e) => {
        broken(e);
        if (current()) this.drop(p.engineId, 'session failed');
      },
      onClose: () => {
        if (current()) this.drop(p.engineId, 'direct connection closed');
      },
    });
    carrier.start(head);
  }

  /**
   * Accepts an engine hello for a key main vouched for (`vouchedKey`, with the engine's name and group),
   * replacing that engine's previous session, and answers it on `carrier`. Throws (nothing changed) on refusal.
   */
  private accept(
    { id: engineId, name, group }: { id: string; name: string; group: string },
    record: Uint8Array,
    vouchedKey: Buffer | undefined,
    carrier: Carrier,
  ): EngineSession {
    if (this.trust.isRevoked(engineId))
      throw new AccessDeniedError('ERR_TUNNEL_ENGINE_REVOKED', `engine ${name || engineId} was revoked by main`);
    const hello = parseEngineHello(record);
    const { reply, keys } = tenantAccept(
      this.box,
      hello,
      (k) => vouchedKey !== undefined && Buffer.from(k).equals(vouchedKey),
    );
    this.hellos.remember(hello.engineEph);
    this.drop(engineId, 'engine started a new session');
    const made: { session?: EngineSession } = {};
    const tunnel = carrier.startSession(keys, {
      initiator: true,
      onOpen: (stream, target) => this.hooks.onOpen(stream, target),
      // The engine speaks first only after our hello, so the session is made before any command can arrive.
      onCommand: (command, args) => this.hooks.onCommand(made.session!, command, args),
      // Batches are read in place, binary or JSON (engine-events.ts), not parsed here.
      rawCommands: RAW_COMMANDS,
    });
    const session: EngineSession = { id: engineId, name, group, since: new Date().toISOString(), carrier, tunnel };
    made.session = session;
    this.sessions.set(engineId, session);
    this.known.set(name, group);
    // Our minor tells the engine what we read (binary event batches from 1.11).
    carrier.sendRecord(tenantHelloRecord({ ...reply, protocolMinor: PROTOCOL_MINOR }));
    this.log.info(
      { engineId, engine: name, group: group || undefined, transport: carrier.transport, aead: aeadBackend() },
      'engine session established',
    );
    this.hooks.onEstablished(session);
    return session;
  }

  private drop(engineId: string, why: string): void {
    const s = this.sessions.get(engineId);
    if (!s) return;
    s.carrier.end(why);
    s.lease?.close();
    this.sessions.delete(engineId);
    this.ended.delete(engineId);
    this.ended.set(engineId, { name: s.name, transport: s.carrier.transport, at: Date.now() });
    if (this.ended.size > RECENTLY_ENDED_MAX) this.ended.delete(this.ended.keys().next().value!);
    this.hooks.onEnded(s);
  }

  /**
   * Main's current list of this tenant's revoked engines (through the host): their sessions end now, and
   * the audit log says so, also for a session that ended lately (its engine stopped first).
   */
  setRevoked(engineIds: readonly string[]): void {
    this.trust.setRevoked(engineIds);
    for (const s of [...this.sessions.values()]) {
      if (!this.trust.isRevoked(s.id)) continue;
      this.auditRevoked(s.id, s.name, s.carrier.transport, 'the engine was revoked by main; its session ended');
      this.drop(s.id, 'engine revoked by main');
      this.ended.delete(s.id);
    }
    for (const [id, e] of [...this.ended]) {
      if (!this.trust.isRevoked(id) || Date.now() - e.at > RECENTLY_ENDED_MS) continue;
      this.auditRevoked(id, e.name, e.transport, 'the engine was revoked by main; its session had ended already');
      this.ended.delete(id);
    }
  }

  private auditRevoked(engineId: string, name: string, transport: Transport, reason: string): void {
    this.log.warn(
      { engineId, engine: name, transport, code: 'ERR_TUNNEL_ENGINE_REVOKED' },
      'engine revoked by main; its session ends',
    );
    void this.audit()
      ?.record({
        actor: 'main',
        action: 'tunnel.engine.revoked',
        target: `engine:${name}`,
        outcome: 'ok',
        code: 'ERR_TUNNEL_ENGINE_REVOKED',
        detail: { engineId, transport, reason },
      })
      .catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'audit write failed'));
  }

  engines(): EngineView[] {
    return [...this.sessions.values()].map((s) => ({
      id: s.id,
      name: s.name,
      group: s.group || null,
      since: s.since,
      streams: s.tunnel.mux.size,
      transport: s.carrier.transport,
    }));
  }

  /** The live sessions that `target` allows (all of them without one). */
  all(target: EngineTarget = {}): EngineSession[] {
    return [...this.sessions.values()].filter((s) => matches(s, target));
  }

  /**
   * Spreads new work over the live sessions `target` allows (engine-target.ts), skipping the engines in
   * `exclude`; throws, naming the engine or group, when none is left.
   */
  pick(target: EngineTarget = {}, exclude?: ReadonlySet<string>): EngineSession {
    return choose([...this.sessions.values()], target, this.next++, this.tenant, exclude);
  }

  /** Refuses a target naming a group no engine of this tenant has had, or an engine outside its group. */
  checkTarget(target: EngineTarget): void {
    checkTarget(target, this.known, this.tenant);
  }

  close(): void {
    for (const id of [...this.sessions.keys()]) this.drop(id, 'tenant stopping');
  }
}
