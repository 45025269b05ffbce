/**
 * The tenant's tunnels, as tenant-main and the tenant's API see them: its engines' sessions (relayed
 * records from the host, direct connections handed over by the host, main's revocations), the tunnel
 * listeners on top of them (outbound and inbound), the ports reserved on this host, and integration
 * commands run on an engine (`http.request`, `tcp.check`). This module only joins the parts, which live
 * in tunnels/: engine-sessions.ts (sessions, hello replay guard, main's trust in engines), engine-target.ts
 * (which engine takes work bound to an engine or group), tunnel-listeners.ts (listeners), inbound-dials.ts and
 * address-policy.ts (where inbound streams may lead).
 */
import type { KeyObject } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from '#common/logging.js';
import type { BoxKeyPair } from '../tunnel/tunnel-crypto.js';
import type { DirectPreamble } from '../tunnel/tunnel-direct.js';
import {
  EngineSessions,
  type EngineSession,
  type EngineView,
  type TunnelAudit,
  type TunnelRecordIn,
} from './tunnels/engine-sessions.js';
import { runWithFailover, type EngineTarget } from './tunnels/engine-target.js';
import { InboundDials } from './tunnels/inbound-dials.js';
import { EngineEvents, type EngineEventCounts } from './tunnels/engine-events.js';
import { EVENTS_BATCH } from '../tunnel/events-batch.js';
import { BadParameterError } from '#common/errors.js';
import { ENGINE_REPLY_MARGIN_MS, timeLeft } from '../integrations/call-limits.js';
import { TunnelListeners, type Direction, type ListenerView } from './tunnels/tunnel-listeners.js';

export type { Direction, EngineSession, EngineTarget, EngineView, ListenerView, TunnelRecordIn };

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
  /** Where engines' syslog batches go: `events.sink` is the tenant's event pipeline, set by the tenant app. */
  readonly events = new EngineEvents();

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
      onCommand: (s, command, args) => {
        if (command === EVENTS_BATCH) return this.events.onBatch(s.name, args);
        throw new BadParameterError(
          'ERR_COMMAND_UNKNOWN',
          `a tenant takes ${EVENTS_BATCH} from engines; not "${command}"`,
          {
            field: 'command',
          },
        );
      },
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

  /** The engines in session, each with what its syslog batches brought (`events`) once one arrived. */
  engines(): (EngineView & { events?: EngineEventCounts })[] {
    return this.sessions.engines().map((e) => {
      const events = this.events.of(e.name);
      return events ? { ...e, events } : e;
    });
  }

  /** Opens a tunnel, bound to `target`'s engine or group if it names one (refused if the group is unknown). */
  open(direction: Direction, to: string, listen: string, target: EngineTarget = {}): Promise<ListenerView> {
    this.sessions.checkTarget(target);
    return this.listeners.open(direction, to, listen, target);
  }

  listListeners(): ListenerView[] {
    return this.listeners.list();
  }

  closeListener(id: string): ListenerView {
    return this.listeners.close(id);
  }

  /**
   * Runs an integration command on one engine of those `target` allows (engine-target.ts); `retrySafe` as for
   * runOn. Answers which engine ran it, and the engines that ended before answering (`failedOver`), if any.
   * With `deadline` (a performance.now() time: an integration call's budget, integrations/call-limits.ts) each
   * attempt waits what is left of it, and its args say in `budgetMs` how long the engine's own work may take.
   */
  async runCommand(
    command: string,
    args: unknown,
    target: EngineTarget,
    o: { timeoutMs?: number; retrySafe: boolean; deadline?: number },
  ): Promise<{ engine: string; group: string | null; command: string; result: unknown; failedOver?: string[] }> {
    this.sessions.checkTarget(target);
    const attempt = (s: EngineSession) => {
      if (o.deadline === undefined) return s.tunnel.request(command, args, o.timeoutMs);
      const left = timeLeft(o.deadline);
      const budgetMs = Math.max(0, left - ENGINE_REPLY_MARGIN_MS);
      return s.tunnel.request(command, { ...(args as object), budgetMs }, Math.max(1, left));
    };
    const r = await this.runOn(target, attempt, o.retrySafe);
    const failedOver = r.failedOver.length ? { failedOver: r.failedOver } : {};
    return { engine: r.session.name, group: r.session.group || null, command, result: r.value, ...failedOver };
  }

  /**
   * Runs `work` on a live engine session `target` allows (a run-on text `engine:E` or `group:G` read by
   * parseRunOn of tunnels/engine-target.ts, or {} for any engine of the tenant), spread over them in turn and
   * never on another engine: a group's work stays in the group even when none of its engines is left
   * (ERR_ENGINE_GROUP_OFFLINE, naming it). When the chosen engine's session ends before `work` settles and the
   * work is `retrySafe` (read-only), it fails over to another live engine `target` allows (runWithFailover in
   * tunnels/engine-target.ts has the whole rule). This is what integration instances bound to an engine or
   * group run their commands through.
   */
  runOn<T>(
    target: EngineTarget,
    work: (s: EngineSession) => Promise<T>,
    retrySafe: boolean,
  ): Promise<{ session: EngineSession; value: T; failedOver: string[] }> {
    return runWithFailover((ended) => this.sessions.pick(target, ended), work, retrySafe);
  }

  close(): void {
    this.listeners.closeAll();
    this.sessions.close();
  }
}
