/**
 * The tenant's tunnels, as tenant-main and the tenant's API see them: its engines' sessions (relayed
 * records from the host, direct connections handed over by the host, main's revocations), the tunnel
 * listeners on top of them (outbound and inbound), the ports reserved on this host, and integration
 * commands run on an engine (`http.request`, `tcp.check`). This module only joins the parts, which live
 * in tunnels/: engine-sessions.ts (sessions, hello replay guard, main's trust in engines), tunnel-listeners.ts
 * (listeners), inbound-dials.ts and address-policy.ts (where inbound streams may lead).
 */
import type { KeyObject } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from '#common/logging.js';
import type { BoxKeyPair } from '../tunnel/tunnel-crypto.js';
import type { DirectPreamble } from '../tunnel/tunnel-direct.js';
import { EngineSessions, type EngineView, type TunnelAudit, type TunnelRecordIn } from './tunnels/engine-sessions.js';
import { InboundDials } from './tunnels/inbound-dials.js';
import { TunnelListeners, type Direction, type ListenerView } from './tunnels/tunnel-listeners.js';

export type { Direction, EngineView, ListenerView, TunnelRecordIn };

export class TunnelEndpoint {
  private readonly sessions: EngineSessions;
  private readonly listeners: TunnelListeners;
  private readonly dials: InboundDials;
  /**
   * Tells the host our outbound listeners (all of them, after each change); resolves once the other tenants
   * hold the new set (they then refuse inbound streams into it). Set by tenant-main.
   */
  onOutboundListeners?: (listen: string[]) => Promise<void>;
  /** The tenant's audit log, for refused inbound streams and revoked engines; set by the tenant app. */
  audit?: TunnelAudit;

  constructor(
    tenant: string,
    box: BoxKeyPair,
    mainKey: KeyObject,
    sendRecord: (engineId: string, record: Uint8Array) => void,
    log: Logger,
  ) {
    this.dials = new InboundDials(log, () => this.audit);
    this.sessions = new EngineSessions(tenant, box, mainKey, sendRecord, log, () => this.audit, {
      onOpen: (stream, target) => this.listeners.inbound(stream, target),
      onEstablished: (s) => this.listeners.onEstablished(s),
      onEnded: (s) => this.listeners.onEnded(s),
    });
    this.listeners = new TunnelListeners(
      tenant,
      this.sessions,
      this.dials,
      log,
      (listen) => this.onOutboundListeners?.(listen) ?? Promise.resolve(),
    );
  }

  /** A relayed record from an engine, as the host passed it on. */
  onRecord(r: TunnelRecordIn): void {
    this.sessions.onRecord(r);
  }

  /** An engine's direct connection, handed over by the host with the bytes it read (its framed hello). */
  onDirect(p: DirectPreamble, head: Uint8Array, sock: Socket): void {
    this.sessions.onDirect(p, head, sock);
  }

  /** Main's current list of this tenant's revoked engines (through the host): their sessions end now. */
  setRevoked(engineIds: readonly string[]): void {
    this.sessions.setRevoked(engineIds);
  }

  /** The host's current set of reserved ports: inbound tunnels may not lead there. */
  setForeignPorts(ports: readonly number[]): void {
    this.dials.setForeignPorts(ports);
  }

  engines(): EngineView[] {
    return this.sessions.engines();
  }

  open(direction: Direction, to: string, listen: string, engine?: string): Promise<ListenerView> {
    return this.listeners.open(direction, to, listen, engine);
  }

  listListeners(): ListenerView[] {
    return this.listeners.list();
  }

  closeListener(id: string): ListenerView {
    return this.listeners.close(id);
  }

  /** Runs an integration command on one engine (the one named, or the next of the group). */
  async runCommand(
    command: string,
    args: unknown,
    engine?: string,
    timeoutMs?: number,
  ): Promise<{ engine: string; command: string; result: unknown }> {
    const s = this.sessions.pick(engine);
    const result = await s.tunnel.request(command, args, timeoutMs);
    return { engine: s.name, command, result };
  }

  close(): void {
    this.listeners.closeAll();
    this.sessions.close();
  }
}
