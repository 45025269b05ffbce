/**
 * Console sessions on main (docs/console.md). A session is an opaque 32-byte random value in the cookie
 * `__Host-palisade_session` (the prefix: Secure, Path=/, no Domain, so no sibling host can plant one; a request
 * carrying two is refused); main stores only its sha256, with the user, a CSRF token and its times. It ends after 30
 * minutes without a request (idle) or 12 hours after sign-in (absolute), at sign-out, when its user is removed,
 * and when the user's password changes (the session remembers the password's change time; any later change
 * voids it). Resolving a session yields the same Principal an API key of that user would (principalFor), so
 * the permission checks are the API keys' own: no second authorisation path. Not the sign-in (signin.ts).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { UnauthenticatedError } from '#common/errors.js';
import type { Registry, SessionRecord, UserRecord } from '../registry.js';
import { principalFor, type CustomRoleLookup, type Principal } from './api-keys.js';

export const SESSION_COOKIE = '__Host-palisade_session';
export const CSRF_HEADER = 'x-csrf-token';
export const SESSION_IDLE_MS = 30 * 60_000;
export const SESSION_ABSOLUTE_MS = 12 * 3_600_000;
/**
 * A session's last-seen time is written at most this often: a write per request would double the cost of
 * every console call, and the idle timeout needs no finer grain than a minute.
 */
const TOUCH_EVERY_MS = 60_000;
/** Expired sessions are swept from the store at most this often (at a sign-in). */
const SWEEP_EVERY_MS = 10 * 60_000;
/** 32 random bytes in base64url: exactly 43 characters. */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

export interface NewSession {
  /** The cookie value: shown to the browser once, never stored. */
  token: string;
  csrfToken: string;
  expiresAt: string;
}

export interface ResolvedSession {
  principal: Principal;
  csrfToken: string;
  expiresAt: string;
}

/** The value of the session cookie in a Cookie header, if any (the first one, as browsers send it). */
export function sessionCookie(header: string | string[] | undefined): string | undefined {
  const h = Array.isArray(header) ? header.join('; ') : header;
  if (!h) return undefined;
  let found: string | undefined;
  for (const part of h.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0 || part.slice(0, eq).trim() !== SESSION_COOKIE) continue;
    // Two session cookies (one planted by another origin or path): trust neither. '' is no token's shape,
    // so the caller's resolve() refuses it (401 ERR_SESSION_INVALID).
    if (found !== undefined) return '';
    found = part.slice(eq + 1).trim();
  }
  return found;
}

const COOKIE_FLAGS = 'HttpOnly; Secure; SameSite=Strict; Path=/';
export const setCookie = (token: string) => `${SESSION_COOKIE}=${token}; ${COOKIE_FLAGS}`;
export const clearCookie = () => `${SESSION_COOKIE}=; ${COOKIE_FLAGS}; Max-Age=0`;

/** Constant-time equality of the CSRF header and the session's token. */
export function csrfMatches(header: string | string[] | undefined, token: string): boolean {
  if (typeof header !== 'string') return false;
  const a = Buffer.from(header),
    b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export class SessionStore {
  private lastSweep = 0;

  constructor(
    private readonly registry: Registry,
    private readonly now: () => number = Date.now,
    private readonly idleMs = SESSION_IDLE_MS,
    private readonly absoluteMs = SESSION_ABSOLUTE_MS,
  ) {}

  async create(user: UserRecord, remote?: string): Promise<NewSession> {
    await this.sweep();
    const token = randomBytes(32).toString('base64url');
    const now = this.now();
    const rec: SessionRecord = {
      userId: user.id,
      csrfToken: randomBytes(32).toString('base64url'),
      createdAt: now,
      lastSeenAt: now,
      endsAt: now + this.absoluteMs,
      passwordStamp: user.passwordChangedAt ?? '',
      ...(remote ? { remote } : {}),
    };
    await this.registry.sessions.put(sha256(token), rec);
    return { token, csrfToken: rec.csrfToken, expiresAt: this.expiry(rec) };
  }

  /**
   * The principal behind a cookie value, or 401 ERR_SESSION_INVALID: unknown, idle too long, past its end,
   * its user removed or its password changed since. A dead session found here is deleted.
   */
  async resolve(token: string, custom?: CustomRoleLookup): Promise<ResolvedSession> {
    const dead = () =>
      new UnauthenticatedError('ERR_SESSION_INVALID', 'the session is unknown, expired or revoked: sign in again');
    if (!TOKEN_SHAPE.test(token)) throw dead();
    const key = sha256(token);
    const rec = await this.registry.sessions.get(key);
    if (!rec) throw dead();
    const user = await this.registry.users.get(rec.userId);
    const now = this.now();
    if (!user || !this.alive(rec, user, now)) {
      await this.registry.sessions.del(key);
      throw dead();
    }
    let current = rec;
    if (now - rec.lastSeenAt >= TOUCH_EVERY_MS) {
      current = { ...rec, lastSeenAt: now };
      await this.registry.sessions.put(key, current);
    }
    const expiresAt = this.expiry(current);
    const principal: Principal = {
      ...principalFor(user, `session:${key.slice(0, 12)}`, custom),
      session: { key, csrfToken: rec.csrfToken, expiresAt },
    };
    return { principal, csrfToken: rec.csrfToken, expiresAt };
  }

  /** Whether the session `key` (its sha256) still stands, without touching it (long-lived streams ask this). */
  async stillValid(key: string): Promise<boolean> {
    const rec = await this.registry.sessions.get(key);
    const user = rec && (await this.registry.users.get(rec.userId));
    return !!rec && !!user && this.alive(rec, user, this.now());
  }

  async revoke(key: string): Promise<void> {
    await this.registry.sessions.del(key);
  }

  /** Ends every session of a user (password changed, user removed); returns how many. */
  async revokeUser(userId: string): Promise<number> {
    const gone: string[] = [];
    for await (const [k, v] of this.registry.sessions.iterator()) if (v.userId === userId) gone.push(k);
    if (gone.length) await this.registry.sessions.batch(gone.map((key) => ({ type: 'del' as const, key })));
    return gone.length;
  }

  private alive(rec: SessionRecord, user: UserRecord, now: number): boolean {
    return (
      !user.disabledAt &&
      (user.passwordChangedAt ?? '') === rec.passwordStamp &&
      now < rec.endsAt &&
      now - rec.lastSeenAt < this.idleMs
    );
  }

  /** When the session ends if unused from now on: the idle limit, or its absolute end if sooner. */
  private expiry(rec: SessionRecord): string {
    return new Date(Math.min(rec.endsAt, rec.lastSeenAt + this.idleMs)).toISOString();
  }

  private async sweep(): Promise<void> {
    const now = this.now();
    if (now - this.lastSweep < SWEEP_EVERY_MS) return;
    this.lastSweep = now;
    const gone: string[] = [];
    for await (const [k, v] of this.registry.sessions.iterator())
      if (now >= v.endsAt || now - v.lastSeenAt >= this.idleMs) gone.push(k);
    if (gone.length) await this.registry.sessions.batch(gone.map((key) => ({ type: 'del' as const, key })));
  }
}
