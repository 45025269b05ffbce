/**
 * A connection's secret sealed at rest (agent/tenant/connection-sealing.ts) and in transit from the CLI
 * (common/sealed-secret.ts): round trips, and refusals for another tenant, connection or key. No I/O.
 */
import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { connectionDataKey, openAtRest, sealAtRest } from '../../agent/tenant/connection-sealing.js';
import { openSealedSecret, sealSecretFor } from '#common/sealed-secret.js';

const SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY@@@FwoGZXIvYXdzEXAMPLETOKEN';
const acme = nacl.box.keyPair();
const globex = nacl.box.keyPair();
const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
};

describe('a secret at rest', () => {
  const key = connectionDataKey(acme.secretKey, 'acme');

  it('opens as it was sealed, and the sealed form holds none of it', () => {
    const sealed = sealAtRest(key, 'acme', 'prod', SECRET);
    expect(openAtRest(key, 'acme', 'prod', sealed)).toBe(SECRET);
    const raw = Buffer.from(sealed.slice(3), 'base64');
    for (const part of ['wJalrXUtnFEMI', 'FwoGZXIvYXdz']) {
      expect(sealed).not.toContain(part);
      expect(raw.includes(Buffer.from(part))).toBe(false);
    }
    // A fresh IV each time: the same secret never seals to the same bytes.
    expect(sealAtRest(key, 'acme', 'prod', SECRET)).not.toBe(sealed);
  });

  it('does not open under another connection name or tenant (AAD), nor with another key', () => {
    const sealed = sealAtRest(key, 'acme', 'prod', SECRET);
    expect(codeOf(() => openAtRest(key, 'acme', 'dev', sealed))).toBe('ERR_CONNECTION_UNSEALABLE');
    expect(codeOf(() => openAtRest(key, 'globex', 'prod', sealed))).toBe('ERR_CONNECTION_UNSEALABLE');
    const otherKey = connectionDataKey(globex.secretKey, 'acme');
    expect(codeOf(() => openAtRest(otherKey, 'acme', 'prod', sealed))).toBe('ERR_CONNECTION_UNSEALABLE');
    // The same key material under another tenant name derives another key.
    expect(connectionDataKey(acme.secretKey, 'globex').equals(key)).toBe(false);
  });

  it('refuses a tampered or truncated value', () => {
    const sealed = sealAtRest(key, 'acme', 'prod', SECRET);
    const raw = Buffer.from(sealed.slice(3), 'base64');
    raw[20] ^= 1;
    expect(codeOf(() => openAtRest(key, 'acme', 'prod', `v1.${raw.toString('base64')}`))).toBe(
      'ERR_CONNECTION_UNSEALABLE',
    );
    expect(codeOf(() => openAtRest(key, 'acme', 'prod', 'v1.AAAA'))).toBe('ERR_CONNECTION_UNSEALABLE');
    expect(codeOf(() => openAtRest(key, 'acme', 'prod', SECRET))).toBe('ERR_CONNECTION_UNSEALABLE');
  });
});

describe('a secret sealed by the CLI to its tenant', () => {
  const pub = Buffer.from(acme.publicKey).toString('base64');

  it('opens with the tenant secret key for the connection it was sealed for', () => {
    const sealed = sealSecretFor(pub, 'acme', 'prod', SECRET);
    expect(sealed).not.toContain('wJalrXUtnFEMI');
    expect(openSealedSecret(sealed, acme.secretKey, 'acme', 'prod')).toBe(SECRET);
  });

  it('is refused for another connection, another tenant, or with another key', () => {
    const sealed = sealSecretFor(pub, 'acme', 'prod', SECRET);
    expect(codeOf(() => openSealedSecret(sealed, acme.secretKey, 'acme', 'dev'))).toBe('ERR_CONNECTION_SEALED');
    expect(codeOf(() => openSealedSecret(sealed, globex.secretKey, 'acme', 'prod'))).toBe('ERR_CONNECTION_SEALED');
    expect(codeOf(() => openSealedSecret('v1.AAAA', acme.secretKey, 'acme', 'prod'))).toBe('ERR_CONNECTION_SEALED');
    expect(codeOf(() => openSealedSecret(SECRET, acme.secretKey, 'acme', 'prod'))).toBe('ERR_CONNECTION_SEALED');
  });

  it('needs a NaCl public key to seal to', () => {
    expect(codeOf(() => sealSecretFor('', 'acme', 'prod', SECRET))).toBe('ERR_CONNECTION_SEALED');
  });
});
