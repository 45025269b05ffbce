/**
 * Console passwords: scrypt from node:crypto, stored as `scrypt$N$r$p$salt$hash` (salt and hash base64url), so
 * the cost can rise later without breaking stored hashes (verify reads the parameters from the string). Not the
 * sign-in flow (signin.ts) nor the TOTP factor (totp.ts).
 *
 * Why scrypt at N=2^15, r=8, p=1: memory-hard (128·N·r = 32 MiB per hash), in Node without a native add-on, and
 * about 60–100 ms on these 2-vCPU machines, which a person signing in does not notice but a guesser pays for
 * every try. Hashes run on libuv's thread pool, which the rest of main shares (file reads, DNS): `HashGate`
 * lets only a few run at once and refuses beyond a short queue, so a burst of sign-ins cannot starve it or
 * hold hundreds of 32 MiB buffers.
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { BadParameterError, UnavailableError } from '#common/errors.js';

export const PASSWORD_MIN_LENGTH = 12;
/** Longest password taken: scrypt hashes any length, but a megabyte "password" is only a way to cost CPU. */
export const PASSWORD_MAX_LENGTH = 1024;
export const SCRYPT_PARAMS = Object.freeze({ N: 2 ** 15, r: 8, p: 1 });
const KEY_BYTES = 64;
const SALT_BYTES = 16;
/** Hashes at once: two cores here; libuv has four threads for everything. */
const MAX_CONCURRENT_HASHES = 2;
/** Sign-ins waiting for a hash slot before the next is refused 503 (each waits ≈ 100 ms × its place). */
const MAX_QUEUED_HASHES = 32;

function scrypt(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  // Node's default maxmem (32 MiB) is exactly 128·N·r at these settings and refuses them: allow twice that.
  const opts: ScryptOptions = { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 };
  return new Promise((resolve, reject) =>
    scryptCb(password, salt, KEY_BYTES, opts, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** Refuses a password out of bounds, naming the field. */
export function checkPassword(password: string): void {
  if ([...password].length < PASSWORD_MIN_LENGTH || password.length > PASSWORD_MAX_LENGTH)
    throw new BadParameterError(
      'ERR_PASSWORD_WEAK',
      `password: use at least ${PASSWORD_MIN_LENGTH} characters (at most ${PASSWORD_MAX_LENGTH})`,
      { field: 'password' },
    );
}

/** Limits concurrent hashes; beyond the queue, a sign-in is answered 503 rather than waiting without bound. */
export class HashGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly maxRunning = MAX_CONCURRENT_HASHES,
    private readonly maxQueued = MAX_QUEUED_HASHES,
  ) {}

  async run<T>(f: () => Promise<T>): Promise<T> {
    if (this.running >= this.maxRunning) {
      if (this.waiting.length >= this.maxQueued)
        throw new UnavailableError('ERR_SIGNIN_BUSY', 'too many sign-ins are being checked at once; retry shortly', {
          retryAfterMs: 1000,
        });
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.running++;
    try {
      return await f();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}

/** A new stored hash for `password` with a fresh salt. */
export async function hashPassword(password: string): Promise<string> {
  const { N, r, p } = SCRYPT_PARAMS;
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(password, salt, N, r, p);
  return ['scrypt', N, r, p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

const STORED = /^scrypt\$(\d{1,8})\$(\d{1,3})\$(\d{1,3})\$([A-Za-z0-9_-]{16,128})\$([A-Za-z0-9_-]{16,256})$/;

/**
 * Whether `password` matches a stored hash, compared in constant time. An absent or malformed stored value is
 * checked against a dummy hash all the same and answers false, so an unknown user costs the same time as a
 * wrong password.
 */
export async function verifyPassword(password: string, stored: string | undefined): Promise<boolean> {
  const m = stored ? STORED.exec(stored) : null;
  const [n, r, p] = m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [SCRYPT_PARAMS.N, SCRYPT_PARAMS.r, 1];
  // Parameters come from our own store, but a damaged record must not make one check cost minutes or gigabytes.
  const sane = n >= 2 && n <= 2 ** 20 && (n & (n - 1)) === 0 && r >= 1 && r <= 32 && p >= 1 && p <= 16;
  const salt = m && sane ? Buffer.from(m[4], 'base64url') : DUMMY_SALT;
  const want = m && sane ? Buffer.from(m[5], 'base64url') : Buffer.alloc(KEY_BYTES);
  const got = await scrypt(password, salt, sane ? n : SCRYPT_PARAMS.N, sane ? r : SCRYPT_PARAMS.r, sane ? p : 1);
  const ok = got.length === want.length && timingSafeEqual(got, want);
  return ok && m !== null && sane;
}

const DUMMY_SALT = randomBytes(SALT_BYTES);
