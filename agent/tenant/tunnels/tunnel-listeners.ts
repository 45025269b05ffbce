/**
 * The tenant's tunnels, as listeners:
 * - outbound: a listener here (loopback only) turns each accepted connection into a stream to a live
 *   engine, which dials the destination inside the customer network (allow-listed there); the other
 *   tenants of this host learn its port before it serves anything (they refuse inbound streams into it);
 * - inbound: each engine listens on the customer side; its connections arrive here as streams naming the
 *   listener, and go only to that listener's configured destination on this side (inbound-dials.ts).
 * A tunnel bound to an engine or a group uses only that engine or the group's live engines (engine-target.ts).
 * Not the sessions themselves (engine-sessions.ts), whose coming and going this follows.
 */
import { createServer, type Server } from 'node:net';
import { randomBytes } from 'node:crypto';
import { BadParameterError, NotFoundError, UnavailableError, errorMessage } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import type { MuxStream } from '../../tunnel/mux-stream.js';
import { spliceSocket } from '../../tunnel/socket-splice.js';
import { formatHostPort, parseHostPort } from '#common/address.js';
import { isSensitiveHostSide } from '#common/ip-address.js';
import { LISTEN, TO } from './address-policy.js';
import type { EngineSession } from './engine-sessions.js';
import { matches, type EngineTarget } from './engine-target.js';
import type { InboundDials } from './inbound-dials.js';

export type Direction = 'outbound' | 'inbound';
export interface ListenerView {
  id: string;
  direction: Direction;
  listen: string;
  to: string;
  engine?: string;
  /** The engine group the tunnel is bound to: only its engines carry its connections. */
  group?: string;
  connections: number;
  /** Outbound: why the latest connection was dropped (`CODE: message`), until a later one is carried. */
  lastError?: string;
  /** Inbound: where each engine listens, or why it could not. */
  engines?: Record<string, string>;
}
interface Listener {
  view: ListenerView;
  server?: Server;
}

/** What the listeners need of the engine sessions. */
export interface SessionPool {
  /** The session new work goes to (the next of those the target allows); throws if there is none. */
  pick(target?: EngineTarget): EngineSession;
  all(target?: EngineTarget): EngineSession[];
}

const targetOf = (v: ListenerView): EngineTarget => ({ engine: v.engine, group: v.group });

export class TunnelListeners {
  private readonly listeners = new Map<string, Listener>();

  constructor(
    private readonly tenant: string,
    private readonly sessions: SessionPool,
    private readonly dials: InboundDials,
    private readonly log: Logger,
    /** Tells the host our outbound listeners (all of them); resolves once the other tenants hold the set. */
    private readonly announce: (listen: string[]) => Promise<void>,
  ) {}

  /** Opens a tunnel; `target` (checked by the caller against the engines known) binds it to an engine or group. */
  async open(direction: Direction, to: string, listen: string, target: EngineTarget = {}): Promise<ListenerView> {
    const { engine, group } = target;
    const listenHost = parseHostPort(listen, 'listen', LISTEN).host;
    const toHost = parseHostPort(to, 'dial', TO).host;
    const view: ListenerView = {
      id: `tun_${randomBytes(6).toString('hex')}`,
      direction,
      listen,
      to,
      connections: 0,
      ...(engine ? { engine } : {}),
      ...(group !== undefined ? { group } : {}),
    };
    // Outbound listeners live on the MSSP host: loopback only, or anyone reaching the host could use the engine.
    if (direction === 'outbound' && !['127.0.0.1', '::1', 'localhost'].includes(listenHost)) {
      throw new BadParameterError(
        'ERR_BAD_LISTEN',
        `listen: outbound tunnels listen on loopback only (127.0.0.1 or [::1]), not "${listenHost}"`,
        { field: 'listen' },
      );
    }
    // Inbound destinations are on the MSSP side: never the host's cloud metadata or link-local addresses.
    if (direction === 'inbound' && isSensitiveHostSide(toHost)) {
      throw new BadParameterError('ERR_BAD_TARGET', `to: "${to}" is a link-local, metadata or unspecified address`, {
        field: 'to',
      });
    }
    if (direction === 'outbound') return this.openOutbound(view);
    await this.dials.refuseForeignTarget(to);
    view.engines = {};
    this.listeners.set(view.id, { view });
    await Promise.all(this.sessions.all(target).map((s) => this.listenOn(s, view)));
    return view;
  }

