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

/** 1 MiB: large enough for any command or certificate, small enough that one peer can't hog memory. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

export type BodyKind =
  | 'hello' | 'welcome' | 'enroll' | 'enrollOk' | 'command' | 'result' | 'event' | 'heartbeat' | 'error'
  | 'streamOpen' | 'streamData' | 'streamWindow' | 'streamClose' | 'tunnel';

export function encodeEnvelope(msg: EnvelopeInit, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Uint8Array {
  const bytes = wire.Envelope.encode(msg).finish();
  if (bytes.length > maxFrameBytes) {
    throw new TooLargeError('ERR_WIRE_FRAME_TOO_BIG', `frame of ${bytes.length} bytes exceeds the ${maxFrameBytes}-byte limit`);
  }
  return bytes;
}

export function decodeEnvelope(bytes: Uint8Array, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Envelope {
  if (bytes.length > maxFrameBytes) {
    throw new TooLargeError('ERR_WIRE_FRAME_TOO_BIG', `frame of ${bytes.length} bytes exceeds the ${maxFrameBytes}-byte limit`);
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
