/**
 * Where an inbound tunnel's streams may lead on this host, judged against what a destination resolves
 * to and against the ports reserved here right now: an engine's connection to one of our inbound
 * listeners is dialled to that listener's destination, never to cloud metadata or link-local addresses,
 * and never into a port the host reserved (another tenant's outbound listener or API, the host's engine
 * port), even one that became reserved after the dial. Refusals close the stream with a reason for the
 * engine and are audited here. Not which listener a stream belongs to (tunnel-listeners.ts).
 */
import { connect, type Socket } from 'node:net';
import type { LookupAddress } from 'node:dns';
import { AccessDeniedError, BadParameterError, errorMessage } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import type { MuxStream } from '../../tunnel/mux-stream.js';
import { spliceSocket } from '../../tunnel/socket-splice.js';
import { isLocalAddress, pinnedLookup, resolveAll } from '../../local-addresses.js';
import { parseHostPort } from '#common/address.js';
import { isSensitiveHostSide } from '#common/ip-address.js';
import { CROSS_TENANT_REASON, TO, crossTenant } from './address-policy.js';
import type { TunnelAudit } from './engine-sessions.js';

/** What a dial needs of its inbound listener. */
export interface InboundTarget {
  id: string;
  to: string;
}

export class InboundDials {
  /**
   * Ports on this host an inbound tunnel may not lead to, pushed by the host (agent/host/reserved-ports.ts):
   * the other tenants' outbound listeners (that would join two customers' networks through our engine and
   * theirs) and APIs, and the host's engine port.
   */
  private foreignPorts: ReadonlySet<number> = new Set();
  /** Live inbound dials to this machine, cut if their port turns out to be another tenant's listener. */
  private readonly localDials = new Map<
    Socket,
    { port: number; address: string; stream: MuxStream; view: InboundTarget }
  >();

  constructor(
    private readonly log: Logger,
    private readonly audit: () => TunnelAudit | undefined,
  ) {}

  /** Resolves the destination once, checks what it resolved to, and dials only those addresses (no DNS rebinding). */
  async dial(stream: MuxStream, view: InboundTarget): Promise<void> {
    const { host, port } = parseHostPort(view.to, 'dial', TO);
    let addresses: LookupAddress[];
    try {
      addresses = await resolveAll(host);
    } catch (e) {
      stream.destroy(Object.assign(new Error(`dial ${view.to}: ${errorMessage(e)}`), { code: 'ERR_TUNNEL_DIAL' }));
      return;
    }
    if (stream.destroyed) return;
    // The literal check at open() cannot see what a name resolves to: metadata and link-local stay refused.
    const sensitive = addresses.find((a) => isSensitiveHostSide(a.address));
    if (sensitive) {
      return this.refuse(
        stream,
        view,
        sensitive.address,
        new AccessDeniedError(
          'ERR_TUNNEL_TARGET_DENIED',
          `inbound tunnel ${view.id}: ${view.to} resolves to ${sensitive.address}, a link-local, metadata or unspecified address`,
        ),
      );
    }
    const local = addresses.find((a) => isLocalAddress(a.address));
    if (local && this.foreignPorts.has(port))
      return this.refuse(stream, view, local.address, crossTenant(view), CROSS_TENANT_REASON);
    const sock = connect({ host, port, allowHalfOpen: true, lookup: pinnedLookup(addresses) });
    sock.on('error', (e) =>
      stream.destroy(Object.assign(new Error(`dial ${view.to}: ${e.message}`), { code: 'ERR_TUNNEL_DIAL' })),
    );
    spliceSocket(sock, stream);
    if (!local) return;
    this.localDials.set(sock, { port, address: local.address, stream, view });
    sock.once('close', () => this.localDials.delete(sock));
  }

  /** Refuses (or cuts) an inbound stream to a destination it may not reach: engine told why, audited, logged. */
  private refuse(
    stream: MuxStream,
    view: InboundTarget,
    address: string,
    e: AccessDeniedError,
    reason = e.message,
  ): void {
    this.log.warn(
      { audit: { action: 'tunnel.inbound', target: view.id, outcome: 'denied', code: e.code }, to: view.to, address },
      'inbound tunnel stream refused',
    );
    void this.audit()
      ?.record({
        actor: 'engine',
        action: 'tunnel.inbound',
        target: view.id,
        outcome: 'denied',
        code: e.code,
        detail: { to: view.to, address, reason },
      })
      .catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'audit write failed'));
    stream.destroy(e);
  }

  /**
   * At open: an inbound destination on this machine at a reserved port (foreignPorts) is refused. A name
   * that does not resolve yet passes; the check at each stream open covers it then.
   */
  async refuseForeignTarget(to: string): Promise<void> {
    const { host, port } = parseHostPort(to, 'dial', TO);
    if (!this.foreignPorts.has(port)) return;
    const addresses = await resolveAll(host).catch(() => []);
    if (addresses.some((a) => isLocalAddress(a.address))) {
      // Not "whose": which ports carry other customers' tunnels is none of this caller's business.
      throw new BadParameterError(
        'ERR_BAD_TARGET',
        `to: "${to}" is reserved on this host; an inbound tunnel may not lead there`,
        { field: 'to' },
      );
    }
  }

  /** The host's current set of reserved ports (foreignPorts); live dials into one of them are cut. */
  setForeignPorts(ports: readonly number[]): void {
    this.foreignPorts = new Set(ports);
    for (const [sock, d] of this.localDials) {
      if (!this.foreignPorts.has(d.port)) continue;
      this.localDials.delete(sock);
      this.refuse(d.stream, d.view, d.address, crossTenant(d.view), CROSS_TENANT_REASON);
      sock.destroy();
    }
  }
}
