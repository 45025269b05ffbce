/**
 * The console's credential primitives, pure: TOTP against RFC 6238 appendix B's vectors (and RFC 4226's HOTP
 * ones, RFC 4648's base32 ones), the ±1 step window and the once-only rule; scrypt passwords in their stored
 * format `scrypt$N$r$p$salt$hash`, verified only with the right password and never from a damaged record.
 */
import { describe, expect, it } from 'vitest';
import { base32Decode, base32Encode, checkTotp, hotp, otpauthUri, totpStep } from '../../main/access/totp.js';
import { checkPassword, hashPassword, HashGate, SCRYPT_PARAMS, verifyPassword } from '../../main/access/passwords.js';
import { csrfMatches, sessionCookie } from '../../main/access/sessions.js';

/** RFC 6238 appendix B: T (seconds) → the 8-digit TOTP for each algorithm. */
const RFC6238: [number, string, string, string][] = [
  [59, '94287082', '46119246', '90693936'],
  [1111111109, '07081804', '68084774', '25091201'],
  [1111111111, '14050471', '67062674', '99943326'],
  [1234567890, '89005924', '91819424', '93441116'],
  [2000000000, '69279037', '90698825', '38618901'],
  [20000000000, '65353130', '77737706', '47863826'],
];
const KEYS = {
  sha1: Buffer.from('12345678901234567890'),
  sha256: Buffer.from('12345678901234567890123456789012'),
  sha512: Buffer.from('1234567890123456789012345678901234567890123456789012345678901234'),
};

describe('TOTP (RFC 6238)', () => {
  it('matches every test vector of appendix B', () => {
    for (const [t, sha1, sha256, sha512] of RFC6238) {
      const step = totpStep(t * 1000);
      expect(hotp(KEYS.sha1, step, 8, 'sha1'), `sha1 T=${t}`).toBe(sha1);
      expect(hotp(KEYS.sha256, step, 8, 'sha256'), `sha256 T=${t}`).toBe(sha256);
      expect(hotp(KEYS.sha512, step, 8, 'sha512'), `sha512 T=${t}`).toBe(sha512);
    }
  });

  it('matches RFC 4226 HOTP values at 6 digits', () => {
    const want = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
    want.forEach((code, counter) => expect(hotp(KEYS.sha1, counter)).toBe(code));
  });

  it('encodes and decodes base32 as RFC 4648 (no padding)', () => {
    const vectors: [string, string][] = [
      ['', ''],
      ['f', 'MY'],
      ['fo', 'MZXQ'],
      ['foo', 'MZXW6'],
      ['foob', 'MZXW6YQ'],
      ['fooba', 'MZXW6YTB'],
      ['foobar', 'MZXW6YTBOI'],
    ];
    for (const [plain, enc] of vectors) {
      expect(base32Encode(Buffer.from(plain))).toBe(enc);
      expect(base32Decode(enc)?.toString()).toBe(plain);
    }
    expect(base32Decode('mzxw 6ytb oi==')?.toString()).toBe('foobar');
    expect(base32Decode('MZXW1')).toBeNull();
  });

  it('accepts the step before, now and after, nothing further, and each step once', () => {
    const secret = base32Encode(KEYS.sha1);
    const now = 1_700_000_000_000;
    const step = totpStep(now);
    const code = (s: number) => hotp(KEYS.sha1, s);
    for (const d of [-1, 0, 1]) expect(checkTotp(secret, code(step + d), now)).toBe(step + d);
    for (const d of [-3, -2, 2, 3]) expect(checkTotp(secret, code(step + d), now)).toBeNull();
    // Used up to `step`: that code and older ones are refused, the next step's still works.
    expect(checkTotp(secret, code(step), now, step)).toBeNull();
    expect(checkTotp(secret, code(step - 1), now, step)).toBeNull();
    expect(checkTotp(secret, code(step + 1), now, step)).toBe(step + 1);
    for (const bad of ['', '12345', '1234567', 'abcdef', ' 12345']) expect(checkTotp(secret, bad, now)).toBeNull();
  });

  it('writes the otpauth:// URI authenticator apps read', () => {
    const u = new URL(otpauthUri('JBSWY3DPEHPK3PXP', 'alice@example'));
    expect(u.protocol).toBe('otpauth:');
    expect(u.host).toBe('totp');
    expect(decodeURIComponent(u.pathname)).toBe('/Palisade:alice@example');
    expect(Object.fromEntries(u.searchParams)).toEqual({
      secret: 'JBSWY3DPEHPK3PXP',
      issuer: 'Palisade',
      algorithm: 'SHA1',
      digits: '6',
      period: '30',
    });
  });
});

