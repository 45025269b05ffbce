/**
 * The sealed form of a tenant's snapshot while it crosses main in a move: a hand-framed format, so it is
 * written down here byte for byte (test/unit/transfer-sealing.test.ts checks it against this text).
 *
 *   keys     each host makes a one-time X25519 key pair per transfer; a public key travels as the base64
 *            of its 32 bytes (`recipientKey` from the target, `senderKey` from the source).
 *   key      HKDF-SHA256(ikm = nacl.box.before(their public key, own secret key), i.e. X25519 then
 *            HSalsa20; salt = empty; info = UTF-8 "palisade tenant move v1 " + tenant name; 32 bytes).
 *   chunks   the snapshot (.tar.gz) cut into TRANSFER_CHUNK_BYTES pieces, the last one shorter (an empty
 *            snapshot is one empty chunk). Chunk i of n (i from 0) is sealed with ChaCha20-Poly1305:
 *              nonce = 8 zero bytes ‖ i as uint32 big-endian        (12 bytes)
 *              aad   = UTF-8 "NAME:i/n", both numbers in decimal    (binds tenant, position and count)
 *              out   = ciphertext ‖ 16-byte tag                     (so 16 bytes longer than the chunk)
 *   stream   the sealed chunks back to back; main relays each with its sha256 and the whole with its own.
 *
 * The index and count in nonce and AAD are why chunks can be neither swapped nor dropped, and the name in
 * key and AAD why a snapshot sealed for one tenant does not open as another. Pure: no I/O. Not the
 * transfer's steps (tenant-transfer.ts) nor the checks on what the archive holds (snapshot-archive.ts).
 */
import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import nacl from 'tweetnacl';
import { BadParameterError } from '#common/errors.js';

/** 512 KiB of snapshot per chunk: sealed and in base64, a chunk plus framing stays under the 1 MiB frame limit. */
export const TRANSFER_CHUNK_BYTES = 512 * 1024;
const TAG_BYTES = 16;
export const SEALED_CHUNK_BYTES = TRANSFER_CHUNK_BYTES + TAG_BYTES;

/** The chunks' key from one side's secret key and the other side's public key, for this tenant only. */
export function sealingKey(theirPublicKey: Uint8Array, ownSecretKey: Uint8Array, name: string): Buffer {
  const shared = nacl.box.before(theirPublicKey, ownSecretKey);
  return Buffer.from(hkdfSync('sha256', shared, Buffer.alloc(0), `palisade tenant move v1 ${name}`, 32));
}

const nonceOf = (index: number) => {
  const n = Buffer.alloc(12);
  n.writeUInt32BE(index, 8);
  return n;
};
const aadOf = (name: string, index: number, chunks: number) => Buffer.from(`${name}:${index}/${chunks}`);

export function sealChunk(key: Buffer, name: string, index: number, chunks: number, plain: Buffer): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonceOf(index), { authTagLength: TAG_BYTES });
  c.setAAD(aadOf(name, index, chunks), { plaintextLength: plain.length });
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

export function openChunk(key: Buffer, name: string, index: number, chunks: number, sealed: Buffer): Buffer {
  if (sealed.length < TAG_BYTES)
    throw new BadParameterError('ERR_TRANSFER_CHECKSUM', `chunk ${index} of "${name}" is truncated`);
  const d = createDecipheriv('chacha20-poly1305', key, nonceOf(index), { authTagLength: TAG_BYTES });
  d.setAAD(aadOf(name, index, chunks), { plaintextLength: sealed.length - TAG_BYTES });
  d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - TAG_BYTES)), d.final()]);
  } catch {
    throw new BadParameterError(
      'ERR_TRANSFER_CHECKSUM',
      `chunk ${index} of "${name}" does not open with this transfer's key`,
    );
  }
}

/** A one-time public key as it travels (base64 of 32 bytes), checked. */
export function boxKey(v: unknown, field: string): Uint8Array {
  const k = typeof v === 'string' ? Buffer.from(v, 'base64') : Buffer.alloc(0);
  if (k.length !== nacl.box.publicKeyLength)
    throw new BadParameterError('ERR_TRANSFER_KEY', `${field} must be a base64 X25519 public key`, { field });
  return k;
}
