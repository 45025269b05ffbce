/**
 * End-to-end protection of the engine ⇄ tenant session (docs/tunnels.md): main and the relaying host carry only
 * ciphertext. A two-message handshake in the spirit of Noise KK, built from NaCl primitives (tweetnacl):
 *
 *   engine → tenant  EngineHello  { engineStatic, engineEph, box(engineEph ‖ time, → tenantStatic, from engineStatic) }
 *   tenant → engine  TenantHello  { tenantEph, box(tenantEph ‖ engineEph, → engineStatic, from tenantStatic) }
 *
 * Opening EngineHello's box proves the engine holds the secret half of a key the tenant has enrolled;
 * opening TenantHello's box proves the peer holds the tenant's secret key (its public half came in the
 * engine's bundle). Session keys come from both the ephemeral and the static shared secrets (HKDF-SHA256
 * over the transcript), so a later leak of static keys does not expose recorded sessions. Bulk data uses
 * Node's AES-256-GCM (tweetnacl's secretbox is ~25× slower in our measurements) with counter nonces, so a
 * dropped, replayed or reordered record fails to open. Pure: no I/O, no clocks but the one passed in.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { AccessDeniedError, ProtocolError } from '#common/errors.js';
import { nativeGcm } from './native-aead.js';

export interface BoxKeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** A hello older or newer than this is refused: it bounds how long a captured EngineHello could be replayed. */
export const HELLO_MAX_SKEW_MS = 120_000;
const TAG_BYTES = 16;
/** Bytes a sealed record adds to its plaintext (the GCM tag). */
export const SEAL_OVERHEAD = TAG_BYTES;
/** v2: records are AES-256-GCM (v1 sealed them with ChaCha20-Poly1305); the label keeps the two sets of keys apart. */
const KEY_INFO = 'palisade tunnel v2';
/**
 * AES-256-GCM rather than ChaCha20-Poly1305: with AES-NI and carry-less multiply (every x86-64 server of
 * the last decade, ARMv8 with its crypto extensions) OpenSSL's stitched AES-GCM costs less per byte, and
 * in a busy tunnel — where the cipher shares the core with socket I/O — it took the tunnel benchmark's
 * download +6% and tenant + engine CPU per MB −10% against ChaCha20 (paired runs, two deployments side by
 * side). 256-bit keys cost no measurable time over 128 here. Nonces are a counter, never random: no
 * birthday bound on the 96-bit nonce, and a record is at most 1 MiB, far below GCM's 64 GiB per message.
 */
const AEAD = 'aes-256-gcm';
const AEAD_OPTIONS = { authTagLength: TAG_BYTES } as const;

export interface EngineHello {
  engineStatic: Uint8Array;
  engineEph: Uint8Array;
  nonce: Uint8Array;
  box: Uint8Array;
}
export interface TenantHello {
  tenantEph: Uint8Array;
  nonce: Uint8Array;
  box: Uint8Array;
  /** The tenant's protocol minor (TunnelTenantHello.protocol_minor; 0 from a tenant before 1.11). Not authenticated. */
  protocolMinor?: number;
}

export interface EngineHandshake {
  hello: EngineHello;
  finish(reply: TenantHello): SessionKeys;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
}

function timeBytes(now: number): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(now));
  return b;
}

/** The engine's first message, and how to finish once the tenant answers. */
export function engineHandshake(
  engineStatic: BoxKeyPair,
  tenantStaticPub: Uint8Array,
  now = Date.now(),
): EngineHandshake {
  const eph = nacl.box.keyPair();
  const nonce = randomBytes(nacl.box.nonceLength);
  const box = nacl.box(concat(eph.publicKey, timeBytes(now)), nonce, tenantStaticPub, engineStatic.secretKey);
  const hello: EngineHello = { engineStatic: engineStatic.publicKey, engineEph: eph.publicKey, nonce, box };
  return {
    hello,
    finish(reply: TenantHello): SessionKeys {
      const opened = nacl.box.open(reply.box, reply.nonce, tenantStaticPub, engineStatic.secretKey);
      if (!opened)
        throw new AccessDeniedError('ERR_TUNNEL_TENANT_AUTH', "the peer does not hold this tenant's secret key");
      const tenantEph = opened.subarray(0, 32);
      if (
        !Buffer.from(tenantEph).equals(Buffer.from(reply.tenantEph)) ||
        !Buffer.from(opened.subarray(32)).equals(Buffer.from(eph.publicKey))
      ) {
        throw new AccessDeniedError('ERR_TUNNEL_TENANT_AUTH', 'the tenant answered another handshake');
      }
      return deriveKeys(
        'engine',
        nacl.box.before(reply.tenantEph, eph.secretKey),
        nacl.box.before(tenantStaticPub, engineStatic.secretKey),
        hello,
        reply,
      );
    },
  };
}

