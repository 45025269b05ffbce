/**
 * Main's signature on a request to a tenant. Main signs (ed25519, Node crypto) a small JSON claim —
 * request id, tenant, expiry, method, path, body hash, and the calling user — and the tenant verifies it
 * against main's public key before acting, so a compromised host can neither forge nor replay a request.
 * This module is pure: signing/verification and claim checks; the replay cache belongs to the verifier.
 */
import { createHash, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { AccessDeniedError } from './errors.js';

export const AUTH_HEADER = 'x-palisade-auth';
export const SIGNATURE_HEADER = 'x-palisade-signature';
/** A signed request is good for 60 s: long enough for a slow relay, short enough to bound the replay cache. */
export const SIGNED_REQUEST_TTL_MS = 60_000;

/**
 * Who is calling, as main vouches for it. A main user carries its roles (the tenant maps them to its
 * permissions); a key created on the tenant carries only `key` (its id and the hash of the presented
 * secret), and the tenant resolves user and roles from its own store. `from` is the caller's address as
 * main saw it, for the tenant's audit log.
 */
export interface CallerIdentity {
  id: string;
  name: string;
  roles: string[];
  tenant?: string;
  key?: { id: string; sha256: string };
  from?: string;
  /** A customer user's security profile: the tenant limits what it sees to the profile's domains. */
  profile?: string;
}

export interface RequestClaim {
  v: 1;
  id: string;
  tenant: string;
  exp: number;
  method: string;
  path: string;
  bodySha256: string;
  user: CallerIdentity;
}

export function bodyHash(body: Uint8Array | string | undefined): string {
  return createHash('sha256')
    .update(body ?? '')
    .digest('hex');
}

export function signRequest(
  key: KeyObject,
  c: Omit<RequestClaim, 'v' | 'id' | 'exp'> & { ttlMs?: number },
): { auth: string; signature: string; claim: RequestClaim } {
  const claim: RequestClaim = {
    v: 1,
    id: randomBytes(16).toString('hex'),
    tenant: c.tenant,
    exp: Date.now() + (c.ttlMs ?? SIGNED_REQUEST_TTL_MS),
    method: c.method.toUpperCase(),
    path: c.path,
    bodySha256: c.bodySha256,
    user: c.user,
  };
  const bytes = Buffer.from(JSON.stringify(claim), 'utf8');
  return { auth: bytes.toString('base64url'), signature: sign(null, bytes, key).toString('base64url'), claim };
}

export function publicKeyFromBase64(raw32: string): KeyObject {
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw32, 'base64').toString('base64url') },
    format: 'jwk',
  });
}

/** Every refusal of a signed request (the replay cache's own overflow aside); a tenant audits these apart. */
const SIGNATURE_REFUSALS = [
  'ERR_SIGNATURE_MISSING',
  'ERR_SIGNATURE_INVALID',
  'ERR_SIGNATURE_WRONG_TENANT',
  'ERR_SIGNATURE_EXPIRED',
  'ERR_SIGNATURE_MISMATCH',
  'ERR_SIGNATURE_REPLAYED',
] as const;
export const isSignatureRefusal = (code: string | undefined): code is string =>
  (SIGNATURE_REFUSALS as readonly (string | undefined)[]).includes(code);
const deny = (code: (typeof SIGNATURE_REFUSALS)[number], message: string) => new AccessDeniedError(code, message);

/**
 * Everything but the body: signature, tenant, expiry, method and path. Checkable from the headers alone,
 * so a receiver can refuse an unsigned request before reading (and parsing) its body; `checkBody` then
 * checks the body hash, and replay is the caller's check.
 */
export function verifyClaim(
  key: KeyObject,
  headers: { auth?: string; signature?: string },
  actual: { tenant: string; method: string; path: string },
  now = Date.now(),
): RequestClaim {
  if (!headers.auth || !headers.signature) throw deny('ERR_SIGNATURE_MISSING', 'request is not signed by main');
  const bytes = Buffer.from(headers.auth, 'base64url');
  let ok: boolean;
  try {
    ok = verify(null, bytes, key, Buffer.from(headers.signature, 'base64url'));
  } catch {
    ok = false;
  }
  if (!ok) throw deny('ERR_SIGNATURE_INVALID', "request signature does not verify with main's key");
  let claim: RequestClaim;
  try {
    claim = JSON.parse(bytes.toString('utf8')) as RequestClaim;
  } catch {
    throw deny('ERR_SIGNATURE_INVALID', 'signed claim is not JSON');
  }
  if (claim.v !== 1) throw deny('ERR_SIGNATURE_INVALID', 'unknown signed-claim version');
  if (claim.tenant !== actual.tenant) throw deny('ERR_SIGNATURE_WRONG_TENANT', 'request was signed for another tenant');
  if (typeof claim.exp !== 'number' || claim.exp < now)
    throw deny('ERR_SIGNATURE_EXPIRED', 'signed request has expired');
  if (claim.exp > now + 2 * SIGNED_REQUEST_TTL_MS)
    throw deny('ERR_SIGNATURE_EXPIRED', 'signed request expires implausibly far ahead');
  if (claim.method !== actual.method.toUpperCase() || claim.path !== actual.path)
    throw deny('ERR_SIGNATURE_MISMATCH', 'signed method/path differ from the request');
  return claim;
}

/** The body the claim was signed over, byte for byte. */
export function checkBody(claim: RequestClaim, body: Uint8Array | string | undefined): void {
  if (claim.bodySha256 !== bodyHash(body))
    throw deny('ERR_SIGNATURE_MISMATCH', 'signed body hash differs from the body');
}

/** Remembers request ids until their expiry, so a captured request cannot be played twice. */
export class ReplayCache {
  private readonly seen = new Map<string, number>();
  private readonly max: number;
  constructor(max = 100_000) {
    this.max = max;
  }

  checkAndRemember(claim: Pick<RequestClaim, 'id' | 'exp'>, now = Date.now()): void {
    if (this.seen.has(claim.id)) throw deny('ERR_SIGNATURE_REPLAYED', 'this signed request was already used');
    if (this.seen.size >= this.max) this.sweep(now);
    if (this.seen.size >= this.max)
      throw new AccessDeniedError('ERR_REPLAY_CACHE_FULL', 'too many signed requests in flight; retry shortly', {
        retryable: true,
      });
    this.seen.set(claim.id, claim.exp);
  }

  private sweep(now: number): void {
    for (const [id, exp] of this.seen) if (exp < now) this.seen.delete(id);
  }
}
