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
 * How a statement names the engine: its id and name, and its group when it has one. The group is the
 * tenant's only source for it (tunnels and commands bound to a group trust it), so main signs it and an
 * engine cannot claim one. Without a group the lines are those of the statements before groups (protocol
 * 1.6), which older peers still check; with one, the statement's own version says so (`+group`), so a
 * statement with a group can never be read as one without.
 */
function engineLines(engineId: string, engineName: string, group: string): string {
  return group ? `+group\n${engineId}\n${engineName}\n${group}` : `\n${engineId}\n${engineName}`;
}

/**
 * What main signs to vouch for an engine's enrolled box key (and name and group) towards its tenant (by name
 * and public key), so the tenant can authenticate the engine without trusting the host that relays the handshake.
 */
export function engineKeyStatement(
  engineId: string,
  engineName: string,
  group: string,
  tenant: string,
  tenantKeyB64: string,
  keyB64: string,
): Buffer {
  return Buffer.from(
    `palisade engine key v3${engineLines(engineId, engineName, group)}\n${tenant}\n${tenantKeyB64}\n${keyB64}`,
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
  group: string,
  tenant: string,
  tenantKeyB64: string,
  keyB64: string,
  expiresAt: number,
): Buffer {
  const engine = engineLines(engineId, engineName, group);
  return Buffer.from(
    `palisade engine key direct v2${engine}\n${tenant}\n${tenantKeyB64}\n${keyB64}\n${expiresAt}`,
    'utf8',
  );
}
