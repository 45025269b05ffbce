/**
 * Sign-in back-off on a real main over TLS: an account that failed 5 times in a row (wrong passwords or TOTP
 * codes) waits before its next attempt is checked (429 ERR_SIGNIN_BACKOFF with Retry-After), even with the right
 * password, while other accounts sign in; a success clears the count; and one address gets one sign-in checked
 * at a time (ERR_SIGNIN_CONCURRENT) while another address is not held up.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { Deployment } from '../harness/deployment.js';
import { call, ConsoleSession } from '../harness/console-session.js';
import { base32Decode, hotp, totpStep } from '../../main/access/totp.js';

let d: Deployment;
const users = { bob: 'bob-password-123', cleo: 'cleo-password-123', tess: 'tess-password-123' };

beforeAll(async () => {
  d = await Deployment.create({ mainConfig: { authFailuresPerMinute: 1000 } });
  for (const [name, password] of Object.entries(users)) {
    await d.createUser({ name, roles: ['viewer'] });
    expect((await d.api('PUT', `/users/${name}/password`, { password })).status).toBe(200);
  }
}, 120_000);
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

type Err = { error: { code: string } };
const attempt = (name: string, password: string, totp?: string, localAddress = '127.0.0.3') =>
  call<Err>(d, 'POST', '/session', { body: { name, password, ...(totp ? { totp } : {}) }, localAddress });

describe('per-account back-off', () => {
  it('makes an account wait after 5 failures, right password or not, and a success clears it', async () => {
    for (let i = 0; i < 5; i++) expect((await attempt('bob', `wrong-${i}`)).status).toBe(401);
    const held = await attempt('bob', users.bob);
    expect(held.status).toBe(429);
    expect(held.body.error.code).toBe('ERR_SIGNIN_BACKOFF');
    expect(Number(held.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // Another account, from the same address, is not held.
    expect((await attempt('cleo', users.cleo)).status).toBe(200);
    await sleep(Number(held.headers['retry-after']) * 1000 + 100);
    expect((await attempt('bob', users.bob)).status).toBe(200);
    // Cleared: the next wrong password is a plain failure again.
    expect((await attempt('bob', 'wrong-again')).status).toBe(401);
    expect((await attempt('bob', users.bob)).status).toBe(200);
  });

  it('counts wrong TOTP codes too', async () => {
    const s = await ConsoleSession.signIn(d, 'tess', users.tess);
    const on = await s.request<{ secret: string }>('POST', '/users/tess/totp');
    expect(on.status).toBe(200);
    const good = hotp(base32Decode(on.body.secret)!, totpStep(Date.now()));
    const wrong = String((Number(good) + 7) % 1_000_000).padStart(6, '0');
    for (let i = 0; i < 5; i++)
      expect((await attempt('tess', users.tess, wrong)).body.error.code).toBe('ERR_SIGNIN_FAILED');
    const held = await attempt('tess', users.tess, good);
    expect(held.status).toBe(429);
    expect(held.body.error.code).toBe('ERR_SIGNIN_BACKOFF');
  });
});

describe('one sign-in checked at a time per address', () => {
  it('answers a concurrent one from the same address 429, not one from another address', async () => {
    const same = await Promise.all(
      Array.from({ length: 4 }, () => attempt('cleo', users.cleo, undefined, '127.0.0.4')),
    );
    const codes = same.map((r) => (r.status === 200 ? 'ok' : r.body.error.code));
    expect(codes).toContain('ok');
    expect(codes).toContain('ERR_SIGNIN_CONCURRENT');
    expect(codes.every((c) => c === 'ok' || c === 'ERR_SIGNIN_CONCURRENT')).toBe(true);
    const apart = await Promise.all(['127.0.0.5', '127.0.0.6'].map((a) => attempt('cleo', users.cleo, undefined, a)));
    expect(apart.map((r) => r.status)).toEqual([200, 200]);
  });
});