  private async openOutbound(view: ListenerView): Promise<ListenerView> {
    // Closed to connections until the other tenants on this host know its port (announceOutbound).
    let confirmed = false;
    const server = createServer({ allowHalfOpen: true }, (sock) => {
      if (!confirmed) {
        sock.destroy();
        return;
      }
      let stream: MuxStream;
      try {
        // No engine in session, or its session at its stream limit (a burst of local connections): this one
        // connection is dropped, never the tenant process.
        stream = this.sessions.pick(targetOf(view)).tunnel.mux.open(view.to);
      } catch (e) {
        sock.destroy();
        const code = (e as { code?: string }).code;
        view.lastError = `${code ?? 'ERR_INTERNAL'}: ${errorMessage(e)}`;
        this.log.warn({ to: view.to, group: view.group, code, err: errorMessage(e) }, 'tunnel connection dropped');
        return;
      }
      view.connections++;
      delete view.lastError;
      spliceSocket(sock, stream, (e) =>
        this.log.info({ to: view.to, code: (e as { code?: string }).code }, 'tunnel stream ended with an error'),
      );
    });
    const { host, port } = parseHostPort(view.listen, 'listen', LISTEN);
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(new UnavailableError('ERR_LISTEN', `cannot listen on ${view.listen}: ${e.message}`)),
      );
      server.listen(port, host, () => resolve());
    });
    view.listen = formatHostPort(host, (server.address() as { port: number }).port);
    this.listeners.set(view.id, { view, server });
    try {
      await this.announceOutbound();
    } catch (e) {
      server.close();
      this.listeners.delete(view.id);
      this.announceOutbound().catch(() => undefined);
      throw e;
    }
    confirmed = true;
    return view;
  }

  /** Asks one engine to listen for an inbound tunnel; records where it listens or why it cannot. */
  private async listenOn(s: EngineSession, view: ListenerView): Promise<void> {
    if (!matches(s, targetOf(view))) return;
    try {
      const r = (await s.tunnel.request('tunnel.listen', { id: view.id, listen: view.listen }, 10_000)) as {
        listen: string;
      };
      view.engines![s.name] = r.listen;
    } catch (e) {
      view.engines![s.name] = `error: ${errorMessage(e)}`;
      this.log.warn({ id: view.id, engine: s.name, err: errorMessage(e) }, 'engine could not open an inbound listener');
    }
  }

  /** A new engine session: it listens for every inbound tunnel meant for it. */
  onEstablished(s: EngineSession): void {
    for (const l of this.listeners.values()) if (l.view.direction === 'inbound') void this.listenOn(s, l.view);
  }

  /** An engine session ended: its inbound listeners went with it. */
  onEnded(s: EngineSession): void {
    for (const l of this.listeners.values()) delete l.view.engines?.[s.name];
  }

  /**
   * An engine opened a stream: only for an inbound listener we configured, to that listener's destination,
   * and never to a port reserved here (inbound-dials.ts; one may have become reserved since the tunnel opened).
   */
  inbound(stream: MuxStream, target: string): true | string {
    const id = target.startsWith('listener:') ? target.slice('listener:'.length) : '';
    const l = this.listeners.get(id);
    if (!l || l.view.direction !== 'inbound') return `no inbound tunnel "${id}" on tenant ${this.tenant}`;
    l.view.connections++;
    stream.on('error', () => undefined); // until spliced: a reset while resolving must not throw
    this.dials
      .dial(stream, l.view)
      .catch((e: unknown) =>
        stream.destroy(Object.assign(new Error(`dial ${l.view.to}: ${errorMessage(e)}`), { code: 'ERR_TUNNEL_DIAL' })),
      );
    return true;
  }

  private announceOutbound(): Promise<void> {
    return this.announce(
      [...this.listeners.values()].filter((l) => l.view.direction === 'outbound').map((l) => l.view.listen),
    );
  }

  list(): ListenerView[] {
    return [...this.listeners.values()].map((l) => l.view);
  }

  close(id: string): ListenerView {
    const l = this.listeners.get(id);
    if (!l) throw new NotFoundError('ERR_TUNNEL_NOT_FOUND', `no tunnel ${id}`, { field: 'id' });
    l.server?.close();
    this.listeners.delete(id);
    if (l.view.direction === 'outbound') this.announceOutbound().catch(() => undefined); // a closed port needs no confirmation
    if (l.view.direction === 'inbound') {
      for (const s of this.sessions.all(targetOf(l.view)))
        void s.tunnel.request('tunnel.unlisten', { id }, 10_000).catch(() => undefined);
    }
    return l.view;
  }

  closeAll(): void {
    for (const id of [...this.listeners.keys()]) this.close(id);
  }
}
