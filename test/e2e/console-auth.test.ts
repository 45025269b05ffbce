/**
 * Console sign-in on a real main over TLS, with a host and two tenants: passwords set through the API, sign-in
 * sets the session cookie with every flag, the cookie reaches routes under the same permissions as a key,
 * changes need the CSRF header (and without it change nothing), failed sign-ins get one answer, count into
 * the throttle and are audited without the password, TOTP is asked for, accepted and never twice, sign-out
 * and a new password end sessions, and a customer user's cookie reaches its own tenant only. No password
 * reaches main's log.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Deployment } from '../harness/deployment.js';
import { runCli, until } from '../harness/processes.js';
import { logLines } from '../harness/log-lines.js';
import { filesContaining } from '../harness/data-scan.js';
import { call, cookieOf, ConsoleSession, EventStream, type SessionBody } from '../harness/console-session.js';
import { base32Decode, hotp, totpStep } from '../../main/access/totp.js';

const LIMIT = 20;
const ALICE_PW = 'correct horse battery staple';
const CARL_PW = 'acme-customer-pass-1';
let d: Deployment;

beforeAll(async () => {
  d = await Deployment.create({ mainConfig: { authFailuresPerMinute: LIMIT } });
  await d.install('host', 'ch');
  await d.startAgent('ch');
  await d.createTenant('acme', 'ch');
  await d.createTenant('globex', 'ch');
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
const codeAt = (secret: string, step: number) => hotp(base32Decode(secret)!, step);

describe('sign-in and the session cookie', () => {
  it('sets an HttpOnly, Secure, SameSite=Strict cookie and answers who signed in', async () => {
    const r = await call<SessionBody>(d, 'POST', '/session', { body: { name: 'alice', password: ALICE_PW } });
    expect(r.status).toBe(200);
    const set = r.headers['set-cookie']!.find((c) => c.startsWith('__Host-palisade_session='))!;
    expect(set).toMatch(/^__Host-palisade_session=[A-Za-z0-9_-]{43}; /);
    for (const flag of ['HttpOnly', 'Secure', 'SameSite=Strict', 'Path=/']) expect(set.split('; ')).toContain(flag);
    expect(r.body.user).toMatchObject({ name: 'alice', tenant: null, roles: ['admin'] });
    expect(r.body.user.permissions).toContain('users:write');
    expect(r.body.csrfToken).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    const ends = Date.parse(r.body.expiresAt) - Date.now();
    expect(ends).toBeGreaterThan(29 * 60_000);
    expect(ends).toBeLessThanOrEqual(30 * 60_000);
    expect(r.headers['x-frame-options']).toBe('DENY');

    const me = await call<SessionBody>(d, 'GET', '/session', { cookie: cookieOf(r) });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ user: { name: 'alice' }, csrfToken: r.body.csrfToken });
  });

  it('reaches existing routes with the same permissions as a key', async () => {
    const s = await signIn('alice', ALICE_PW);
    const tenants = await s.request<{ name: string }[]>('GET', '/tenants');
    expect(tenants.status).toBe(200);
    expect(tenants.body.map((t) => t.name).sort()).toEqual(['acme', 'globex']);
    expect((await s.request('GET', '/tenants/globex/api/incidents')).status).toBe(200);
    expect((await call(d, 'GET', '/session')).status).toBe(401);
  });

  it('refuses a change without the CSRF token, changing nothing; with it the change is made', async () => {
    const s = await signIn('alice', ALICE_PW);
    for (const csrf of [false, 'x'.repeat(43), s.info.csrfToken.slice(1)]) {
      const r = await s.request<{ error: { code: string } }>(
        'POST',
        '/users',
        { name: 'mallory', roles: ['admin'] },
        csrf,
      );
      expect(r.status).toBe(403);
      expect(r.body.error.code).toBe('ERR_CSRF');
    }
    const relayed = await s.request(
      'POST',
      '/tenants/acme/api/incidents',
      { name: 'x', type: 'y', severity: 1 },
      false,
    );
    expect(relayed.status).toBe(403);
    const users = await d.api<{ name: string }[]>('GET', '/users');
    expect(users.body.map((u) => u.name)).not.toContain('mallory');
    const incidents = await d.api<{ items?: unknown[] } | unknown[]>('GET', '/tenants/acme/api/incidents');
    expect(JSON.stringify(incidents.body)).not.toContain('"name":"x"');

    const ok = await s.request<{ name: string }>('POST', '/users', { name: 'mallory', roles: ['viewer'] });
    expect(ok.status).toBe(201);
    // A key needs no CSRF token; neither does a read with the cookie.
    expect((await d.api('DELETE', '/users/mallory')).status).toBe(200);
    const audit = await d.api<{ action: string; outcome: string }[]>('GET', '/audit?action=auth.csrf');
    expect(audit.body.filter((a) => a.outcome === 'denied').length).toBeGreaterThanOrEqual(4);
  });

  it('signs out: the cookie is cleared, and the old one no longer works anywhere', async () => {
    const s = await signIn('alice', ALICE_PW);
    expect((await s.request('DELETE', '/session', undefined, false)).status).toBe(403);
    const out = await s.request('DELETE', '/session');
    expect(out.status).toBe(204);
    expect(out.headers['set-cookie']?.[0]).toMatch(/^__Host-palisade_session=;.*Max-Age=0/);
    const again = await s.request<{ error: { code: string } }>('GET', '/session');
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe('ERR_SESSION_INVALID');
    expect((await s.request('GET', '/tenants')).status).toBe(401);
  });

  it('refuses a request carrying two session cookies, and no longer reads the old cookie name', async () => {
    const s = await signIn('alice', ALICE_PW);
    expect((await call(d, 'GET', '/session', { cookie: s.cookie })).status).toBe(200);
    const other = await signIn('carl', CARL_PW);
    const two = await call<{ error: { code: string } }>(d, 'GET', '/tenants', {
      cookie: `${other.cookie}; ${s.cookie}`,
    });
    expect(two.status).toBe(401);
    expect(two.body.error.code).toBe('ERR_SESSION_INVALID');
    const token = s.cookie.split('=')[1];
    expect((await call(d, 'GET', '/session', { cookie: `palisade_session=${token}` })).status).toBe(401);
  });

  it('ends the sessions of a user whose password changes', async () => {
    const s = await signIn('alice', ALICE_PW);
    const r = await s.request<{ sessionsEnded: number }>('PUT', '/users/alice/password', {
      password: ALICE_PW,
      current: ALICE_PW,
    });
    expect(r.status).toBe(200);
    expect(r.body.sessionsEnded).toBeGreaterThanOrEqual(1);
    expect((await s.request('GET', '/tenants')).status).toBe(401);
    expect((await signIn('alice', ALICE_PW)).info.user.name).toBe('alice');
  });

  it("refuses passwords under 12 characters, and another user's password without users:write", async () => {
    const short = await d.api<{ error: { code: string } }>('PUT', '/users/alice/password', { password: 'short' });
    expect(short.status).toBe(400);
    expect(short.body.error.code).toBe('ERR_PASSWORD_WEAK');
    const carl = await signIn('carl', CARL_PW);
    const other = await carl.request<{ error: { code: string } }>('PUT', '/users/alice/password', {
      password: 'carl-owns-alice-now',
    });
    expect(other.status).toBe(403);
    expect((await signIn('alice', ALICE_PW)).info.user.name).toBe('alice');
  });
});

describe('failed sign-ins', () => {
  const from = '127.0.0.2';
  const attempt = (name: string, password: string) =>
    call<{ error: { code: string; message: string } }>(d, 'POST', '/session', {
      body: { name, password },
      localAddress: from,
    });

  it('get one answer for a wrong name or password, are audited without it, and are throttled', async () => {
    const wrongPw = await attempt('alice', 'not-alices-password-1');
    const noUser = await attempt('nobody-here', 'not-alices-password-2');
    for (const r of [wrongPw, noUser]) {
      expect(r.status).toBe(401);
      expect(r.body.error.code).toBe('ERR_SIGNIN_FAILED');
      expect(cookieOf(r)).toBeUndefined();
    }
    expect(wrongPw.body.error.message).toBe(noUser.body.error.message);
    // Spread over names: each account stays under its own back-off (signin-backoff.test.ts).
    for (let i = 2; i < LIMIT; i++) expect((await attempt(`user-${i}`, `wrong-password-${i}`)).status).toBe(401);
    // Blocked now, even with the right password, from this address only.
    const blocked = await attempt('alice', ALICE_PW);
    expect(blocked.status).toBe(429);
    expect(blocked.body.error.code).toBe('ERR_AUTH_THROTTLED');
    expect((await signIn('alice', ALICE_PW)).info.user.name).toBe('alice');

    const audit = await d.api<{ action: string; outcome: string; target?: string }[]>('GET', '/audit?limit=1000');
    const denied = audit.body.filter((a) => a.action === 'auth.signin' && a.outcome === 'denied');
    expect(denied.map((a) => a.target)).toEqual(expect.arrayContaining(['alice', 'nobody-here']));
    expect(audit.body.some((a) => a.action === 'auth.signin' && a.outcome === 'ok')).toBe(true);
    expect(audit.body.filter((a) => a.action === 'auth.throttle')).toHaveLength(1);
    const text = JSON.stringify(audit.body);
    for (const pw of [ALICE_PW, 'not-alices-password-1', 'wrong-password-3']) expect(text).not.toContain(pw);
  });
});

describe('TOTP', () => {
  it('is asked for after the right password, accepted once per code, and refused when wrong', async () => {
    const s = await signIn('carl', CARL_PW);
    const on = await s.request<{ secret: string; uri: string }>('POST', '/users/carl/totp');
    expect(on.status).toBe(200);
    expect(on.body.uri).toMatch(/^otpauth:\/\/totp\/Palisade:carl\?secret=[A-Z2-7]+&issuer=Palisade/);
    const secret = on.body.secret;
    // Sealed at rest under pki/secrets-key (0600): the registry files (LevelDB .log/.ldb) never hold the secret.
    expect(await filesContaining(join(d.mainDir, 'registry'), secret)).toEqual([]);
    expect(await filesContaining(d.mainDir, secret)).toEqual([]);
    expect(statSync(join(d.mainDir, 'pki', 'secrets-key')).mode & 0o777).toBe(0o600);

    const none = await call<{ error: { code: string } }>(d, 'POST', '/session', {
      body: { name: 'carl', password: CARL_PW },
    });
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe('ERR_TOTP_REQUIRED');
    // Without the right password, no hint that a code is needed.
    const wrongPw = await call<{ error: { code: string } }>(d, 'POST', '/session', {
      body: { name: 'carl', password: 'wrong-password-xyz' },
    });
    expect(wrongPw.body.error.code).toBe('ERR_SIGNIN_FAILED');

    const step = totpStep(Date.now());
    const wrong = String((Number(codeAt(secret, step)) + 1) % 1_000_000).padStart(6, '0');
    const bad = await call<{ error: { code: string } }>(d, 'POST', '/session', {
      body: { name: 'carl', password: CARL_PW, totp: wrong },
    });
    expect(bad.body.error.code).toBe('ERR_SIGNIN_FAILED');

    const code = codeAt(secret, step);
    const ok = await signIn('carl', CARL_PW, code);
    expect(ok.info.user.name).toBe('carl');
    const replay = await call<{ error: { code: string } }>(d, 'POST', '/session', {
      body: { name: 'carl', password: CARL_PW, totp: code },
    });
    expect(replay.status).toBe(401);
    expect(replay.body.error.code).toBe('ERR_SIGNIN_FAILED');
    // An older step's code is refused once a later one was used.
    const older = await call(d, 'POST', '/session', {
      body: { name: 'carl', password: CARL_PW, totp: codeAt(secret, step - 1) },
    });
    expect(older.status).toBe(401);

    expect((await ok.request('DELETE', '/users/carl/totp')).status).toBe(200);
    expect((await signIn('carl', CARL_PW)).info.user.name).toBe('carl');
  });
});

describe("a customer user's session", () => {
  it('reaches its own tenant and no other, as its key would', async () => {
    const s = await signIn('carl', CARL_PW);
    expect(s.info.user).toMatchObject({ tenant: 'acme', permissions: ['search:read', 'tenants:relay'] });
    expect((await s.request('GET', '/tenants/acme/api/incidents')).status).toBe(200);
    const other = await s.request<{ error: { code: string } }>('GET', '/tenants/globex/api/incidents');
    const key = await d.createKey('carl');
    const byKey = await d.api('GET', '/tenants/globex/api/incidents', undefined, { key });
    // The relay answers a tenant out of reach as one that does not exist (404), cookie or key alike.
    expect(other.status).toBe(404);
    expect(other.body.error.code).toBe('ERR_TENANT_NOT_FOUND');
    expect(byKey.status).toBe(404);
    expect((await s.request('GET', '/tenants')).status).toBe(403);
    expect((await s.request('GET', '/users')).status).toBe(403);
  });

  it('ends when the user is removed', async () => {
    await d.createUser({ name: 'dora', roles: ['read-only'], tenant: 'acme' });
    expect((await d.api('PUT', '/users/dora/password', { password: 'dora-password-123' })).status).toBe(200);
    const s = await signIn('dora', 'dora-password-123');
    expect((await s.request('GET', '/tenants/acme/api/incidents')).status).toBe(200);
    expect((await d.api('DELETE', '/users/dora')).status).toBe(200);
    expect((await s.request('GET', '/tenants/acme/api/incidents')).status).toBe(401);
  });
});

interface OverviewBody {
  hosts: { name: string }[];
  engines: unknown[];
  tenants: { name: string; status: string; host: string; labels: string[]; publicKey?: string }[];
}
const latest = (s: EventStream) => s.events.filter((e) => e.event === 'overview').at(-1)?.data as OverviewBody;

describe('the overview', () => {
  it('shows staff every host and tenant, and a customer user its own tenant only', async () => {
    const staff = await (await signIn('alice', ALICE_PW)).request<OverviewBody>('GET', '/overview');
    expect(staff.status).toBe(200);
    expect(staff.body.hosts.map((h) => h.name)).toEqual(['ch']);
    expect(staff.body.tenants.map((t) => t.name)).toEqual(['acme', 'globex']);
    expect(staff.body.tenants[0].publicKey).toEqual(expect.any(String));
    const byKey = await d.api<OverviewBody>('GET', '/overview');
    expect(byKey.body.tenants.map((t) => t.name)).toEqual(['acme', 'globex']);

    const customer = await (await signIn('carl', CARL_PW)).request<OverviewBody>('GET', '/overview');
    expect(customer.status).toBe(200);
    expect(customer.body).toMatchObject({
      hosts: [],
      engines: [],
      tenants: [{ name: 'acme', status: 'running', host: 'ch', labels: [] }],
    });
    // A summary, and its event counts (numbers, null until the tenant's first report): nothing else.
    expect(Object.keys(customer.body.tenants[0]!).sort()).toEqual(['events', 'host', 'labels', 'name', 'status']);
    const forged = await d.api('GET', '/overview', undefined, { key: `ptk_acme~${'A'.repeat(12)}.${'B'.repeat(43)}` });
    expect(forged.status).toBe(403);
  });

  it('streams changes to those who may see them, and ends when the session does', async () => {
    const alice = await signIn('alice', ALICE_PW);
    const carl = await signIn('carl', CARL_PW);
    const staff = await EventStream.open(d, '/overview/stream', { cookie: alice.cookie });
    const customer = await EventStream.open(d, '/overview/stream', { cookie: carl.cookie });
    const bearer = await EventStream.open(d, '/overview/stream', { key: d.apiKey });
    expect(staff.status).toBe(200);
    expect(staff.headers['content-type']).toMatch(/^text\/event-stream/);
    await until('first events', async () => (latest(staff) && latest(customer) && latest(bearer)) || undefined, 10_000);
    expect(latest(customer).tenants.map((t) => t.name)).toEqual(['acme']);
    expect(latest(staff).tenants.map((t) => t.name)).toEqual(['acme', 'globex']);

    expect((await d.api('PATCH', '/tenants/globex', { labels: ['gold'] })).status).toBe(200);
    const changed = (s: EventStream) =>
      latest(s)
        .tenants.find((t) => t.name === 'globex')
        ?.labels.includes('gold') || undefined;
    await until('globex labelled in the staff streams', async () => changed(staff) && changed(bearer), 10_000);
    expect(customer.events.every((e) => !JSON.stringify(e.data).includes('globex'))).toBe(true);

    expect((await carl.request('DELETE', '/session')).status).toBe(204);
    await until('the signed-out stream ended', async () => customer.ended || undefined, 15_000);
    expect(staff.ended).toBe(false);
    staff.destroy();
    bearer.destroy();
  });
});

describe('the overview stream, left alone', () => {
  it('sends a keep-alive comment within 15 s when nothing changes', async () => {
    const carl = await signIn('carl', CARL_PW);
    const s = await EventStream.open(d, '/overview/stream', { cookie: carl.cookie });
    await until('first event', async () => latest(s) || undefined, 10_000);
    const events = s.events.length;
    await until('a keep-alive comment', async () => s.comments > 0 || undefined, 20_000, 250);
    expect(s.events.length).toBe(events);
    expect(s.ended).toBe(false);
    s.destroy();
  });
});

describe('overview streams per user', () => {
  it('are at most 8 at once (429 ERR_OVERVIEW_STREAMS), and a closed one frees its place', async () => {
    await d.createUser({ name: 'frank', roles: ['read-only'], tenant: 'acme' });
    expect((await d.api('PUT', '/users/frank/password', { password: 'frank-password-1' })).status).toBe(200);
    const frank = await signIn('frank', 'frank-password-1');
    const open = [];
    for (let i = 0; i < 8; i++) open.push(await EventStream.open(d, '/overview/stream', { cookie: frank.cookie }));
    expect(open.map((x) => x.status)).toEqual(Array(8).fill(200));
    const ninth = await frank.request<{ error: { code: string } }>('GET', '/overview/stream');
    expect(ninth.status).toBe(429);
    expect(ninth.body.error.code).toBe('ERR_OVERVIEW_STREAMS');
    open.pop()!.destroy();
    const again = await until(
      'a place freed',
      async () => {
        const x = await EventStream.open(d, '/overview/stream', { cookie: frank.cookie });
        if (x.status === 200) return x;
        x.destroy();
        return undefined;
      },
      10_000,
      200,
    );
    for (const x of [...open, again]) x.destroy();
  });
  it('count a stream from the moment it is admitted: 9 opened at once for one user get one 429', async () => {
    await d.createUser({ name: 'gina', roles: ['read-only'], tenant: 'acme' });
    expect((await d.api('PUT', '/users/gina/password', { password: 'gina-password-1' })).status).toBe(200);
    const gina = await signIn('gina', 'gina-password-1');
    const all = await Promise.all(
      Array.from({ length: 9 }, () => EventStream.open(d, '/overview/stream', { cookie: gina.cookie })),
    );
    expect(all.map((x) => x.status).sort()).toEqual([...Array(8).fill(200), 429]);
    for (const x of all) x.destroy();
  });
});

describe('the CLI', () => {
  it('sets a password from stdin, turns TOTP on and off, and refuses a non-terminal without --password-stdin', async () => {
    await d.createUser({ name: 'erin', roles: ['viewer'] });
    const set = await runCli(
      ['users', 'passwd', 'erin', '--password-stdin', '--json'],
      d.env,
      60_000,
      'erin-password-42\n',
    );
    expect(set.code, set.stderr).toBe(0);
    expect(set.json).toMatchObject({ name: 'erin', sessionsEnded: 0 });
    expect((await signIn('erin', 'erin-password-42')).info.user).toMatchObject({ name: 'erin', roles: ['viewer'] });

    const short = await runCli(['users', 'passwd', 'erin', '--password-stdin'], d.env, 60_000, 'short\n');
    expect(short.code).toBe(2);
    expect(short.stderr.trim().split('\n')).toHaveLength(1);
    const noTty = await runCli(['users', 'passwd', 'erin', '--json'], d.env);
    expect(noTty.code).toBe(2);
    expect((noTty.json as { error: { code: string } }).error.code).toBe('ERR_CLI_MISSING');

    const on = await runCli(['users', 'totp', 'erin', '--enable', '--json'], d.env);
    expect(on.code).toBe(0);
    const { secret, uri } = on.json as { secret: string; uri: string };
    const listed = await runCli(['users', 'list', '--json'], d.env);
    const erin = (listed.json as Record<string, unknown>[]).find((u) => u.name === 'erin');
    expect(erin).toMatchObject({ password: true, totp: true });
    expect(listed.stdout).not.toContain('scrypt$');
    expect(listed.stdout).not.toContain(secret);
    expect(uri).toContain(`secret=${secret}`);
    const text = await runCli(['users', 'totp', 'erin', '--enable'], d.env);
    expect(text.stdout).toMatch(/^otpauth:\/\/totp\/Palisade:erin\?/);
    const latest = /secret: ([A-Z2-7]+)/.exec(text.stdout)![1];
    const code = codeAt(latest, totpStep(Date.now()));
    expect((await signIn('erin', 'erin-password-42', code)).info.user.name).toBe('erin');
    const off = await runCli(['users', 'totp', 'erin', '--disable', '--json'], d.env);
    expect(off.json).toMatchObject({ name: 'erin', changed: true });
    expect((await signIn('erin', 'erin-password-42')).info.user.name).toBe('erin');
  });
});

describe('logs', () => {
  it('never carry a password', async () => {
    const audits = await logLines(d.mainLog, { msg: 'audit' });
    const signins = audits.filter((l) => (l.audit as { action?: string }).action === 'auth.signin');
    expect(signins.length).toBeGreaterThan(10);
    const log = readFileSync(d.mainLog, 'utf8');
    for (const pw of [ALICE_PW, CARL_PW, 'dora-password-123', 'not-alices-password-1', 'erin-password-42'])
      expect(log).not.toContain(pw);
  });
});
