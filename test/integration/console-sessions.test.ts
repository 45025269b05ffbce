/**
 * Console sessions over a real registry (LevelDB in a temp dir) with a fake clock: a session lives while used
 * and at most 12 h, dies after 30 min unused, at revocation, when its user is removed or its password changes;
 * the store holds only the cookie's sha256, never the cookie; malformed cookies are refused before any lookup.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry, type UserRecord } from '../../main/registry.js';
import { SessionStore, SESSION_ABSOLUTE_MS, SESSION_IDLE_MS } from '../../main/access/sessions.js';

const MIN = 60_000;
let dir: string;
let registry: Registry;
let now = Date.parse('2026-12-01T08:00:00Z');
const clock = () => now;
let store: SessionStore;
const user: UserRecord = { id: 'usr_1', name: 'alice', roles: ['admin'], createdAt: '2026-01-01T00:00:00Z' };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-sessions-'));
  registry = new Registry(join(dir, 'registry'));
  await registry.open();
});
afterAll(async () => {
  await registry?.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  await registry.users.put(user.id, user);
  store = new SessionStore(registry, clock);
});

const refused = { code: 'ERR_SESSION_INVALID' };

describe('console sessions', () => {
  it('stay alive while used, up to 12 hours after sign-in, and say when they end', async () => {
    const s = await store.create(user);
    expect(Date.parse(s.expiresAt)).toBe(now + SESSION_IDLE_MS);
    const end = now + SESSION_ABSOLUTE_MS;
    const r = await store.resolve(s.token);
    expect(r.principal.user.name).toBe('alice');
    expect(r.principal.permissions.has('users:write')).toBe(true);
    expect(r.csrfToken).toBe(s.csrfToken);
    while (now + 25 * MIN < end) {
      now += 25 * MIN;
      expect(Date.parse((await store.resolve(s.token)).expiresAt)).toBe(Math.min(end, now + SESSION_IDLE_MS));
    }
    now = end;
    await expect(store.resolve(s.token)).rejects.toMatchObject(refused);
  });

  it('end after 30 minutes unused', async () => {
    const s = await store.create(user);
    now += SESSION_IDLE_MS - MIN;
    await store.resolve(s.token);
    now += SESSION_IDLE_MS;
    await expect(store.resolve(s.token)).rejects.toMatchObject(refused);
    now -= SESSION_IDLE_MS; // dead sessions are deleted, not merely refused
    await expect(store.resolve(s.token)).rejects.toMatchObject(refused);
  });

  it('end when revoked, when the password changes and when the user is removed', async () => {
    const a = await store.create(user);
    const b = await store.create(user);
    await store.revoke((await store.resolve(a.token)).principal.session!.key);
    await expect(store.resolve(a.token)).rejects.toMatchObject(refused);
    expect((await store.resolve(b.token)).principal.user.id).toBe(user.id);

    await registry.users.put(user.id, { ...user, passwordChangedAt: new Date(now).toISOString() });
    await expect(store.resolve(b.token)).rejects.toMatchObject(refused);
    const c = await store.create((await registry.users.get(user.id))!);
    expect((await store.resolve(c.token)).principal.user.id).toBe(user.id);
    expect(await store.revokeUser(user.id)).toBeGreaterThanOrEqual(1);
    await expect(store.resolve(c.token)).rejects.toMatchObject(refused);

    const d = await store.create(user);
    await registry.users.put(user.id, { ...user, disabledAt: new Date(now).toISOString() });
    await expect(store.resolve(d.token)).rejects.toMatchObject(refused);
  });

  it('store the cookie only as its sha256, and refuse malformed cookies', async () => {
    const s = await store.create(user);
    const keys = await registry.sessions.keys().all();
    const values = JSON.stringify(await registry.sessions.values().all());
    expect(keys).toContain(createHash('sha256').update(s.token).digest('hex'));
    expect(keys.join()).not.toContain(s.token);
    expect(values).not.toContain(s.token);
    for (const bad of ['', 'x', s.token + 'A', s.token.slice(1), `${s.token.slice(0, 42)}!`])
      await expect(store.resolve(bad)).rejects.toMatchObject(refused);
  });
});
