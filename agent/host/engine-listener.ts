/**
 * The host's door for engines' direct tunnel connections (docs/tunnels.md): an engine dials here instead of
 * relaying through main, sends a preamble with main's signed, expiring statement about its key (the
 * wire: agent/tunnel/tunnel-direct.ts), and the host hands the raw socket (and any bytes already read)
 * to the tenant process, which runs the engine ⇄ tenant handshake and the session itself. After the
 * hand-off the host never touches the bytes again.
 *
 * Everything before the hand-off is unauthenticated, so it is cheap to refuse and bounded: at most
 * MAX_PENDING connections in their preamble at once, a per-address rate limit, a size limit and a
 * deadline for the preamble, a signature check with main's key before a tenant sees anything, and no
 * engine main has revoked; refusals close that connection silently (nothing to learn for a prober) and
 * are logged in summary. The tenant checks the statement again: it does not trust its host.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { KeyObject } from 'node:crypto';
import { parseOpening, statementProblem, type DirectPreamble } from '../tunnel/tunnel-direct.js';
import { publicKeyFromBase64 } from '#common/signed-request.js';
import { UnavailableError, errorMessage } from '#common/errors.js';
import { formatHostPort, parseHostPort, type HostPort } from '#common/address.js';
import type { Logger } from '#common/logging.js';
import type { TenantSupervisor } from './tenant-supervisor.js';
import { AddressRateLimit } from '#common/address-rate-limit.js';
import { RefusalSummary } from '#common/refusal-summary.js';

const PREAMBLE_TIMEOUT_MS = 5_000;
/** Unauthenticated connections held at once; beyond that new ones are closed on accept. */
const MAX_PENDING = 64;
/** Per remote address: a burst of this many attempts, then one every RATE_REFILL_MS. */
const RATE_BURST = 30;
const RATE_REFILL_MS = 2_000;
const MAX_TRACKED_ADDRESSES = 10_000;
const REFUSAL_LOG_EVERY_MS = 10_000;

export class EngineListener {
  private server?: Server;
  private mainKey?: KeyObject;
  private pending = 0;
  private readonly rate = new AddressRateLimit({
    burst: RATE_BURST,
    refillMs: RATE_REFILL_MS,
    maxAddresses: MAX_TRACKED_ADDRESSES,
  });
  private readonly refusals: RefusalSummary;

  constructor(
    private readonly listen: string,
    private readonly supervisor: TenantSupervisor,
    /** Whether main revoked this engine of this tenant (host-role.ts keeps main's list). */
    private readonly isRevoked: (tenant: string, engineId: string) => boolean,
    private readonly log: Logger,
  ) {
    this.refusals = new RefusalSummary(REFUSAL_LOG_EVERY_MS, (refused) =>
      this.log.warn({ refused }, 'engine connections refused before hand-off'),
    );
  }

  /** Listens; resolves with the address actually bound (port 0 becomes the port the OS chose). */
  async start(): Promise<HostPort> {
    const {
      host,
      family,
      port: wanted,
    } = parseHostPort(this.listen, 'listen', { code: 'ERR_BAD_ENGINE_LISTEN', field: 'engineListen' });
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (sock) => this.onConnection(sock));
    server.maxConnections = 4096;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(new UnavailableError('ERR_LISTEN', `host cannot listen for engines on ${this.listen}: ${e.message}`)),
      );
      server.listen(wanted, host, () => resolve());
    });
    server.on('error', (e) => this.log.warn({ err: e.message }, 'engine listener error'));
    this.server = server;
    const bound = { host, family, port: (server.address() as { port: number }).port };
    this.log.info({ listen: formatHostPort(host, bound.port) }, 'listening for engines (direct tunnel path)');
    return bound;
  }

  /** Main's signing key (from Welcome): until it is known, every engine is refused. */
  setMainKey(b64: string): void {
    if (b64) this.mainKey = publicKeyFromBase64(b64);
  }

  close(): void {
    this.refusals.flush();
    this.server?.close();
  }

  private onConnection(sock: Socket): void {
    const remote = sock.remoteAddress ?? '?';
    sock.on('error', () => undefined);
    if (this.pending >= MAX_PENDING) return this.refuse(sock, 'ERR_DIRECT_BUSY');
    if (!this.rate.take(remote)) return this.refuse(sock, 'ERR_DIRECT_RATE');
    this.pending++;
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        this.pending--;
      }
    };
    sock.once('close', settle);
    sock.setTimeout(PREAMBLE_TIMEOUT_MS, () => {
      settle();
      this.refuse(sock, 'ERR_DIRECT_PREAMBLE_TIMEOUT');
    });
    let buf: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      let opening: ReturnType<typeof parseOpening>;
      try {
        opening = parseOpening(buf);
        if (!opening) return;
      } catch {
        sock.off('data', onData);
        settle();
        return this.refuse(sock, 'ERR_DIRECT_PREAMBLE');
      }
      sock.off('data', onData);
      sock.pause();
      settle();
      this.handOff(sock, opening.preamble, opening.hello);
    };
    sock.on('data', onData);
    sock.on('end', () => {
      if (!settled) {
        settle();
        this.refuse(sock, 'ERR_DIRECT_PREAMBLE');
      }
    });
  }

  /**
   * The opening (preamble and the engine's framed hello) is everything the engine sends before the tenant
   * answers, so once it is here nothing else is in flight and the socket changes process without losing
   * a byte: the bytes read so far travel with it, the rest is still in the kernel.
   */
  private handOff(sock: Socket, p: DirectPreamble, hello: Buffer): void {
    const code = this.check(p);
    if (code) return this.refuse(sock, code);
    sock.setTimeout(0);
    const ok = this.supervisor.handSocketToTenant(p.tenant, p, hello, sock, (e) => {
      if (e) {
        this.log.warn({ tenant: p.tenant, err: errorMessage(e) }, 'could not hand an engine connection to its tenant');
        sock.destroy();
      }
    });
    if (!ok) return this.refuse(sock, 'ERR_DIRECT_TENANT_DOWN');
    this.log.debug({ tenant: p.tenant, engineId: p.engineId }, 'engine connection handed to its tenant');
  }

  /**
   * Why this preamble is refused, or undefined: main's key known, a tenant of ours, an engine not revoked, main's
   * signature, in time.
   */
  private check(p: DirectPreamble): string | undefined {
    if (!this.mainKey) return 'ERR_DIRECT_NO_MAIN_KEY';
    if (!this.supervisor.has(p.tenant)) return 'ERR_DIRECT_TENANT_UNKNOWN';
    if (this.isRevoked(p.tenant, p.engineId)) return 'ERR_DIRECT_ENGINE_REVOKED';
    return statementProblem(p, this.supervisor.get(p.tenant).publicKey, this.mainKey);
  }

  /** Closes without a word (a prober learns nothing) and counts why (see RefusalSummary). */
  private refuse(sock: Socket, code: string): void {
    sock.destroy();
    this.refusals.count(code);
  }
}
