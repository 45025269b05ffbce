/**
 * The records of an engine ⇄ tenant session, the same on both paths (inside `Tunnel.record` when relayed,
 * length-prefixed on the direct connection): one type byte, then
 *   1 handshake: TunnelEngineHello (engine → tenant) or TunnelTenantHello (its answer), protobuf;
 *   2 sealed: a mux frame or command, AES-256-GCM over an Envelope (tunnel-crypto.ts, tunnel-session.ts);
 *   3 renewal, direct path only: main's fresh statement for the session (tunnel-direct.ts).
 * Pure: bytes in, typed message or typed error out. The statements main signs about an engine are in
 * common/tunnel-statements.ts; what a hello proves is in tunnel-crypto.ts.
 */
import type { EngineHello, TenantHello } from './tunnel-crypto.js';
import { wire } from '#common/codec.js';
import { ProtocolError } from '#common/errors.js';

import { RECORD_HANDSHAKE } from '#common/tunnel-statements.js';

export { RECORD_HANDSHAKE };
export const RECORD_SEALED = 2;
/** Direct path only, engine → tenant: main's fresh statement for the live session (tunnel-direct.ts). */
export const RECORD_RENEWAL = 3;

/** `type` then `body`, in one buffer. */
export function typedRecord(type: number, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(1 + body.length);
  out[0] = type;
  out.set(body, 1);
  return out;
}

export function engineHelloRecord(h: EngineHello): Buffer {
  return typedRecord(RECORD_HANDSHAKE, wire.TunnelEngineHello.encode(h).finish());
}

export function tenantHelloRecord(h: TenantHello): Buffer {
  return typedRecord(RECORD_HANDSHAKE, wire.TunnelTenantHello.encode(h).finish());
}

/** The protobuf body of a handshake record; ProtocolError for anything that does not decode. */
function decodeHello<T>(record: Uint8Array, decode: (body: Uint8Array) => T): T {
  if (record[0] !== RECORD_HANDSHAKE) throw new ProtocolError('ERR_TUNNEL_HELLO', 'not a handshake record');
  try {
    return decode(record.subarray(1));
  } catch {
    throw new ProtocolError('ERR_TUNNEL_HELLO', 'malformed handshake record');
  }
}

/** An engine's hello; its fields' sizes are checked where it is accepted (tenantAccept). */
export function parseEngineHello(record: Uint8Array): EngineHello {
  const m = decodeHello(record, (b) => wire.TunnelEngineHello.decode(b));
  return { engineStatic: m.engineStatic, engineEph: m.engineEph, nonce: m.nonce, box: m.box };
}

export function parseTenantHello(record: Uint8Array): TenantHello {
  const m = decodeHello(record, (b) => wire.TunnelTenantHello.decode(b));
  return { tenantEph: m.tenantEph, nonce: m.nonce, box: m.box, protocolMinor: m.protocolMinor ?? 0 };
}
