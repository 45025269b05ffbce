/**
 * The ports on this host an inbound tunnel of a tenant's engines may not lead to, kept in step with every
 * tenant process: the other tenants' outbound tunnel listeners (a connection there would go on through
 * their engine into their customer's network) and APIs, and the host's own engine port. Each tenant gets
 * its set over IPC and refuses such tunnels itself (agent/tenant/tunnels/inbound-dials.ts); a new outbound
 * listener serves nothing until every other running tenant has confirmed the set that holds its port.
 * The supervisor owns the tenants and their processes; this module only reads them.
 */
import type { ChildProcess } from 'node:child_process';
import type { Logger } from '#common/logging.js';
import { readHostPort } from '#common/address.js';
import { toTenant } from '../tenant-ipc.js';
import { listeningPorts } from './listening-ports.js';

/**
 * Bound on one tenant's report of its outbound listeners: a misbehaving tenant cannot grow the host's sets without end.
 */
const MAX_TUNNEL_LISTENERS = 4096;
/**
 * How long a new outbound listener waits for the other tenants to confirm its port before it serves anyway (a stuck
 * tenant must not block every other's tunnels).
 */
const PORTS_CONFIRM_MS = 2_000;

/** What this module reads of a supervised tenant; `tunnelPorts` it also sets, from the tenant's report. */
export interface PortHolder {
  name: string;
  port: number;
  state: string;
  child?: ChildProcess;
  tunnelPorts: number[];
}

/** A tenant's listener report waiting until every other running tenant has confirmed the port set that includes it. */
interface PortsWaiter {
  version: number;
  pending: Set<string>;
  done(): void;
}

export class ReservedPorts {
  /** Version of the last set pushed to tenants, and the reports waiting for its confirmation. */
  private version = 0;
  private readonly waiters = new Set<PortsWaiter>();
  private readonly hostPorts = new Set<number>();

  constructor(
    private readonly tenants: () => Iterable<PortHolder>,
    private readonly log: Logger,
  ) {}

  reserveHostPort(port: number): void {
    this.hostPorts.add(port);
    this.push();
  }

  /**
   * A tenant's report of its outbound listeners (ADDR:PORT, all of them): kept, the new set pushed to every
   * tenant, and the reporter told (`tunnel-listeners-ok` with its `seq`) once every other running tenant has
   * confirmed it: a new listener serves nothing until then, so no inbound stream of another tenant can slip
   * into it while its port is on the way.
   */
  onListeners(m: PortHolder, listen: readonly string[], seq: number): void {
    const reply = () => {
      if (m.child?.connected) toTenant.listenersOk(m.child, seq);
    };
    if (listen.length > MAX_TUNNEL_LISTENERS) {
      this.log.warn({ tenant: m.name }, 'oversized tunnel listener report ignored');
      return; // no confirmation: the tenant's new listener stays closed
    }
    const ports = listen
      .map((l) => readHostPort(l, 'listen'))
      .flatMap((at) => (!('problem' in at) && at.port > 0 ? [at.port] : []));
    const claimed = [...new Set(ports)];
    // Only ports the tenant's process really listens on: a false claim would make other tenants refuse tunnels.
    const held = m.child?.pid ? listeningPorts(m.child.pid) : undefined;
    const notHeld = held ? claimed.filter((p) => !held.has(p)) : [];
    if (notHeld.length)
      this.log.warn(
        { tenant: m.name, ports: notHeld },
        'tenant reported tunnel listener ports its process does not listen on: ignored',
      );
    m.tunnelPorts = claimed.filter((p) => !notHeld.includes(p));
    this.log.debug({ tenant: m.name, ports: m.tunnelPorts }, 'tenant outbound tunnel listeners');
    const version = this.push();
    // Tenants still starting get the whole set when ready (before they serve); only running ones confirm.
    const pending = new Set(
      [...this.tenants()].filter((o) => o !== m && o.state === 'running' && o.child?.connected).map((o) => o.name),
    );
    if (pending.size === 0) return reply();
    const timer = setTimeout(() => {
      this.waiters.delete(w);
      this.log.warn(
        { tenant: m.name, unconfirmed: [...pending] },
        'tenants did not confirm a new tunnel listener port in time; it serves anyway',
      );
      reply();
    }, PORTS_CONFIRM_MS);
    const w: PortsWaiter = {
      version,
      pending,
      done: () => {
        clearTimeout(timer);
        reply();
      },
    };
    this.waiters.add(w);
  }

  /** `tenant` holds the port set of `version` (or is gone: Infinity): waiters it held up may answer. */
  onConfirmed(tenant: string, version: number): void {
    if (Number.isNaN(version)) return;
    for (const w of [...this.waiters]) {
      if (version < w.version || !w.pending.delete(tenant) || w.pending.size > 0) continue;
      this.waiters.delete(w);
      w.done();
    }
  }

  /**
   * Sends each running tenant its set (everything above but its own ports); returns the version tenants echo once they
   * hold it.
   */
  push(): number {
    const version = ++this.version;
    const all = [...this.tenants()];
    for (const m of all) {
      if (!m.child?.connected) continue;
      const others = all.filter((o) => o !== m);
      const ports = [
        ...new Set([...this.hostPorts, ...others.map((o) => o.port), ...others.flatMap((o) => o.tunnelPorts)]),
      ];
      toTenant.foreignPorts(m.child, ports, version);
    }
    return version;
  }
}
