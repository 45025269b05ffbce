/**
 * Bearer secrets (API keys, enrolment keys): `<prefix>_<id>.<secret>`. Stored on main only as
 * sha256(secret), looked up by id, compared in constant time. The id is not secret; it is what logs
 * and audit entries may name.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export interface NewSecret {
  id: string;
  token: string;
  hash: string;
}

export function newSecret(prefix: string): NewSecret {
  // An id is typed as a CLI argument (`apikeys revoke ID`): one starting with "-" would read as an option.
  let id: string;
  do id = randomBytes(9).toString('base64url');
  while (id.startsWith('-'));
  const secret = randomBytes(32).toString('base64url');
  return { id, token: `${prefix}_${id}.${secret}`, hash: hashSecret(secret) };
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Splits a token; null when it is not of this prefix's shape (no exception: the caller answers 401). */
export function parseSecret(prefix: string, token: string): { id: string; secret: string } | null {
  const m = new RegExp(`^${prefix}_([A-Za-z0-9_-]{6,32})\\.([A-Za-z0-9_-]{20,100})$`).exec(token);
  return m ? { id: m[1], secret: m[2] } : null;
}

export function secretMatches(secret: string, storedHashHex: string): boolean {
  const a = Buffer.from(hashSecret(secret), 'hex');
  const b = Buffer.from(storedHashHex, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * A key created on a tenant: `ptk_<tenant>~<id>.<secret>`. Main holds no record of it; it reads the tenant
 * from the token, lets it reach only that tenant's relay, and passes (id, sha256(secret)) inside its
 * signed claim so the tenant checks it against its own store.
 */
export const TENANT_KEY_PREFIX = 'ptk';

export function newTenantKey(tenant: string): NewSecret {
  const s = newSecret(TENANT_KEY_PREFIX);
  return { ...s, token: s.token.replace(`${TENANT_KEY_PREFIX}_`, `${TENANT_KEY_PREFIX}_${tenant}~`) };
}

export function parseTenantKey(token: string): { tenant: string; id: string; secret: string } | null {
  const m = /^ptk_([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)~([A-Za-z0-9_-]{6,32})\.([A-Za-z0-9_-]{20,100})$/.exec(token);
  return m ? { tenant: m[1], id: m[2], secret: m[3] } : null;
}

/** Constant-time equality of two hex digests. */
export function hashesMatch(aHex: string, bHex: string): boolean {
  const a = Buffer.from(aHex, 'hex'),
    b = Buffer.from(bHex, 'hex');
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}
