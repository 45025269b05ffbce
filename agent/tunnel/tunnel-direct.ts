/**
 * The wire of the direct engine ⇄ host path (issue 4): a plain TCP connection that carries the same
 * records as the relayed path (a handshake, then sealed frames), each prefixed with its 4-byte length,
 * after a short preamble naming the tenant and presenting main's signed, expiring statement about the
 * engine's key; while the session lasts the engine brings main's renewed statement in renewal records
 * (the session ends when its statement expires). Pure: framing, parsing and the check of a statement
 * (the same for the host and the tenant); who listens, dials and decides lives in agent/.
 *
 * No TLS on this hop, on purpose: the NaCl session already authenticates both ends (main vouches for the
 * engine's key, the tenant proves its secret key), encrypts and orders every record, and has forward
 * secrecy — a TLS layer would only add a second encryption of every byte, which is the cost this path
 * exists to remove. What travels in the clear is the preamble: tenant and engine names, the engine's
 * public key and main's signature, none of them secret.
 */
import { verify, type KeyObject } from 'node:crypto';
import { ProtocolError, TooLargeError } from '#common/errors.js';
import type { CodeOf } from '#common/error-codes.js';
import { engineDirectStatement, MAX_DIRECT_STATEMENT_MS } from '#common/tunnel-statements.js';
import { RECORD_RENEWAL } from './tunnel-records.js';

/** "PLSD" then version 1. */
const MAGIC = Buffer.from('PLSD\x01', 'latin1');
/** Preamble JSON is a few hundred bytes; anything bigger is not an engine. */
export const MAX_PREAMBLE_BYTES = 2048;
const PREAMBLE_HEAD = MAGIC.length + 2;
/**
 * A direct connection's send buffer beyond which stream data waits for 'drain': with windows that grow
 * (DIRECT_MAX_STREAM_WINDOW), this, not streams × window, bounds what a sender holds for the kernel.
 */
export const DIRECT_SEND_BUFFER_BYTES = 2 * 1024 * 1024;
/** A record's length prefix. */
export const RECORD_HEADER_BYTES = 4;
export interface DirectPreamble {
  tenant: string;
  engineId: string;
  engineName: string;
  /** The engine's enrolled box public key, base64 (32 bytes). */
  engineKey: string;
  /** Until when main's statement is valid (unix ms). */
  expiresAt: number;
  /** main's ed25519 signature over engineDirectStatement(…), base64. */
  sig: string;
}

export function encodePreamble(p: DirectPreamble): Buffer {
  const json = Buffer.from(JSON.stringify(p), 'utf8');
  if (json.length > MAX_PREAMBLE_BYTES) throw new ProtocolError('ERR_DIRECT_PREAMBLE', 'direct preamble too large');
  const head = Buffer.alloc(PREAMBLE_HEAD);
  MAGIC.copy(head);
  head.writeUInt16BE(json.length, MAGIC.length);
  return Buffer.concat([head, json]);
}

const STR = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;

/** A statement's fields from JSON bytes, checked; ProtocolError otherwise. */
function parseStatement(json: Buffer, what: string): DirectPreamble {
  let o: Record<string, unknown>;
  try { o = JSON.parse(json.toString('utf8')) as Record<string, unknown>; } catch {
    throw new ProtocolError('ERR_DIRECT_PREAMBLE', `${what} is not JSON`);
  }
  if (!o || typeof o !== 'object' || !STR(o.tenant, 100) || !STR(o.engineId, 100) || !STR(o.engineName, 100) || !STR(o.engineKey, 64)
    || !STR(o.sig, 128) || typeof o.expiresAt !== 'number' || !Number.isSafeInteger(o.expiresAt)) {
    throw new ProtocolError('ERR_DIRECT_PREAMBLE', `${what} fields missing or malformed`);
  }
  return { tenant: o.tenant, engineId: o.engineId, engineName: o.engineName, engineKey: o.engineKey, expiresAt: o.expiresAt, sig: o.sig };
}

/**
 * Why main's statement `p` does not vouch for its engine towards the tenant whose public key is
 * `tenantKeyB64`, at `now`; undefined when it does. The host and the tenant both ask (the tenant does not
 * trust its host), at the opening and at each renewal.
 */
