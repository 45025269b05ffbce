/**
 * Caps on the sockets main holds for strangers. A socket is "unauthenticated" from its TCP accept until
 * the gateway admits it as a live agent at its upgrade (its certificate checked against the registry),
 * or it makes a request with a valid API key (gateway.ts and http/app.ts call `authenticated`), or it
 * closes. Only those count:
 * - per source address (an IPv6 /64 counts as one address, as one host usually holds the whole prefix;
 *   `addressKey` in common/ip-address.ts, which the failure throttle counts by too):
 *   past `maxUnauthenticatedPerAddress`, a new socket from it is closed at once, before its handshake;
 * - in total: past `maxUnauthenticated`, the oldest unauthenticated socket is closed for the newcomer, so
 *   stalled sockets from many addresses cannot lock out a real agent — they only shorten each other's wait.
 *
 * Why authenticated agents are not counted: every agent in a deployment may sit behind one address (a
 * NAT; in tests and the 1 000-agent benchmark all of them connect from 127.0.0.1), and a cap on all of
 * an address's sockets would lock out the agents of that address as it filled. An agent counts only for
 * its handshake (milliseconds), so the reconnect storm after a restart (50 in flight in the benchmark,
 * a few hundred behind a NAT) fits under the per-address cap. A certificate that chains to main's CA but is
 * revoked is let past here and refused at the upgrade (gateway.ts). What a stranger can still do from
 * one address: hold its own `maxUnauthenticatedPerAddress` sockets, each for at most the handshake and
 * header timeouts (config.ts), which Node enforces on the server (server.ts).
 *
 * Refusals are logged as a count per interval, never one line per socket. Not a rate limit on requests
 * (auth-throttle.ts counts failed authentications) and not a firewall: what reaches accept() is counted.
 */
import type { Server as TlsServer } from 'node:tls';
import type { Socket } from 'node:net';
import { RefusalSummary } from '#common/refusal-summary.js';
import { addressKey } from '#common/ip-address.js';
import type { Logger } from '#common/logging.js';

export interface GuardLimits {
  maxUnauthenticatedPerAddress: number;
  maxUnauthenticated: number;
}

/** One summary line per this interval at most, while refusals go on. */
const REFUSAL_LOG_EVERY_MS = 10_000;

interface Pending {
  socket: Socket;
  address: string;
}

export class ConnectionGuard {
  /** Unauthenticated sockets by `address|port`, in order of arrival: the first is the oldest (evicted first). */
  private readonly pending = new Map<string, Pending>();
  private readonly perAddress = new Map<string, number>();
  private readonly refusals: RefusalSummary;

  constructor(
    private readonly limits: GuardLimits,
    log: Logger,
  ) {
    this.refusals = new RefusalSummary(REFUSAL_LOG_EVERY_MS, (counts) =>
      log.warn({ refused: counts, unauthenticated: this.pending.size }, 'connections refused at the caps'),
    );
  }

  /**
   * Watches a TLS server's raw accepts (before the handshake). Agents are let go by the gateway once it
   * has read their certificate anyway (one parse per connection, not two on the reconnect storm's path).
   */
  attach(server: TlsServer): void {
    server.on('connection', (raw: Socket) => this.onConnection(raw));
  }

  /** The socket proved who it is (an agent's certificate, a valid API key): it no longer counts. */
  authenticated(socket: Socket): void {
    const key = keyOf(socket);
    const p = key && this.pending.get(key);
    if (p) this.forget(key, p);
  }

  private onConnection(raw: Socket): void {
    const key = keyOf(raw);
    if (!key || !raw.remoteAddress) return void raw.destroy();
    const address = addressKey(raw.remoteAddress);
    if ((this.perAddress.get(address) ?? 0) >= this.limits.maxUnauthenticatedPerAddress) {
      this.refusals.count('per-address');
      return void raw.destroy();
    }
    if (this.pending.size >= this.limits.maxUnauthenticated) {
      const [oldestKey, oldest] = this.pending.entries().next().value as [string, Pending];
      this.forget(oldestKey, oldest);
      oldest.socket.destroy();
      this.refusals.count('oldest-dropped');
    }
    const p: Pending = { socket: raw, address };
    this.pending.set(key, p);
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    raw.once('close', () => {
      if (this.pending.get(key) === p) this.forget(key, p);
    });
  }

  private forget(key: string, p: Pending): void {
    this.pending.delete(key);
    const n = (this.perAddress.get(p.address) ?? 1) - 1;
    if (n > 0) this.perAddress.set(p.address, n);
    else this.perAddress.delete(p.address);
  }

  close(): void {
    this.refusals.flush();
  }
}

function keyOf(s: Socket): string | undefined {
  return s.remoteAddress && s.remotePort ? `${s.remoteAddress}|${s.remotePort}` : undefined;
}
