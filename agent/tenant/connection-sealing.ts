/**
 * How a connection's secret rests in the tenant's store: sealed with the tenant's data key, never in clear.
 * A hand-framed format, written down here byte for byte:
 *
 *   data key  HKDF-SHA256(ikm = the tenant's NaCl box secret key from tenant-key.json, salt = empty,
 *             info = UTF-8 "palisade connection data key v1 " ‖ tenant name; 32 bytes)
 *   aad       UTF-8 "palisade connection v1" ‖ 0x00 ‖ tenant ‖ 0x00 ‖ connection name
 *   sealed    "v1." ‖ base64(iv (12 random bytes) ‖ AES-256-GCM ciphertext ‖ tag (16))
 *
 * Derived rather than stored: the key material already lives only in the tenant's directory (mode 0700, its
 * own system user), moves with the tenant and is deleted with it, so a copy of the store alone opens
 * nothing. The name in the AAD is why a sealed value copied onto another connection, or into another
 * tenant's store, does not open. Pure: no I/O. Not the transit form from the CLI: common/sealed-secret.ts.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { PalisadeError } from '#common/errors.js';

const PREFIX = 'v1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** The tenant's connection data key, from its own secret key. */
export function connectionDataKey(tenantSecretKey: Uint8Array, tenant: string): Buffer {
  return Buffer.from(hkdfSync('sha256', tenantSecretKey, '', `palisade connection data key v1 ${tenant}`, 32));
}

const aad = (tenant: string, name: string) => Buffer.from(`palisade connection v1\0${tenant}\0${name}`, 'utf8');

export function sealAtRest(key: Buffer, tenant: string, name: string, secret: string): string {
  const iv = randomBytes(IV_BYTES);
  const c = createCipheriv('aes-256-gcm', key, iv).setAAD(aad(tenant, name));
  const ct = Buffer.concat([c.update(secret, 'utf8'), c.final()]);
  return PREFIX + Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64');
}

/**
 * The secret sealed for this tenant and connection. Failing means the store was tampered with or copied
 * from elsewhere: a fault of the deployment, not of the caller.
 */
export function openAtRest(key: Buffer, tenant: string, name: string, sealed: string): string {
  const raw = sealed.startsWith(PREFIX) ? Buffer.from(sealed.slice(PREFIX.length), 'base64') : Buffer.alloc(0);
  try {
    if (raw.length < IV_BYTES + TAG_BYTES) throw new Error('too short');
    const d = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES)).setAAD(aad(tenant, name));
    d.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    return Buffer.concat([d.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), d.final()]).toString('utf8');
  } catch (e) {
    throw new PalisadeError(
      'internal',
      'ERR_CONNECTION_UNSEALABLE',
      `the stored secret of connection ${name} does not open with tenant ${tenant}'s key`,
      { cause: e },
    );
  }
}
