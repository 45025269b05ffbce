/**
 * A user's console credentials on main: setting the password (scrypt, passwords.ts) and turning the TOTP
 * second factor on and off (totp.ts). A user may change their own; anyone else needs `users:write`. A new
 * password ends every session of the user (the current one too: sign in again with it). Every change is
 * audited, never with the password or the secret. Not the sign-in (signin.ts).
 *
 * Changing one's OWN password also needs the current one (`current`), so a console left signed in (or a
 * stolen cookie) cannot take the account over. The one exception: an API key with users:write (automation,
 * which may set anyone's password anyway). A wrong current password counts into the sign-in throttle, like a
 * wrong sign-in, and is audited; a user with no password yet (set up by a key) needs none.
 */
import { AccessDeniedError, BadParameterError, ConflictError } from '#common/errors.js';
import type { Registry, UserRecord } from '../registry.js';
import type { AccessService } from './access.js';
import type { Principal } from './api-keys.js';
import type { AuditLog } from './audit.js';
import { auditThrottled, tooManyFailures, type AuthFailureThrottle } from './auth-throttle.js';
import { checkPassword, hashPassword, HashGate, verifyPassword } from './passwords.js';
import type { SecretBox } from './secret-box.js';
import type { SessionStore } from './sessions.js';
import { newTotpSecret, otpauthUri } from './totp.js';

export class Credentials {
  private readonly gate = new HashGate();

  constructor(
    private readonly registry: Registry,
    private readonly access: AccessService,
    private readonly sessions: SessionStore,
    private readonly audit: AuditLog,
    private readonly throttle: AuthFailureThrottle,
    private readonly box: SecretBox,
  ) {}

  /** The user `ref` names, if the caller may change its credentials: itself, or anyone with users:write. */
  private async target(ref: string, caller: Principal): Promise<UserRecord> {
    const u = await this.access.findUser(ref);
    if (u.id !== caller.user.id && !caller.permissions.has('users:write'))
      throw new AccessDeniedError(
        'ERR_CREDENTIALS_OTHER_USER',
        "changing another user's password or TOTP needs the users:write permission",
        { field: 'name' },
      );
    if (u.disabledAt) throw new ConflictError('ERR_USER_DISABLED', `user "${u.name}" is removed`, { field: 'name' });
    return u;
  }

  async setPassword(
    ref: string,
    password: string,
    caller: Principal,
    remote?: string,
    current?: string,
  ): Promise<{ name: string; sessionsEnded: number }> {
    checkPassword(password);
    const u = await this.target(ref, caller);
    await this.checkCurrent(u, caller, current, remote ?? 'unknown');
    const hash = await hashPassword(password);
    // Re-read: the hash took a while, and the record may have changed meanwhile (a TOTP step used).
    const now = (await this.registry.users.get(u.id)) ?? u;
    await this.registry.users.put(u.id, { ...now, password: hash, passwordChangedAt: new Date().toISOString() });
    const sessionsEnded = await this.sessions.revokeUser(u.id);
    await this.audit.record({
      actor: caller.user.id,
      action: 'user.password',
      target: u.id,
      outcome: 'ok',
      remote,
      detail: { name: u.name, sessionsEnded },
    });
    return { name: u.name, sessionsEnded };
  }

  /** Own password through a session, or through a key without users:write: the current one must be right. */
  private async checkCurrent(u: UserRecord, caller: Principal, current: string | undefined, remote: string) {
    if (u.id !== caller.user.id || !u.password) return;
    if (!caller.session && caller.permissions.has('users:write')) return;
    const blockedMs = this.throttle.blockedFor(remote);
    if (blockedMs) throw tooManyFailures(blockedMs);
    if (current === undefined)
      throw new BadParameterError('ERR_PASSWORD_CURRENT_MISSING', 'changing your own password needs "current"', {
        field: 'current',
      });
    if (await this.gate.run(() => verifyPassword(current, u.password))) return;
    if (this.throttle.fail(remote, 'signin'))
      await auditThrottled(this.audit, remote, 'PUT /api/v1/users/:name/password');
    await this.audit.record({
      actor: caller.user.id,
      action: 'user.password',
      target: u.id,
      outcome: 'denied',
      remote,
      detail: { name: u.name, reason: 'current-password' },
    });
    throw new AccessDeniedError('ERR_PASSWORD_CURRENT', 'the current password ("current") is wrong; nothing changed', {
      field: 'current',
    });
  }

  /** A new TOTP secret for the user (replacing any older one), returned once with its otpauth:// URI. */
  async enableTotp(ref: string, caller: Principal, remote?: string): Promise<{ secret: string; uri: string }> {
    const u = await this.target(ref, caller);
    const secret = newTotpSecret();
    // Sealed under the key outside the registry (secret-box.ts): a registry copy alone does not reveal it.
    const sealed = this.box.seal(secret, u.id);
    await this.registry.users.put(u.id, { ...u, totp: { secret: sealed, enabledAt: new Date().toISOString() } });
    await this.audit.record({
      actor: caller.user.id,
      action: 'user.totp.enable',
      target: u.id,
      outcome: 'ok',
      remote,
      detail: { name: u.name },
    });
    return { secret, uri: otpauthUri(secret, u.name) };
  }

  async disableTotp(ref: string, caller: Principal, remote?: string): Promise<{ name: string; changed: boolean }> {
    const u = await this.target(ref, caller);
    const changed = u.totp !== undefined;
    if (changed) {
      const next = { ...u };
      delete next.totp;
      await this.registry.users.put(u.id, next);
    }
    await this.audit.record({
      actor: caller.user.id,
      action: 'user.totp.disable',
      target: u.id,
      outcome: 'ok',
      remote,
      detail: { name: u.name, changed },
    });
    return { name: u.name, changed };
  }
}