describe('scrypt passwords', () => {
  it('are stored as scrypt$N$r$p$salt$hash with a fresh salt, and verify only with the right password', async () => {
    const a = await hashPassword('correct horse battery staple');
    const b = await hashPassword('correct horse battery staple');
    const m = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(a);
    expect(m).not.toBeNull();
    expect([Number(m![1]), Number(m![2]), Number(m![3])]).toEqual([SCRYPT_PARAMS.N, 8, 1]);
    expect(SCRYPT_PARAMS.N).toBe(2 ** 15);
    expect(Buffer.from(m![4], 'base64url')).toHaveLength(16);
    expect(Buffer.from(m![5], 'base64url')).toHaveLength(64);
    expect(a).not.toBe(b);
    expect(await verifyPassword('correct horse battery staple', a)).toBe(true);
    expect(await verifyPassword('correct horse battery staplE', a)).toBe(false);
    expect(await verifyPassword('', a)).toBe(false);
  });

  it('never verify against a missing or damaged record', async () => {
    const good = await hashPassword('correct horse battery staple');
    const damaged = [
      undefined,
      '',
      'plain',
      good.replace('scrypt$', 'bcrypt$'),
      good.replace(`$${2 ** 15}$`, '$1000$'), // N not a power of two
      good.replace(`$${2 ** 15}$`, `$${2 ** 24}$`), // N far too costly
      good.slice(0, -10),
    ];
    for (const stored of damaged) expect(await verifyPassword('correct horse battery staple', stored)).toBe(false);
  });

  it('refuses passwords under 12 characters', () => {
    expect(() => checkPassword('elevenchars')).toThrow(expect.objectContaining({ code: 'ERR_PASSWORD_WEAK' }));
    expect(() => checkPassword('twelve chars')).not.toThrow();
    expect(() => checkPassword('x'.repeat(1025))).toThrow(expect.objectContaining({ code: 'ERR_PASSWORD_WEAK' }));
  });

  it('run at most a few at once and refuse past the queue', async () => {
    const gate = new HashGate(1, 1);
    let release!: () => void;
    const first = gate.run(() => new Promise<void>((r) => (release = r)));
    const second = gate.run(async () => 'second');
    await expect(gate.run(async () => 'third')).rejects.toMatchObject({ code: 'ERR_SIGNIN_BUSY' });
    release();
    await first;
    expect(await second).toBe('second');
  });
});

describe('cookie and CSRF header checks', () => {
  it('find the session cookie among others, and compare the CSRF token exactly', () => {
    const t = 'A'.repeat(43);
    expect(sessionCookie(`a=1; __Host-palisade_session=${t}; b=2`)).toBe(t);
    expect(sessionCookie('__Host-palisade_sessionx=1; other=2')).toBeUndefined();
    expect(sessionCookie(undefined)).toBeUndefined();
    expect(sessionCookie(`palisade_session=${t}`)).toBeUndefined();
    expect(sessionCookie(`__Host-palisade_session=${t}; __Host-palisade_session=${'B'.repeat(43)}`)).toBe('');
    expect(csrfMatches('tok', 'tok')).toBe(true);
    expect(csrfMatches('tok2', 'tok')).toBe(false);
    expect(csrfMatches(undefined, 'tok')).toBe(false);
    expect(csrfMatches(['tok', 'tok'], 'tok')).toBe(false);
  });
});
