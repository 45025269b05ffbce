/**
 * The wire of the direct engine ⇄ host path (docs/tunnels.md): a plain TCP connection that carries the same
 * records as the relayed path (a handshake, then sealed frames), each prefixed with its 4-byte length,
 * after a short preamble naming the tenant and presenting main's signed, expiring statement about the
 * engine's key; while the session lasts the engine brings main's renewed statement in renewal records
 * (the session ends when its statement expires). Pure: framing, parsing and the check of a statement
 * (the same for the host and the tenant); who listens, dials and decides lives in the roles, and the
 * socket side of this path (reading, sending, pacing) in session-carrier.ts.
 *
 *   preamble  "PLSD" 0x02 | u16 BE length | TunnelDirectStatement { tenant, main's TunnelDirect as it came }
 *   record    u32 BE length | type byte | body   (tunnel-records.ts; a renewal's body: TunnelDirectStatement)
 *
 * No TLS on this hop, on purpose: the NaCl session already authenticates both ends (main vouches for the
 * engine's key, the tenant proves its secret key), encrypts and orders every record, and has forward
 * secrecy — a TLS layer would only add a second encryption of every byte, which is the cost this path
 * exists to remove. What travels in the clear is the preamble: tenant and engine names, the engine's
 * public key and main's signature, none of them secret.
 */
import { verify, type KeyObject } from 'node:crypto';
import { wire } from '#common/codec.js';
import type { palisade } from '#proto/gen/palisade.js';
import { ProtocolError, TooLargeError } from '#common/errors.js';
import type { CodeOf } from '#common/error-codes.js';
import { engineDirectStatement, MAX_DIRECT_STATEMENT_MS } from '#common/tunnel-statements.js';
import { RECORD_RENEWAL, typedRecord } from './tunnel-records.js';

/**
 * "PLSD" then the preamble's version: 2, a protobuf body (protocol 1.3; 1 was JSON). A prober, or an
 * engine of another version, is refused at its first byte that differs.
 */
const MAGIC = Buffer.from('PLSD\x02', 'latin1');
/** A preamble's body is a few hundred bytes; anything bigger is not an engine. */
export const MAX_PREAMBLE_BYTES = 2048;
const PREAMBLE_HEAD = MAGIC.length + 2;
/** A record's length prefix. */
export const RECORD_HEADER_BYTES = 4;
/** An engine hello record is about 150 bytes: a connection's first record may be no larger than this. */
export const MAX_HELLO_BYTES = 4096;

/** Main's TunnelDirect as the engine received it (its endpoint and ttl_ms travel along, unread by the checks). */
export type TunnelDirectInit = palisade.wire.v1.TunnelDirect.$Properties;

/** Main's statement about an engine, as the host and the tenant read it from a preamble or a renewal record. */
export interface DirectPreamble {
  tenant: string;
  engineId: string;
  engineName: string;
  /** The engine's group as enrolled ('' for none: protocol 1.7), covered by main's signature. */
  engineGroup: string;
  /** The engine's enrolled box public key (32 bytes). */
  engineKey: Uint8Array;
  /** Until when main's statement is valid (unix ms). */
  expiresAtMs: number;
  /** main's ed25519 signature over engineDirectStatement(…) (64 bytes). */
  engineKeySig: Uint8Array;
}

/** The body of a preamble or a renewal record: main's TunnelDirect as it came, for `tenant`. */
function statementBytes(tenant: string, direct: TunnelDirectInit): Uint8Array {
  const body = wire.TunnelDirectStatement.encode({ tenant, direct }).finish();
  if (body.length > MAX_PREAMBLE_BYTES) throw new ProtocolError('ERR_DIRECT_PREAMBLE', 'direct preamble too large');
  return body;
}

export function encodePreamble(tenant: string, direct: TunnelDirectInit): Buffer {
  const body = statementBytes(tenant, direct);
  const out = Buffer.allocUnsafe(PREAMBLE_HEAD + body.length);
  MAGIC.copy(out);
  out.writeUInt16BE(body.length, MAGIC.length);
  out.set(body, PREAMBLE_HEAD);
  return out;
}

/** Everything an engine sends before the tenant answers: the preamble, then its hello record framed. */
export function encodeOpening(tenant: string, direct: TunnelDirectInit, helloRecord: Uint8Array): Buffer {
  return Buffer.concat([encodePreamble(tenant, direct), framedRecord(helloRecord)]);
}

const STR = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;
const BYTES = (v: unknown, max: number): v is Uint8Array => v instanceof Uint8Array && v.length > 0 && v.length <= max;

