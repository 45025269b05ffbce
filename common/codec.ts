/**
 * Pure frame codec: Envelope ⇄ bytes, enforcing the frame size limit. No I/O, no state.
 * Unknown fields are dropped on decode (protobufjs default), which is what forward compatibility needs.
 */
import './protobuf-setup.js';
import { palisade } from '#proto/gen/palisade.js';
import { ProtocolError, TooLargeError } from './errors.js';

export const wire = palisade.wire.v1;
export type Envelope = palisade.wire.v1.Envelope;
export type EnvelopeInit = palisade.wire.v1.Envelope.$Properties;
export const AgentKind = palisade.wire.v1.AgentKind;
export type AgentKind = palisade.wire.v1.AgentKind;
export const TunnelFlow = palisade.wire.v1.TunnelFlow;

/** 1 MiB: large enough for any command or certificate, small enough that one peer can't hog memory. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

export type BodyKind =
  | 'hello'
  | 'welcome'
  | 'enroll'
  | 'enrollOk'
  | 'command'
  | 'result'
  | 'event'
  | 'heartbeat'
  | 'error'
  | 'streamOpen'
  | 'streamData'
  | 'streamWindow'
  | 'streamClose'
  | 'tunnel'
  | 'engineRevocations';

export function encodeEnvelope(msg: EnvelopeInit, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Uint8Array {
  const bytes = wire.Envelope.encode(msg).finish();
  if (bytes.length > maxFrameBytes) {
    throw new TooLargeError(
      'ERR_WIRE_FRAME_TOO_BIG',
      `frame of ${bytes.length} bytes exceeds the ${maxFrameBytes}-byte limit`,
    );
  }
  return bytes;
}

export function decodeEnvelope(bytes: Uint8Array, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Envelope {
  if (bytes.length > maxFrameBytes) {
    throw new TooLargeError(
      'ERR_WIRE_FRAME_TOO_BIG',
      `frame of ${bytes.length} bytes exceeds the ${maxFrameBytes}-byte limit`,
    );
  }
  let env: Envelope;
  try {
    env = wire.Envelope.decode(bytes);
  } catch (e) {
    throw new ProtocolError('ERR_WIRE_MALFORMED', 'frame is not a valid Envelope', { cause: e });
  }
  if (!env.body) throw new ProtocolError('ERR_WIRE_MALFORMED', 'frame carries no message body');
  return env;
}

export function bodyKind(env: Envelope): BodyKind {
  return env.body as BodyKind;
}

export function jsonBytes(value: unknown): Uint8Array {
  return Buffer.from(JSON.stringify(value ?? null), 'utf8');
}

export function parseJsonBytes(bytes: Uint8Array | null | undefined): unknown {
  if (!bytes || bytes.length === 0) return null;
  try {
    return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (e) {
    throw new ProtocolError('ERR_WIRE_BAD_JSON', 'payload is not valid JSON', { cause: e });
  }
}

export function kindName(kind: AgentKind | null | undefined): 'host' | 'engine' | 'unknown' {
  if (kind === AgentKind.AGENT_KIND_HOST) return 'host';
  if (kind === AgentKind.AGENT_KIND_ENGINE) return 'engine';
  return 'unknown';
}

export function kindFromName(name: string): AgentKind {
  if (name === 'host') return AgentKind.AGENT_KIND_HOST;
  if (name === 'engine') return AgentKind.AGENT_KIND_ENGINE;
  return AgentKind.AGENT_KIND_UNSPECIFIED;
}

/** Bytes of `n` as a protobuf varint (hand-written frames: encodeTunnelFrame, the tunnel's stream-data heads). */
export function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

/** Writes `n` as a protobuf varint at `at`; returns the offset after it. */
export function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n >= 0x80) {
    buf[at++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

/**
 * `Envelope { tenant; tunnel { engine_id; record } }` encoded by hand: the same bytes protobufjs writes
 * for those fields (3, 23.1, 23.2, in field order), with one copy of the record and no writer objects.
 * Main relays every tunnel record; this is its hot path.
 */
export function encodeTunnelFrame(
  tenant: string,
  engineId: string,
  record: Uint8Array,
  maxFrameBytes = DEFAULT_MAX_FRAME_BYTES,
): Buffer {
  const t = Buffer.from(tenant, 'utf8');
  const e = Buffer.from(engineId, 'utf8');
  const inner =
    (e.length ? 1 + varintLength(e.length) + e.length : 0) +
    (record.length ? 1 + varintLength(record.length) + record.length : 0);
  const total = (t.length ? 1 + varintLength(t.length) + t.length : 0) + 2 + varintLength(inner) + inner;
  if (total > maxFrameBytes)
    throw new TooLargeError(
      'ERR_WIRE_FRAME_TOO_BIG',
      `frame of ${total} bytes exceeds the ${maxFrameBytes}-byte limit`,
    );
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  if (t.length) {
    out[at++] = (3 << 3) | 2;
    at = writeVarint(out, at, t.length);
    at += t.copy(out, at);
  }
  out[at++] = (((23 << 3) | 2) & 0xff) | 0x80;
  out[at++] = ((23 << 3) | 2) >> 7; // tag 23/LEN as a two-byte varint
  at = writeVarint(out, at, inner);
  if (e.length) {
    out[at++] = (1 << 3) | 2;
    at = writeVarint(out, at, e.length);
    at += e.copy(out, at);
  }
  if (record.length) {
    out[at++] = (2 << 3) | 2;
    at = writeVarint(out, at, record.length);
    out.set(record, at);
  }
  return out;
}
