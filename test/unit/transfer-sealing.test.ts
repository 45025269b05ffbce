/**
 * The sealed snapshot of a tenant move (agent/host/transfer-sealing.ts) against the format its header
 * writes down: the keys are RFC 7748's X25519 test keys, whose NaCl shared key is the published one, and
 * every nonce, AAD and tag position below is written out by hand from that header. Node's own HKDF and
 * ChaCha20-Poly1305 stand in for a second implementation of the format. Pure: no I/O.
 */
import { createCipheriv, hkdfSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEFAULT_MAX_FRAME_BYTES } from '#common/codec.js';
import {
  SEALED_CHUNK_BYTES,
  TRANSFER_CHUNK_BYTES,
  boxKey,
  openChunk,
  sealChunk,
  sealingKey,
} from '../../agent/host/transfer-sealing.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 7748 §6.1: Alice's and Bob's X25519 key pairs.
const ALICE_SECRET = hex('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a');
const ALICE_PUBLIC = hex('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
const BOB_SECRET = hex('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb');
const BOB_PUBLIC = hex('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
// The "firstkey" of Bernstein's "Cryptography in NaCl": crypto_box_beforenm of those keys (X25519, then HSalsa20).
const NACL_FIRSTKEY = hex('1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389');

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return 'opened';
};

describe('the sealed snapshot of a tenant move', () => {
  it('derives its key as HKDF-SHA256 over the NaCl shared key, info "palisade tenant move v1 NAME", and both sides agree', () => {
    const expected = Buffer.from(
      hkdfSync('sha256', NACL_FIRSTKEY, Buffer.alloc(0), Buffer.from('palisade tenant move v1 acme', 'utf8'), 32),
    );
    expect(sealingKey(BOB_PUBLIC, ALICE_SECRET, 'acme').toString('hex')).toBe(expected.toString('hex'));
    expect(sealingKey(ALICE_PUBLIC, BOB_SECRET, 'acme').toString('hex')).toBe(expected.toString('hex'));
    expect(sealingKey(BOB_PUBLIC, ALICE_SECRET, 'acme2').equals(expected)).toBe(false); // bound to the tenant
  });

  it('seals chunk i of n with ChaCha20-Poly1305, nonce 8 zero bytes ‖ i (uint32 BE), AAD "NAME:i/n", the tag after the ciphertext', () => {
    const key = Buffer.alloc(32, 0x42);
    const plain = Buffer.from('a piece of acme/store/000005.ldb');
    // Chunk 258 (0x0102) of 300 of tenant acme:
    const nonce = hex('00000000 00000000 00000102');
    const aad = hex('61636d65 3a 323538 2f 333030'); // "acme" ":" "258" "/" "300"
    const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    c.setAAD(aad, { plaintextLength: plain.length });
    const expected = Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);

    const sealed = sealChunk(key, 'acme', 258, 300, plain);
    expect(sealed.length).toBe(plain.length + 16);
    expect(sealed.toString('hex')).toBe(expected.toString('hex'));
    expect(openChunk(key, 'acme', 258, 300, expected).toString()).toBe(plain.toString());
  });

  it('opens a chunk only at its own index and count, for its own tenant and key, and whole', () => {
    const key = Buffer.alloc(32, 0x42);
    const sealed = sealChunk(key, 'acme', 1, 3, Buffer.from('chunk one'));
    expect(codeOf(() => openChunk(key, 'acme', 2, 3, sealed))).toBe('ERR_TRANSFER_CHECKSUM'); // swapped
    expect(codeOf(() => openChunk(key, 'acme', 1, 2, sealed))).toBe('ERR_TRANSFER_CHECKSUM'); // a chunk dropped from the count
    expect(codeOf(() => openChunk(key, 'acmf', 1, 3, sealed))).toBe('ERR_TRANSFER_CHECKSUM');
    expect(codeOf(() => openChunk(Buffer.alloc(32, 0x43), 'acme', 1, 3, sealed))).toBe('ERR_TRANSFER_CHECKSUM');
    expect(codeOf(() => openChunk(key, 'acme', 1, 3, sealed.subarray(0, 15)))).toBe('ERR_TRANSFER_CHECKSUM');
    expect(codeOf(() => openChunk(key, 'acme', 1, 3, sealed))).toBe('opened');
  });

  it('takes one-time public keys as base64 of 32 bytes, naming the field otherwise', () => {
    expect(Buffer.from(boxKey(BOB_PUBLIC.toString('base64'), 'recipientKey')).equals(BOB_PUBLIC)).toBe(true);
    for (const bad of [
      BOB_PUBLIC.subarray(0, 31).toString('base64'),
      Buffer.alloc(33).toString('base64'),
      'not-a-key',
      42,
      undefined,
    ]) {
      let err: { code?: string; field?: string } = {};
      try {
        boxKey(bad, 'recipientKey');
      } catch (e) {
        err = e as typeof err;
      }
      expect(err, String(bad)).toMatchObject({ code: 'ERR_TRANSFER_KEY', field: 'recipientKey' });
    }
  });

  it('a full chunk, sealed and in base64, stays under the frame limit', () => {
    expect(SEALED_CHUNK_BYTES).toBe(512 * 1024 + 16);
    expect(sealChunk(Buffer.alloc(32), 'acme', 0, 1, Buffer.alloc(TRANSFER_CHUNK_BYTES)).length).toBe(
      SEALED_CHUNK_BYTES,
    );
    expect(Math.ceil(SEALED_CHUNK_BYTES / 3) * 4).toBeLessThan(DEFAULT_MAX_FRAME_BYTES - 1024);
  });
});