/** A statement's fields from TunnelDirectStatement bytes, present and bounded; ProtocolError otherwise. */
function parseStatement(body: Uint8Array, what: string): DirectPreamble {
  let m: ReturnType<typeof wire.TunnelDirectStatement.decode>;
  try {
    m = wire.TunnelDirectStatement.decode(body);
  } catch {
    throw new ProtocolError('ERR_DIRECT_PREAMBLE', `${what} is not a TunnelDirectStatement`);
  }
  const d = m.direct;
  const expiresAtMs = d?.expiresAtMs;
  if (
    !STR(m.tenant, 100) ||
    !d ||
    !STR(d.engineId, 100) ||
    !STR(d.engineName, 100) ||
    typeof d.engineGroup !== 'string' ||
    d.engineGroup.length > 100 ||
    !BYTES(d.engineKey, 64) ||
    !BYTES(d.engineKeySig, 128) ||
    typeof expiresAtMs !== 'number' ||
    !Number.isSafeInteger(expiresAtMs) ||
    expiresAtMs <= 0
  ) {
    throw new ProtocolError('ERR_DIRECT_PREAMBLE', `${what} fields missing or malformed`);
  }
  return {
    tenant: m.tenant,
    engineId: d.engineId,
    engineName: d.engineName,
    engineGroup: d.engineGroup,
    engineKey: d.engineKey,
    expiresAtMs,
    engineKeySig: d.engineKeySig,
  };
}

/**
 * Why main's statement `p` does not vouch for its engine towards the tenant whose public key is
 * `tenantKeyB64`, at `now`; undefined when it does. The host and the tenant both ask (the tenant does not
 * trust its host), at the opening and at each renewal.
 */
export function statementProblem(
  p: DirectPreamble,
  tenantKeyB64: string,
  mainKey: KeyObject,
  now = Date.now(),
): CodeOf<'access-denied'> | undefined {
  try {
    if (!Number.isSafeInteger(p.expiresAtMs) || p.expiresAtMs < now || p.expiresAtMs > now + MAX_DIRECT_STATEMENT_MS)
      return 'ERR_DIRECT_STATEMENT_EXPIRED';
    if (p.engineKeySig.length !== 64 || p.engineKey.length !== 32) return 'ERR_DIRECT_STATEMENT';
    const keyB64 = Buffer.from(p.engineKey).toString('base64'); // main signs the key as it stores it
    const statement = engineDirectStatement(
      p.engineId,
      p.engineName,
      p.engineGroup,
      p.tenant,
      tenantKeyB64,
      keyB64,
      p.expiresAtMs,
    );
    return verify(null, statement, mainKey, p.engineKeySig) ? undefined : 'ERR_DIRECT_STATEMENT';
  } catch {
    return 'ERR_DIRECT_STATEMENT'; // fields of the wrong type: not a statement main made
  }
}

/**
 * Parses a preamble from the first bytes of a connection: undefined while incomplete, the preamble and
 * the bytes after it once complete. Throws ProtocolError on anything that is not a well-formed preamble,
 * as early as the first wrong byte (a prober is refused without waiting for more).
 */
export function parsePreamble(buf: Buffer): { preamble: DirectPreamble; rest: Buffer } | undefined {
  const m = Math.min(buf.length, MAGIC.length);
  if (!buf.subarray(0, m).equals(MAGIC.subarray(0, m)))
    throw new ProtocolError('ERR_DIRECT_PREAMBLE', 'not a Palisade engine connection');
  if (buf.length < PREAMBLE_HEAD) return undefined;
  const len = buf.readUInt16BE(MAGIC.length);
  if (len === 0 || len > MAX_PREAMBLE_BYTES)
    throw new ProtocolError('ERR_DIRECT_PREAMBLE', 'direct preamble length out of range');
  if (buf.length < PREAMBLE_HEAD + len) return undefined;
  return {
    preamble: parseStatement(buf.subarray(PREAMBLE_HEAD, PREAMBLE_HEAD + len), 'direct preamble'),
    rest: buf.subarray(PREAMBLE_HEAD + len),
  };
}

/**
 * A connection's opening once complete: the preamble, and the engine's hello record with its length
 * prefix (what the tenant reads first). Undefined while incomplete; ProtocolError for anything else,
 * bytes after the hello included (an engine sends nothing more before the tenant answers).
 */