/**
 * The tenant's side: accepts an EngineHello from an enrolled engine key and answers it.
 * `enrolled` says whether an engine public key is enrolled for this tenant (main tells the tenant).
 */
export function tenantAccept(
  tenantStatic: BoxKeyPair,
  hello: EngineHello,
  enrolled: (enginePub: Uint8Array) => boolean,
  now = Date.now(),
): { reply: TenantHello; keys: SessionKeys } {
  if (
    hello.engineStatic?.length !== 32 ||
    hello.engineEph?.length !== 32 ||
    hello.nonce?.length !== nacl.box.nonceLength
  ) {
    throw new ProtocolError('ERR_TUNNEL_HELLO', 'malformed engine hello');
  }
  if (!enrolled(hello.engineStatic))
    throw new AccessDeniedError('ERR_TUNNEL_ENGINE_UNKNOWN', 'this engine key is not enrolled for this tenant');
  const opened = nacl.box.open(hello.box, hello.nonce, hello.engineStatic, tenantStatic.secretKey);
  if (!opened || opened.length !== 40 || !Buffer.from(opened.subarray(0, 32)).equals(Buffer.from(hello.engineEph))) {
    throw new AccessDeniedError('ERR_TUNNEL_ENGINE_AUTH', "the engine's hello does not open with its enrolled key");
  }
  const sent = Number(Buffer.from(opened.subarray(32)).readBigUInt64BE());
  if (Math.abs(now - sent) > HELLO_MAX_SKEW_MS)
    throw new AccessDeniedError('ERR_TUNNEL_HELLO_STALE', 'engine hello is too old or from the future (clock skew?)');
  const eph = nacl.box.keyPair();
  const nonce = randomBytes(nacl.box.nonceLength);
  const box = nacl.box(concat(eph.publicKey, hello.engineEph), nonce, hello.engineStatic, tenantStatic.secretKey);
  const reply: TenantHello = { tenantEph: eph.publicKey, nonce, box };
  const keys = deriveKeys(
    'tenant',
    nacl.box.before(hello.engineEph, eph.secretKey),
    nacl.box.before(hello.engineStatic, tenantStatic.secretKey),
    hello,
    reply,
  );
  return { reply, keys };
}

export interface SessionKeys {
  send: SealingKey;
  receive: SealingKey;
}

function deriveKeys(
  side: 'engine' | 'tenant',
  ephShared: Uint8Array,
  staticShared: Uint8Array,
  hello: EngineHello,
  reply: TenantHello,
): SessionKeys {
  const transcript = concat(
    hello.engineStatic,
    hello.engineEph,
    hello.nonce,
    hello.box,
    reply.tenantEph,
    reply.nonce,
    reply.box,
  );
  const okm = Buffer.from(hkdfSync('sha256', concat(ephShared, staticShared), transcript, KEY_INFO, 64));
  const engineToTenant = okm.subarray(0, 32),
    tenantToEngine = okm.subarray(32, 64);
  return side === 'engine'
    ? { send: new SealingKey(engineToTenant), receive: new SealingKey(tenantToEngine) }
    : { send: new SealingKey(tenantToEngine), receive: new SealingKey(engineToTenant) };
}

/**
 * One direction of the session: AES-256-GCM with a 96-bit counter nonce. Records must be opened in
 * the order they were sealed; the carrying channels (WebSocket, IPC) preserve order, so any gap is an attack
 * or a bug and fails closed.
 */
export class SealingKey {
  /** Records sealed so far: a Number, exact up to 2^53 records, far beyond any session. */
  private counter = 0;
  /**
   * One nonce buffer, rewritten per record: the cipher copies it at creation. Each record used to
   * allocate one (and a BigInt), part of ~10 KB of garbage per small message whose scavenges showed as
   * round-trip p99.
   */
  private readonly nonce = Buffer.alloc(12);
  /**
   * `native`: the in-place AES-GCM of agent/tunnel/native when built (null: Node's crypto only, as tests compare the
   * two).
   */
  constructor(
    private readonly key: Buffer,
    private readonly native: typeof nativeGcm | null = nativeGcm ?? null,
  ) {}

