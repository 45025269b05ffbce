/**
 * Changing one's own console password (docs/access.md#console-sign-in): through a session it needs the current one,
 * a wrong one changes nothing and counts into the sign-in throttle; an admin key with users:write sets another's.
 * Real main over TLS; its own deployment, so console-auth.test.ts's throttle and sessions are not disturbed.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Deployment } from '../harness/deployment.js';
import { call, ConsoleSession } from '../harness/console-session.js';

const LIMIT = 20;
const ALICE_PW = 'correct horse battery staple';
const CARL_PW = 'acme-customer-pass-1';
let d: Deployment;

beforeAll(async () => {
  d = await Deployment.create({ mainConfig: { authFailuresPerMinute: LIMIT } });
  await d.install('host', 'ph');
  await d.startAgent('ph');
  await d.createTenant('acme', 'ph');
  await d.createUser({ name: 'alice', roles: ['admin'] });
  await d.createUser({ name: 'carl', roles: ['read-write'], tenant: 'acme' });
  for (const [name, password] of [
    ['alice', ALICE_PW],
    ['carl', CARL_PW],
  ])
    expect((await d.api('PUT', `/users/${name}/password`, { password })).status).toBe(200);
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

const signIn = (name: string, password: string, totp?: string) => ConsoleSession.signIn(d, name, password, totp);

describe('changing your own password', () => {
  type Err = { error: { code: string; message: string } };
  const put = (s: ConsoleSession, body: unknown, localAddress?: string) =>
    call<Err & { sessionsEnded: number }>(d, 'PUT', '/users/alice/password', {
      body,
      cookie: s.cookie,
      headers: { 'x-csrf-token': s.info.csrfToken },
      localAddress,
    });

  it('through a session needs the current password; a wrong one changes nothing and is throttled', async () => {
    const s = await signIn('alice', ALICE_PW);
    const missing = await put(s, { password: 'alice-took-over-1' });
    expect(missing.status).toBe(400);
    expect(missing.body.error.code).toBe('ERR_PASSWORD_CURRENT_MISSING');
    expect(missing.body.error.message).toContain('current');
    const from = '127.0.0.3';
    for (let i = 0; i < LIMIT; i++) {
      const wrong = await put(s, { password: 'alice-took-over-1', current: `wrong-current-${i}` }, from);
      expect(wrong.status).toBe(403);
      expect(wrong.body.error.code).toBe('ERR_PASSWORD_CURRENT');
    }
    // Blocked from that address now, even with the right current password.
    const blocked = await put(s, { password: 'alice-took-over-1', current: ALICE_PW }, from);
    expect(blocked.status).toBe(429);
    expect(blocked.body.error.code).toBe('ERR_AUTH_THROTTLED');
    // Nothing changed: the old password still signs in, the session still works.
    expect((await s.request('GET', '/tenants')).status).toBe(200);
    expect((await signIn('alice', ALICE_PW)).info.user.name).toBe('alice');
    const audit = await d.api<{ action: string; outcome: string }[]>('GET', '/audit?limit=1000');
    expect(audit.body.some((a) => a.action === 'user.password' && a.outcome === 'denied')).toBe(true);
    expect(JSON.stringify(audit.body)).not.toContain('wrong-current-1');

    const ok = await put(s, { password: 'alice-second-password', current: ALICE_PW });
    expect(ok.status).toBe(200);
    await expect(signIn('alice', ALICE_PW)).rejects.toThrow(/401/);
    const again = await signIn('alice', 'alice-second-password');
    expect((await put(again, { password: ALICE_PW, current: 'alice-second-password' })).status).toBe(200);
  });

  it("an admin key with users:write sets another user's password without the current one", async () => {
    const r = await d.api('PUT', '/users/carl/password', { password: 'carl-new-password-2' });
    expect(r.status).toBe(200);
    expect((await signIn('carl', 'carl-new-password-2')).info.user.name).toBe('carl');
    expect((await d.api('PUT', '/users/carl/password', { password: CARL_PW })).status).toBe(200);
  });
});
