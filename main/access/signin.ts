/**
 * Console sign-in (POST /api/v1/session): name + password (+ TOTP code) → a session (sessions.ts). Failures
 * count into the same per-address throttle as bad API keys (auth-throttle.ts) and are audited, success too;
 * the password and the code never reach the audit log or any log line.
 *
 * One answer, ERR_SIGNIN_FAILED, for an unknown name, a wrong password and a wrong code, and the same cost for
 * each (an unknown name is hashed against a dummy, passwords.ts). The one exception, a documented choice: a
 * user with TOTP who sent no code gets ERR_TOTP_REQUIRED, and only after the password proved right, so the
 * console can ask for the code in a second step without keeping the password in the page. That tells whoever
 * holds the right password that it is right; they still need the second factor, and wrong codes count as
 * failures into the throttle like wrong passwords.
 *
 * Before any hashing: an account that failed too often waits (429 ERR_SIGNIN_BACKOFF, signin-backoff.ts), and
 * an address has at most one sign-in being checked at a time (a second one at once: 429 ERR_SIGNIN_CONCURRENT),
 * so a few addresses cannot fill the process-wide hash gate and make everyone's sign-in 503.
 */
import { RateLimitedError, UnauthenticatedError } from '#common/errors.js';
import type { Registry, UserRecord } from '../registry.js';
import type { AuditLog } from './audit.js';
import { auditThrottled, tooManyFailures, type AuthFailureThrottle } from './auth-throttle.js';
import { principalFor, type CustomRoleLookup, type Principal } from './api-keys.js';
import { HashGate, verifyPassword } from './passwords.js';
import type { SecretBox } from './secret-box.js';
import { AccountBackoff } from './signin-backoff.js';
import type { NewSession, SessionStore } from './sessions.js';
import { checkTotp } from './totp.js';

export interface SignInRequest {
  name: string;
  password: string;
  totp?: string;
}

export class SignIn {
  private readonly gate = new HashGate();
  /** TOTP checks run one at a time, so one code cannot sign in twice by racing itself. */
  private totpChain: Promise<unknown> = Promise.resolve();
  private readonly backoff: AccountBackoff;
  /** Addresses with a sign-in being checked now. */
  private readonly checking = new Set<string>();

  constructor(
    private readonly registry: Registry,
    private readonly sessions: SessionStore,
    private readonly audit: AuditLog,
    private readonly throttle: AuthFailureThrottle,
    private readonly box: SecretBox,
    private readonly now: () => number = Date.now,
  ) {
    this.backoff = new AccountBackoff(now);
  }

  async signIn(
    b: SignInRequest,
    remote: string,
    custom?: CustomRoleLookup,
  ): Promise<{ session: NewSession; principal: Principal }> {
    const blockedMs = this.throttle.blockedFor(remote);
    if (blockedMs) throw tooManyFailures(blockedMs);
    const waitMs = this.backoff.waitFor(b.name);
    if (waitMs)
      throw new RateLimitedError(
        'ERR_SIGNIN_BACKOFF',
        `too many failed sign-ins for this account; retry in ${Math.ceil(waitMs / 1000)} s`,
        { retryAfterMs: waitMs },
      );
    if (this.checking.has(remote))
      throw new RateLimitedError('ERR_SIGNIN_CONCURRENT', 'a sign-in from this address is being checked; retry', {
        retryAfterMs: 1000,
      });
    this.checking.add(remote);
    try {
      const r = await this.check(b, remote, custom);
      this.backoff.succeed(b.name);
      return r;
    } finally {
      this.checking.delete(remote);
    }
  }

  private async check(
    b: SignInRequest,
    remote: string,
    custom?: CustomRoleLookup,
  ): Promise<{ session: NewSession; principal: Principal }> {
    const user = await this.userNamed(b.name);
    const passwordOk = await this.gate.run(() => verifyPassword(b.password, user?.password));
    if (!user || !passwordOk) throw await this.failed(b.name, remote, user ? 'password' : 'unknown-user');
    let secondFactor = false;
    if (user.totp) {
      if (b.totp === undefined) {
        await this.record(b.name, remote, 'denied', { reason: 'totp-required' }, user.id);
        throw new UnauthenticatedError('ERR_TOTP_REQUIRED', 'this user also needs a TOTP code: send "totp"', {
          field: 'totp',
        });
      }
      if (!(await this.useTotp(user.id, b.totp))) throw await this.failed(b.name, remote, 'totp', user.id);
      secondFactor = true;
    }
    const session = await this.sessions.create(user, remote);
    await this.record(b.name, remote, 'ok', { secondFactor }, user.id);
    const principal = principalFor(user, 'session', custom);
    return { session, principal };
  }

  /** The enabled user of that name; a tenant-key pseudo-user or a removed one never signs in. */
  private async userNamed(name: string): Promise<UserRecord | undefined> {
    for await (const u of this.registry.users.values()) if (u.name === name && !u.disabledAt) return u;
    return undefined;
  }

  /** Checks a code and consumes its time step, under the chain so two requests with one code cannot both pass. */
  private useTotp(userId: string, code: string): Promise<boolean> {
    const run = this.totpChain.then(async () => {
      const u = await this.registry.users.get(userId);
      if (!u?.totp) return false;
      // Sealed at rest (secret-box.ts); one that does not open (key file lost or replaced) never matches.
      const secret = this.box.open(u.totp.secret, u.id);
      if (secret === undefined) return false;
      const step = checkTotp(secret, code, this.now(), u.totp.lastStep);
      if (step === null) return false;
      await this.registry.users.put(u.id, { ...u, totp: { ...u.totp, lastStep: step } });
      return true;
    });
    this.totpChain = run.catch(() => undefined);
    return run;
  }

  private async failed(
    name: string,
    remote: string,
    reason: string,
    userId?: string,
  ): Promise<UnauthenticatedError | RateLimitedError> {
    this.backoff.fail(name);
    if (this.throttle.fail(remote, 'signin')) await auditThrottled(this.audit, remote, 'POST /api/v1/session');
    await this.record(name, remote, 'denied', { reason }, userId);
    return new UnauthenticatedError('ERR_SIGNIN_FAILED', 'sign-in failed: wrong name, password or code');
  }

  private record(
    name: string,
    remote: string,
    outcome: 'ok' | 'denied',
    detail: Record<string, unknown>,
    userId?: string,
  ): Promise<void> {
    return this.audit.record({
      actor: userId ?? 'anonymous',
      action: 'auth.signin',
      target: name,
      outcome,
      remote,
      detail,
    });
  }
}