  /** 0000 ‖ counter as 64-bit big-endian: the layout of every record sealed so far. */
  private nextNonce(): Buffer {
    const c = this.counter++;
    if (c >= Number.MAX_SAFE_INTEGER)
      throw new ProtocolError('ERR_TUNNEL_REKEY', 'session sealed 2^53 records: start a new one'); // never reuse a nonce
    this.nonce.writeUInt32BE(Math.floor(c / 0x1_0000_0000), 4);
    this.nonce.writeUInt32BE(c >>> 0, 8);
    return this.nonce;
  }

  /**
   * Seals `plain`; with `prefix`, returns prefix ‖ ciphertext ‖ tag in one buffer, so a record is built
   * with a single copy of the ciphertext (records are up to 256 KiB).
   */
  seal(plain: Uint8Array, prefix?: Uint8Array): Buffer {
    const c = createCipheriv(AEAD, this.key, this.nextNonce(), AEAD_OPTIONS);
    const body = c.update(plain);
    c.final(); // counter mode: nothing left over
    const parts: Uint8Array[] = [body, c.getAuthTag()];
    if (prefix) parts.unshift(prefix);
    return Buffer.concat(parts);
  }

  /**
   * Seals the concatenation of `plain` without joining it: returns the ciphertext of each part, then the
   * tag, for a gathered write (writev). The direct path sends a 512 KiB record this way with no copy
   * but the encryption itself. With `inPlace` (the caller will not read `plain` again: socket reads it
   * owns) and the native AEAD, the parts are encrypted where they lie and returned: no allocation at all.
   */
  sealv(plain: Uint8Array[], inPlace = false): Uint8Array[] {
    if (inPlace && this.native) {
      const tag = Buffer.allocUnsafe(TAG_BYTES);
      if (!this.native.gcm(this.key, this.nextNonce(), plain, true, tag))
        throw new ProtocolError('ERR_TUNNEL_SEAL', 'sealing a record failed');
      return [...plain, tag];
    }
    const c = createCipheriv(AEAD, this.key, this.nextNonce(), AEAD_OPTIONS);
    const out = plain.map((p) => c.update(p));
    c.final();
    out.push(c.getAuthTag());
    return out;
  }

  /**
   * Opens a sealed record given as parts (views of socket reads): each part is decrypted as it is, no
   * joining copy; nothing is returned unless the tag checks out. With the native AEAD the parts are
   * decrypted in place (they must be the caller's to overwrite) and their views returned.
   */
  openv(parts: Buffer[]): Buffer[] {
    const total = parts.reduce((n, p) => n + p.length, 0);
    if (total < TAG_BYTES) throw new ProtocolError('ERR_TUNNEL_RECORD', 'sealed record too short');
    const body: Buffer[] = [];
    const tag: Buffer[] = [];
    let left = total - TAG_BYTES;
    for (const p of parts) {
      if (left >= p.length) {
        body.push(p);
        left -= p.length;
        continue;
      }
      if (left > 0) body.push(p.subarray(0, left));
      tag.push(p.subarray(left));
      left = 0;
    }
    const tagBytes = tag.length === 1 ? tag[0] : Buffer.concat(tag);
    if (this.native) {
      if (this.native.gcm(this.key, this.nextNonce(), body, false, tagBytes)) return body;
      throw new ProtocolError(
        'ERR_TUNNEL_RECORD',
        'sealed record failed authentication (tampered, replayed or out of order)',
      );
    }
    const d = createDecipheriv(AEAD, this.key, this.nextNonce(), AEAD_OPTIONS);
    d.setAuthTag(tagBytes);
    try {
      const plain = body.map((p) => d.update(p));
      d.final();
      return plain;
    } catch {
      throw new ProtocolError(
        'ERR_TUNNEL_RECORD',
        'sealed record failed authentication (tampered, replayed or out of order)',
      );
    }
  }

  open(sealed: Uint8Array): Buffer {
    const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    if (buf.length < TAG_BYTES) throw new ProtocolError('ERR_TUNNEL_RECORD', 'sealed record too short');
    const d = createDecipheriv(AEAD, this.key, this.nextNonce(), AEAD_OPTIONS);
    d.setAuthTag(buf.subarray(buf.length - TAG_BYTES));
    try {
      const plain = d.update(buf.subarray(0, buf.length - TAG_BYTES));
      d.final(); // checks the tag; counter mode has no further output
      return plain;
    } catch {
      throw new ProtocolError(
        'ERR_TUNNEL_RECORD',
        'sealed record failed authentication (tampered, replayed or out of order)',
      );
    }
  }
}
