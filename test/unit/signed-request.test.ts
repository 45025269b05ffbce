/**
 * The headers main signs a relayed request with (common/signed-request.ts), against the format its module
 * documents: `x-palisade-auth` is the base64url of the claim's JSON (v, id, tenant, exp, method, path,
 * bodySha256, user, in that order, no spaces) and `x-palisade-signature` the base64url of an ed25519
 * signature over exactly those bytes, made with main's key (its public half travels as base64 of 32
 * bytes). The key is RFC 8032's test key 1, so the key format is pinned by the RFC's own signature; the
 * claim below is written by hand. Pure: no I/O.
 */
import { createPrivateKey, sign, verify } from 'node:crypto';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  AUTH_HEADER,
  SIGNATURE_HEADER,
  SIGNED_REQUEST_TTL_MS,
  bodyHash,
  publicKeyFromBase64,
  signRequest,
  verifyClaim,
} from '#common/signed-request.js';

const hex = (s: string) => Buffer.from(s, 'hex');
// RFC 8032 §7.1, TEST 1: secret key, public key, and the signature of the empty message.
const RFC_SECRET = hex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60');
const RFC_PUBLIC = hex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
const RFC_EMPTY_SIG = hex(
  'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
);

const mainKey = createPrivateKey({
  key: { kty: 'OKP', crv: 'Ed25519', d: RFC_SECRET.toString('base64url'), x: RFC_PUBLIC.toString('base64url') },
  format: 'jwk',
});
const mainPublic = publicKeyFromBase64(RFC_PUBLIC.toString('base64'));

const T0 = 1_800_000_000_000;
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** A GET of acme's incidents by an analyst, good until T0 + 60 s, written out as the tenant reads it. */
const claimText = (id: string) =>
  `{"v":1,"id":"${id}","tenant":"acme","exp":${T0 + 60_000},"method":"GET","path":"/api/v1/incidents?limit=5",` +
  `"bodySha256":"${EMPTY_SHA256}","user":{"id":"usr_1","name":"ann","roles":["analyst"]}}`;

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return 'accepted';
};

describe('signed request headers', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("take main's public key as base64 of its 32 raw bytes: RFC 8032's own signature verifies with it", () => {
    expect(verify(null, Buffer.alloc(0), mainPublic, RFC_EMPTY_SIG)).toBe(true);
    // and the test's private key is the RFC's
    expect(sign(null, Buffer.alloc(0), mainKey).equals(RFC_EMPTY_SIG)).toBe(true);
  });

  it('a hand-built pair (base64url of the JSON claim, ed25519 over those bytes) is accepted as that claim', () => {
    const text = claimText('00112233445566778899aabbccddeeff');
    const headers = {
      auth: Buffer.from(text, 'utf8').toString('base64url'),
      signature: sign(null, Buffer.from(text, 'utf8'), mainKey).toString('base64url'),
    };
    const claim = verifyClaim(
      mainPublic,
      headers,
      { tenant: 'acme', method: 'get', path: '/api/v1/incidents?limit=5' },
      T0,
    );
    expect(claim).toEqual(JSON.parse(text));
    // The signature covers the claim's bytes, not the header's text.
    const overHeader = { ...headers, signature: sign(null, Buffer.from(headers.auth), mainKey).toString('base64url') };
    expect(
      codeOf(() =>
        verifyClaim(mainPublic, overHeader, { tenant: 'acme', method: 'GET', path: '/api/v1/incidents?limit=5' }, T0),
      ),
    ).toBe('ERR_SIGNATURE_INVALID');
  });

  it('signRequest writes exactly that layout: fields in order, no spaces, the method upper-cased, 60 s of life', () => {
    vi.useFakeTimers({ now: T0 });
    const s = signRequest(mainKey, {
      tenant: 'acme',
      method: 'get',
      path: '/api/v1/incidents?limit=5',
      bodySha256: bodyHash(undefined),
      user: { id: 'usr_1', name: 'ann', roles: ['analyst'] },
    });
    const text = Buffer.from(s.auth, 'base64url').toString('utf8');
    const id = /^\{"v":1,"id":"([0-9a-f]{32})"/.exec(text)?.[1];
    expect(id).toBeDefined();
    expect(text).toBe(claimText(id!));
    expect(s.auth).toBe(Buffer.from(text, 'utf8').toString('base64url')); // base64url: no padding, no + or /
    expect(s.signature).toBe(sign(null, Buffer.from(text, 'utf8'), mainKey).toString('base64url')); // ed25519 is deterministic
    expect(SIGNED_REQUEST_TTL_MS).toBe(60_000);
    expect([AUTH_HEADER, SIGNATURE_HEADER]).toEqual(['x-palisade-auth', 'x-palisade-signature']);
  });
});
