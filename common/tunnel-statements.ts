/**
 * What main signs about an engine, for its tenant to check: the statements name the tenant by its public
 * key, its identity, so a statement made for an engine of an earlier tenant of the same name does not hold
 * for a later one. Here, not in agent/tunnel/, because main makes them and agents check them. Also the one
 * record kind main's relay looks at (a handshake, whose engine statement it adds).
 */

/** The record kind of a session handshake inside `Tunnel.record` (agent/tunnel/tunnel-records.ts has the others). */
export const RECORD_HANDSHAKE = 1;

/**
 * The longest a statement may claim to stay valid (main's `directStatementTtlMs` is at most this): one
 * that claims more was not made by main's router, or the two clocks are too far apart to judge it.
 */
export const MAX_DIRECT_STATEMENT_MS = 10 * 60_000;

/**
 * What main signs to vouch for an engine's enrolled box key (and name) towards its tenant (by name and
 * public key), so the tenant can authenticate the engine without trusting the host that relays the handshake.
 */
export function engineKeyStatement(
  engineId: string,
  engineName: string,
  tenant: string,
  tenantKeyB64: string,
  keyB64: string,
): Buffer {
  return Buffer.from(
    `palisade engine key v3\n${engineId}\n${engineName}\n${tenant}\n${tenantKeyB64}\n${keyB64}`,
    'utf8',
  );
}

/**
 * What main signs to vouch for an engine on the direct path (engine ⇄ host without main in between): the
 * engine carries it, the host and the tenant check it. It expires, so an engine main has revoked (or that
 * main no longer lets through) cannot keep opening direct sessions with an old one, nor keep one open:
 * a session lives only as long as the engine brings fresh ones.
 */
export function engineDirectStatement(
  engineId: string,
  engineName: string,
  tenant: string,
  tenantKeyB64: string,
  keyB64: string,
  expiresAt: number,
): Buffer {
  return Buffer.from(
    `palisade engine key direct v2\n${engineId}\n${engineName}\n${tenant}\n${tenantKeyB64}\n${keyB64}\n${expiresAt}`,
    'utf8',
  );
}
