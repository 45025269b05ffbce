/**
 * Which engines this tenant lets hold a session: those main vouches for, in a statement it signed about
 * the engine's key that names this tenant by name and by public key (its identity: a statement made for an
 * earlier tenant of the same name does not hold here), and that main has not revoked.
 *
 * A relayed hello carries main's lasting word: main relays only for engines it admits, and cuts the relay
 * when it stops. A direct session carries an expiring statement and lives only while the engine brings
 * fresh ones over it (renewal records; StatementLease below ends the session when its statement expires), so
 * an engine main stopped vouching for loses its session within one statement lifetime, even if nobody
 * tells this tenant. Revoked ids come from the host (main's list), which hands them to every new process
 * of this tenant: the tenant never runs before its host has heard from main. Not the sessions themselves.
 */
import { verify, type KeyObject } from 'node:crypto';
import { statementProblem, type DirectPreamble } from '../../tunnel/tunnel-direct.js';
import { engineKeyStatement } from '#common/tunnel-statements.js';
import { AccessDeniedError, ProtocolError } from '#common/errors.js';
import type { CodeOf } from '#common/error-codes.js';
import type { Logger } from '#common/logging.js';

export class EngineTrust {
  private revoked: ReadonlySet<string> = new Set();

  constructor(
    private readonly tenant: string,
    private readonly tenantKeyB64: string,
    private readonly mainKey: KeyObject,
  ) {}

  /** The engine key of a relayed hello if main's signature vouches for it (with its name and group) to this tenant. */
  relayedKey(
    engine: { id: string; name: string; group: string },
    key: Buffer,
    sig: Uint8Array | undefined,
  ): Buffer | undefined {
    if (key.length !== 32 || sig === undefined) return undefined;
    const statement = engineKeyStatement(
      engine.id,
      engine.name,
      engine.group,
      this.tenant,
      this.tenantKeyB64,
      key.toString('base64'),
    );
    try {
      return verify(null, statement, this.mainKey, sig) ? key : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Why main's statement (a direct connection's preamble, or its renewal) does not hold here now; undefined if it does.
   */
  directProblem(p: DirectPreamble): CodeOf<'access-denied'> | undefined {
    if (p.tenant !== this.tenant) return 'ERR_DIRECT_TENANT_UNKNOWN';
    return statementProblem(p, this.tenantKeyB64, this.mainKey);
  }

  isRevoked(engineId: string): boolean {
    return this.revoked.has(engineId);
  }

  /** Main's current list of revoked engines of this tenant, as the host passes it on. */
  setRevoked(engineIds: readonly string[]): void {
    this.revoked = new Set(engineIds);
  }
}

/**
 * A direct session's hold on main's statement: ends the session (`onExpired`, and says why in the log)
 * when the statement expires, unless the engine brings a later one for the same engine and key first.
 */
export class StatementLease {
  private timer?: NodeJS.Timeout;

  constructor(
    private statement: DirectPreamble,
    private readonly log: Logger,
    private readonly onExpired: () => void,
  ) {
    this.arm();
  }

  /**
   * Takes a renewal the trust accepts; throws (the caller ends the session) for one that is not about this engine or
   * not main's.
   */
  renew(next: DirectPreamble, trust: EngineTrust): void {
    const s = this.statement;
    if (
      next.engineId !== s.engineId ||
      next.engineName !== s.engineName ||
      next.engineGroup !== s.engineGroup ||
      !Buffer.from(next.engineKey).equals(s.engineKey)
    ) {
      throw new ProtocolError('ERR_TUNNEL_RENEWAL', 'a renewal for another engine or key');
    }
    const problem = trust.directProblem(next);
    if (problem) throw new AccessDeniedError(problem, "main's renewed statement does not hold");
    if (next.expiresAtMs <= s.expiresAtMs) return; // an older one arriving late
    this.statement = next;
    this.arm();
  }

  close(): void {
    clearTimeout(this.timer);
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => {
        const { engineId, engineName, expiresAtMs } = this.statement;
        this.log.warn(
          {
            engineId,
            engine: engineName,
            code: 'ERR_TUNNEL_STATEMENT_EXPIRED',
            expiredAt: new Date(expiresAtMs).toISOString(),
          },
          "engine session ended: main's statement for it expired without renewal",
        );
        this.onExpired();
      },
      Math.max(0, this.statement.expiresAtMs - Date.now()),
    );
    this.timer.unref();
  }
}
