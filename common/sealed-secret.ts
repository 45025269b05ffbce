/**
 * A connection's secret sealed by the CLI to its tenant, so that main and the host relay only ciphertext:
 * only the tenant process holds the secret half of the key it is sealed to. A hand-framed format, written
 * down here byte for byte:
 *
 *   key        the tenant's NaCl box public key (`GET /tenants/T/api/info` → publicKey; main's tenant record
 *              holds the same), and a fresh X25519 key pair per secret (the ephemeral key)
 *   plaintext  UTF-8 "palisade connection secret v1" ‖ 0x00 ‖ tenant ‖ 0x00 ‖ connection name ‖ 0x00 ‖ secret
 *   box        nacl.box(plaintext, nonce, tenant public key, ephemeral secret key)  (XSalsa20-Poly1305)
 *   sealed     "v1." ‖ base64(ephemeral public key (32) ‖ nonce (24) ‖ box)
 *
 * The tenant and name inside the box are why a sealed secret replayed into another connection or tenant is
 * refused: NaCl's box has no associated data, so the binding travels inside and is checked on opening. Pure:
 * no I/O. Not how the secret rests in the tenant's store: agent/tenant/connection-sealing.ts.
 */
import nacl from 'tweetnacl';
import { BadParameterError } from './errors.js';

const PREFIX = 'v1.';
const LABEL = 'palisade connection secret v1';
const KEY = nacl.box.publicKeyLength;
const NONCE = nacl.box.nonceLength;

const header = (tenant: string, name: string) => Buffer.from(`${LABEL}\0${tenant}\0${name}\0`, 'utf8');

/** The secret sealed to the tenant's public key (base64, as the tenant's info answers it) for one connection. */
export function sealSecretFor(tenantPublicKey: string, tenant: string, name: string, secret: string): string {
  const pub = Buffer.from(tenantPublicKey, 'base64');
  if (pub.length !== KEY)
    throw new BadParameterError('ERR_CONNECTION_SEALED', `tenant ${tenant}'s public key is not a NaCl box key`, {
      field: 'sealedSecret',
    });
  const eph = nacl.box.keyPair();
  const nonce = nacl.randomBytes(NONCE);
  const box = nacl.box(Buffer.concat([header(tenant, name), Buffer.from(secret, 'utf8')]), nonce, pub, eph.secretKey);
  return PREFIX + Buffer.concat([eph.publicKey, nonce, box]).toString('base64');
}

/** The secret from a sealed one, if it was sealed to this key for this tenant and connection; else 400. */
export function openSealedSecret(sealed: string, tenantSecretKey: Uint8Array, tenant: string, name: string): string {
  const refused = () =>
    new BadParameterError(
      'ERR_CONNECTION_SEALED',
      `sealedSecret: does not open as a secret of connection ${name} in tenant ${tenant}`,
      { field: 'sealedSecret' },
    );
  if (!sealed.startsWith(PREFIX)) throw refused();
  const raw = Buffer.from(sealed.slice(PREFIX.length), 'base64');
  if (raw.length < KEY + NONCE + nacl.box.overheadLength) throw refused();
  const opened = nacl.box.open(
    raw.subarray(KEY + NONCE),
    raw.subarray(KEY, KEY + NONCE),
    raw.subarray(0, KEY),
    tenantSecretKey,
  );
  const h = header(tenant, name);
  if (!opened || opened.length < h.length || !Buffer.from(opened.subarray(0, h.length)).equals(h)) throw refused();
  return Buffer.from(opened.subarray(h.length)).toString('utf8');
}
