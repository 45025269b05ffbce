/**
 * A user's console credentials on main: setting the password (scrypt, passwords.ts) and turning the TOTP
 * second factor on and off (totp.ts). A user may change their own; anyone else needs `users:write`. A new
 * password ends every session of the user (the current one too: sign in again with it). Every change is
 * audited, never with the password or the secret. Not the sign-in (signin.ts).
 */
import { AccessDeniedError, ConflictError } from '#common/errors.js';
import type { Registry, UserRecord } from '../registry.js';
import type { AccessService } from './access.js';
import type { Principal } from './api-keys.js';
import type { AuditLog } from './audit.js';
import { checkPassword, hashPassword } from './passwords.js';
import type { SessionStore } from './sessions.js';
import { newTotpSecret, otpauthUri } from './totp.js';

export class Credentials {
  constructor(
    private readonly registry: Registry,
    private readonly access: AccessService,
    private readonly sessions: SessionStore,
    private readonly audit: AuditLog,
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
  ): Promise<{ name: string; sessionsEnded: number }> {
    checkPassword(password);
    const u = await this.target(ref, caller);
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

  /** A new TOTP secret for the user (replacing any older one), returned once with its otpauth:// URI. */
  async enableTotp(ref: string, caller: Principal, remote?: string): Promise<{ secret: string; uri: string }> {
    const u = await this.target(ref, caller);
    const secret = newTotpSecret();
    await this.registry.users.put(u.id, { ...u, totp: { secret, enabledAt: new Date().toISOString() } });
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