export function parseOpening(buf: Buffer): { preamble: DirectPreamble; hello: Buffer } | undefined {
  const p = parsePreamble(buf);
  if (!p || p.rest.length < RECORD_HEADER_BYTES) return undefined;
  const len = p.rest.readUInt32BE(0);
  if (len === 0 || len > MAX_HELLO_BYTES)
    throw new ProtocolError('ERR_DIRECT_PREAMBLE', 'the first record is not a hello');
  if (p.rest.length < RECORD_HEADER_BYTES + len) return undefined;
  if (p.rest.length > RECORD_HEADER_BYTES + len)
    throw new ProtocolError('ERR_DIRECT_PREAMBLE', 'bytes after the hello');
  return { preamble: p.preamble, hello: p.rest };
}

/**
 * A renewal record: main's fresh statement for a live direct session, which the engine fetched from main
 * and hands to the tenant over the session's connection (in the clear like the preamble: nothing in it is
 * secret, and main's signature is what makes it count).
 */
export function renewalRecord(tenant: string, direct: TunnelDirectInit): Buffer {
  return typedRecord(RECORD_RENEWAL, statementBytes(tenant, direct));
}

export function parseRenewal(record: Buffer): DirectPreamble {
  if (record.length - 1 > MAX_PREAMBLE_BYTES)
    throw new ProtocolError('ERR_DIRECT_PREAMBLE', 'renewal record too large');
  return parseStatement(record.subarray(1), 'renewal record');
}

/**
 * A record with its length prefix, for a hello or a renewal (sealed records are framed in one piece by TunnelSession).
 */
export function framedRecord(record: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(RECORD_HEADER_BYTES + record.length);
  out.writeUInt32BE(record.length, 0);
  out.set(record, RECORD_HEADER_BYTES);
  return out;
}

/**
 * Splits a byte stream into length-prefixed records, handed on as the views of the socket's chunks
 * that hold them: a 128 KiB record spans two or three 64 KiB reads, and it is decrypted part by part
 * (SealingKey.openv) rather than joined first. A length over `maxRecord` (or zero) throws: the
 * connection is then closed, nothing else.
 */
export class RecordReader {
  private queue: Buffer[] = [];
  private have = 0;
  /** The length of the record whose header was read, or -1 between records. */
  private need = -1;

  constructor(
    private readonly maxRecord: number,
    private readonly onRecord: (parts: Buffer[]) => void,
  ) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    // Whole records at the front of a chunk, with nothing queued (small messages, mostly): handed on as
    // views of the chunk, without the queue's arrays.
    while (this.have === 0 && this.need < 0 && chunk.length >= RECORD_HEADER_BYTES) {
      const len = chunk.readUInt32BE(0);
      if (len === 0 || len > this.maxRecord)
        throw new TooLargeError(
          'ERR_DIRECT_RECORD_SIZE',
          `direct record of ${len} bytes is outside 1..${this.maxRecord}`,
        );
      if (chunk.length < RECORD_HEADER_BYTES + len) break;
      this.onRecord([chunk.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + len)]);
      chunk = chunk.subarray(RECORD_HEADER_BYTES + len);
    }
    if (chunk.length === 0) return;
    this.queue.push(chunk);
    this.have += chunk.length;
    while (this.have >= (this.need < 0 ? RECORD_HEADER_BYTES : this.need)) {
      if (this.need < 0) {
        const head =
          this.queue[0].length >= RECORD_HEADER_BYTES
            ? this.queue[0]
            : Buffer.concat(this.queue.slice(0, RECORD_HEADER_BYTES), RECORD_HEADER_BYTES);
        const len = head.readUInt32BE(0);
        this.take(RECORD_HEADER_BYTES);
        if (len === 0 || len > this.maxRecord)
          throw new TooLargeError(
            'ERR_DIRECT_RECORD_SIZE',
            `direct record of ${len} bytes is outside 1..${this.maxRecord}`,
          );
        this.need = len;
      }
      if (this.have < this.need) return;
      const len = this.need;
      this.need = -1;
      this.onRecord(this.take(len));
    }
  }

  /** The next n bytes, as views of the queued chunks. */
  private take(n: number): Buffer[] {
    const out: Buffer[] = [];
    this.have -= n;
    let i = 0;
    while (n > 0) {
      const c = this.queue[i];
      if (c.length <= n) {
        out.push(c);
        i++;
        n -= c.length;
      } else {
        out.push(c.subarray(0, n));
        this.queue[i] = c.subarray(n);
        n = 0;
      }
    }
    this.queue.splice(0, i); // once, not a shift() per chunk: many tiny reads must not cost quadratic time
    return out;
  }
}

/** A record's parts as one buffer (a view when it is one part already). */
export function joinParts(parts: Buffer[]): Buffer {
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}
