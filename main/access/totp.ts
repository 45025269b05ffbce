/**
 * TOTP (RFC 6238) as authenticator apps speak it: HMAC-SHA-1, 6 digits, 30 s steps, the step before and after
 * accepted for clock drift, base32 secrets (RFC 4648, no padding) in an otpauth:// URI. Pure: no clock, no
 * store. Each code is usable once: the caller keeps the last step that signed in and passes it back, and a
 * code of that step or an earlier one is refused (a code seen over a shoulder or in a proxy log cannot be
 * replayed within its 90 s of validity). Enabling, disabling and storing the secret are credentials.ts's.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const TOTP_DIGITS = 6;
export const TOTP_STEP_SECONDS = 30;
/** Steps either side of now that still count: one, as RFC 6238 §5.2 recommends. */
export const TOTP_DRIFT_STEPS = 1;
/** 20 bytes = 160 bits: RFC 4226's recommended secret length for SHA-1. */
const SECRET_BYTES = 20;
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function base32Encode(b: Buffer): string {
  let bits = 0,
    value = 0,
    out = '';
  for (const byte of b) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += ALPHABET[(value << (5 - bits)) & 31];
  return out;
}

/** Decodes base32 (case, spaces and padding ignored); null when a character is not base32. */
export function base32Decode(s: string): Buffer | null {
  const clean = s.toUpperCase().replace(/[\s=]/g, '');
  let bits = 0,
    value = 0;
  const out: number[] = [];
  for (const c of clean) {
    const v = ALPHABET.indexOf(c);
    if (v < 0) return null;
    value = ((value << 5) | v) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 255);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** HOTP (RFC 4226 §5.3) of one counter value; `algorithm` other than sha1 only for RFC 6238's test vectors. */
export function hotp(key: Buffer, counter: number, digits = TOTP_DIGITS, algorithm = 'sha1'): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(algorithm, key).update(msg).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(bin % 10 ** digits).padStart(digits, '0');
}

export function totpStep(nowMs: number): number {
  return Math.floor(nowMs / 1000 / TOTP_STEP_SECONDS);
}

/**
 * The time step `code` belongs to (now ± drift, later than `lastStep`), or null. Every candidate step is
 * computed and compared in constant time, so the answer's timing does not say which step matched.
 */
export function checkTotp(secretBase32: string, code: string, nowMs: number, lastStep = -1): number | null {
  const key = base32Decode(secretBase32);
  if (!key || !/^\d{6}$/.test(code)) return null;
  const now = totpStep(nowMs);
  let found: number | null = null;
  for (let step = now - TOTP_DRIFT_STEPS; step <= now + TOTP_DRIFT_STEPS; step++) {
    const match = timingSafeEqual(Buffer.from(hotp(key, step)), Buffer.from(code));
    if (match && step > lastStep && found === null) found = step;
  }
  return found;
}

export function newTotpSecret(): string {
  return base32Encode(randomBytes(SECRET_BYTES));
}

/** The otpauth:// URI an authenticator app reads (Key Uri Format): label `Palisade:<user>`, issuer Palisade. */
export function otpauthUri(secretBase32: string, user: string, issuer = 'Palisade'): string {
  const label = `${encodeURIComponent(issuer)}:${encodeURIComponent(user)}`;
  const q = new URLSearchParams({
    secret: secretBase32,
    issuer,
    algorithm: 'SHA1',
    digits: String(TOTP_DIGITS),
    period: String(TOTP_STEP_SECONDS),
  });
  return `otpauth://totp/${label}?${q.toString()}`;
}
