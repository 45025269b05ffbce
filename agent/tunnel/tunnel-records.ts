/**
 * The records of an engine ⇄ tenant session as they travel inside `Tunnel.record`: a handshake message
 * (type 1, JSON of base64 fields) or a sealed mux frame (type 2, AES-256-GCM over an Envelope); on the
 * direct path also main's renewed statement (type 3, see tunnel-direct.ts). The statements main signs
 * about an engine are in common/tunnel-statements.ts.
 */
import type { EngineHello, TenantHello } from './tunnel-crypto.js';
import { ProtocolError } from '#common/errors.js';

import { RECORD_HANDSHAKE } from '#common/tunnel-statements.js';

export { RECORD_HANDSHAKE };
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
