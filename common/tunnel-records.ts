/**
 * The records of an engine ⇄ tenant session as they travel inside `Tunnel.record`: a handshake message
 * (type 1, JSON of base64 fields) or a sealed mux frame (type 2, AES-256-GCM over an Envelope); on the
 * direct path also main's renewed statement (type 3, see tunnel-direct.ts). And the statements main signs
 * about an engine, which name the tenant by its public key, its identity: a statement made for an engine
 * of an earlier tenant of the same name does not hold for a later one.
 */
import type { EngineHello, TenantHello } from './tunnel-crypto.js';
import { ProtocolError } from './errors.js';

export const RECORD_HANDSHAKE = 1;
export const RECORD_SEALED = 2;
/** Direct path only, engine → tenant: main's fresh statement for the live session (tunnel-direct.ts). */
export const RECORD_RENEWAL = 3;

const b64 = (u: Uint8Array) => Buffer.from(u).toString('base64');
const raw = (s: unknown) => Buffer.from(typeof s === 'string' ? s : '', 'base64');

export function handshakeRecord(msg: EngineHello | TenantHello): Buffer {
  const fields = Object.fromEntries(Object.entries(msg).map(([k, v]) => [k, b64(v as Uint8Array)]));
  return Buffer.concat([Buffer.from([RECORD_HANDSHAKE]), Buffer.from(JSON.stringify(fields))]);
}

export function parseHandshake<T extends EngineHello | TenantHello>(record: Uint8Array): T {
  try {
    const obj = JSON.parse(Buffer.from(record).subarray(1).toString('utf8')) as Record<string, unknown>;
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, new Uint8Array(raw(v))])) as unknown as T;
  } catch {
    throw new ProtocolError('ERR_TUNNEL_HELLO', 'malformed handshake record');
  }
}

export function sealedRecord(sealed: Buffer): Buffer {
  return Buffer.concat([Buffer.from([RECORD_SEALED]), sealed]);
}

/**
 * What main signs to vouch for an engine's enrolled box key (and name) towards its tenant (by name and
 * public key), so the tenant can authenticate the engine without trusting the host that relays the handshake.
 */
export function engineKeyStatement(engineId: string, engineName: string, tenant: string, tenantKeyB64: string, keyB64: string): Buffer {
  return Buffer.from(`palisade engine key v3\n${engineId}\n${engineName}\n${tenant}\n${tenantKeyB64}\n${keyB64}`, 'utf8');
}

/**
 * What main signs to vouch for an engine on the direct path (engine ⇄ host without main in between): the
 * engine carries it, the host and the tenant check it. It expires, so an engine main has revoked (or that
 * main no longer lets through) cannot keep opening direct sessions with an old one, nor keep one open:
 * a session lives only as long as the engine brings fresh ones.
 */
export function engineDirectStatement(engineId: string, engineName: string, tenant: string, tenantKeyB64: string, keyB64: string, expiresAt: number): Buffer {
  return Buffer.from(`palisade engine key direct v2\n${engineId}\n${engineName}\n${tenant}\n${tenantKeyB64}\n${keyB64}\n${expiresAt}`, 'utf8');
}