export function statementProblem(p: DirectPreamble, tenantKeyB64: string, mainKey: KeyObject, now = Date.now()): CodeOf<'access-denied'> | undefined {
  try {
    if (!Number.isSafeInteger(p.expiresAt) || p.expiresAt < now || p.expiresAt > now + MAX_DIRECT_STATEMENT_MS) return 'ERR_DIRECT_STATEMENT_EXPIRED';
    const sig = Buffer.from(p.sig, 'base64');
    if (sig.length !== 64 || Buffer.from(p.engineKey, 'base64').length !== 32) return 'ERR_DIRECT_STATEMENT';
    const statement = engineDirectStatement(p.engineId, p.engineName, p.tenant, tenantKeyB64, p.engineKey, p.expiresAt);
    return verify(null, statement, mainKey, sig) ? undefined : 'ERR_DIRECT_STATEMENT';
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
  if (!buf.subarray(0, m).equals(MAGIC.subarray(0, m))) throw new ProtocolError('ERR_DIRECT_PREAMBLE', 'not a Palisade engine connection');
  if (buf.length < PREAMBLE_HEAD) return undefined;
  const len = buf.readUInt16BE(MAGIC.length);
  if (len === 0 || len > MAX_PREAMBLE_BYTES) throw new ProtocolError('ERR_DIRECT_PREAMBLE', 'direct preamble length out of range');
  if (buf.length < PREAMBLE_HEAD + len) return undefined;
  return { preamble: parseStatement(buf.subarray(PREAMBLE_HEAD, PREAMBLE_HEAD + len), 'direct preamble'), rest: buf.subarray(PREAMBLE_HEAD + len) };
}

/**
 * A renewal record: main's fresh statement for a live direct session, which the engine fetched from main
 * and hands to the tenant over the session's connection (in the clear like the preamble: nothing in it is
 * secret, and main's signature is what makes it count).
 */
export function renewalRecord(p: DirectPreamble): Buffer {
  return Buffer.concat([Buffer.from([RECORD_RENEWAL]), Buffer.from(JSON.stringify(p), 'utf8')]);
}

export function parseRenewal(record: Buffer): DirectPreamble {
  if (record.length - 1 > MAX_PREAMBLE_BYTES) throw new ProtocolError('ERR_DIRECT_PREAMBLE', 'renewal record too large');
  return parseStatement(record.subarray(1), 'renewal record');
}

/** Writes one record given as parts with a single gathered write (writev): no joining copy. */
export function writeParts(sock: { destroyed: boolean; cork(): void; uncork(): void; write(b: Uint8Array): boolean }, parts: Uint8Array[]): void {
  if (sock.destroyed) return;
  sock.cork();
  for (const p of parts) sock.write(p);
  sock.uncork();
}

/** A record with its length prefix, for the handshake (sealed records are framed in one piece by TunnelSession). */
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

  constructor(private readonly maxRecord: number, private readonly onRecord: (parts: Buffer[]) => void) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    // Whole records at the front of a chunk, with nothing queued (small messages, mostly): handed on as
    // views of the chunk, without the queue's arrays.
    while (this.have === 0 && this.need < 0 && chunk.length >= RECORD_HEADER_BYTES) {
      const len = chunk.readUInt32BE(0);
      if (len === 0 || len > this.maxRecord) throw new TooLargeError('ERR_DIRECT_RECORD_SIZE', `direct record of ${len} bytes is outside 1..${this.maxRecord}`);
      if (chunk.length < RECORD_HEADER_BYTES + len) break;
      this.onRecord([chunk.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + len)]);
      chunk = chunk.subarray(RECORD_HEADER_BYTES + len);
    }
    if (chunk.length === 0) return;
    this.queue.push(chunk);
    this.have += chunk.length;
    while (this.have >= (this.need < 0 ? RECORD_HEADER_BYTES : this.need)) {
      if (this.need < 0) {
        const head = this.queue[0].length >= RECORD_HEADER_BYTES ? this.queue[0] : Buffer.concat(this.queue.slice(0, RECORD_HEADER_BYTES), RECORD_HEADER_BYTES);
        const len = head.readUInt32BE(0);
        this.take(RECORD_HEADER_BYTES);
        if (len === 0 || len > this.maxRecord) throw new TooLargeError('ERR_DIRECT_RECORD_SIZE', `direct record of ${len} bytes is outside 1..${this.maxRecord}`);
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
      if (c.length <= n) { out.push(c); i++; n -= c.length; }
      else { out.push(c.subarray(0, n)); this.queue[i] = c.subarray(n); n = 0; }
    }
    this.queue.splice(0, i); // once, not a shift() per chunk: many tiny reads must not cost quadratic time
    return out;
  }
}

/** A record's parts as one buffer (a view when it is one part already). */
export function joinParts(parts: Buffer[]): Buffer {
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}
