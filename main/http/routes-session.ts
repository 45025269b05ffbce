/**
 * The console's session routes (docs/console.md): sign in (POST /session), who am I (GET), sign out (DELETE).
 * The cookie they set is accepted by every /api/v1 route beside bearer keys (app.ts `authorise`), resolved to
 * the same principal and checked by the same permissions. Sign-in logic is access/signin.ts.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { UnauthenticatedError } from '#common/errors.js';
import type { Principal } from '../access/api-keys.js';
import { SignIn, type SignInRequest } from '../access/signin.js';
import { clearCookie, setCookie } from '../access/sessions.js';
import type { MainServices } from '../services.js';
import { errorBody, errorResponses } from './schemas.js';

const tags = ['console'];

const sessionBody = {
  type: 'object',
  description: 'The signed-in user and what the console needs to act for it',
  required: ['user', 'csrfToken', 'expiresAt'],
  properties: {
    user: {
      type: 'object',
      required: ['name', 'tenant', 'roles', 'permissions'],
      properties: {
        name: { type: 'string' },
        tenant: { type: 'string', nullable: true, description: 'Set for a customer user: its one tenant' },
        tenants: {
          type: 'array',
          items: { type: 'string' },
          nullable: true,
          description: 'Staff limited to these tenants; null = every tenant',
        },
        roles: { type: 'array', items: { type: 'string' } },
        permissions: { type: 'array', items: { type: 'string' }, description: 'Main permissions (GET /roles)' },
      },
    },
    csrfToken: { type: 'string', description: 'Send it as X-CSRF-Token with every request other than GET and HEAD' },
    expiresAt: { type: 'string', description: 'When the session ends if unused from now (idle 30 min, at most 12 h)' },
  },
} as const;

function body(p: Principal, csrfToken: string, expiresAt: string) {
  return {
    user: {
      name: p.user.name,
      tenant: p.user.tenant ?? null,
      tenants: p.user.tenants ?? null,
      roles: p.user.roles,
      permissions: [...p.permissions].sort(),
    },
    csrfToken,
    expiresAt,
  };
}

const noSession = () =>
  new UnauthenticatedError('ERR_SESSION_INVALID', 'no console session: this request came with an API key');

export function registerSessionRoutes(app: FastifyInstance, s: MainServices): void {
  const signIn = new SignIn(s.registry, s.sessions, s.audit, s.authThrottle, s.secretBox);

  app.post(
    '/api/v1/session',
    {
      config: { permission: 'public' },
      schema: {
        summary: 'Sign in to the console',
        description:
          'Checks name, password and (for a user with TOTP) the code; sets the HttpOnly, Secure, SameSite=Strict cookie `__Host-palisade_session`. A wrong name, password or code is one answer, 401 ERR_SIGNIN_FAILED; a user with TOTP who sent no code gets 401 ERR_TOTP_REQUIRED, only once the password was right. Failures count into the per-address throttle (429) and are audited.',
        operationId: 'signIn',
        tags,
        security: [],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'password'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 64 },
            password: { type: 'string', minLength: 1, maxLength: 1024 },
            totp: { type: 'string', maxLength: 16, description: 'The 6-digit code of an authenticator app' },
          },
        },
        response: {
          200: sessionBody,
          400: { ...errorBody, description: 'A field is missing or malformed' },
          401: { ...errorBody, description: 'ERR_SIGNIN_FAILED, or ERR_TOTP_REQUIRED' },
          429: {
            ...errorBody,
            description:
              'ERR_AUTH_THROTTLED (this address failed too often), ERR_SIGNIN_BACKOFF (this account did), or ' +
              'ERR_SIGNIN_CONCURRENT (a sign-in from this address is still being checked); see Retry-After',
          },
          503: { ...errorBody, description: 'Too many sign-ins in progress' },
        },
      },
    },
    async (req, reply) => {
      const { session, principal } = await signIn.signIn(req.body as SignInRequest, req.ip, s.roles.lookup);
      req.principal = principal;
      void reply.header('set-cookie', setCookie(session.token));
      return body(principal, session.csrfToken, session.expiresAt);
    },
  );

  app.get(
    '/api/v1/session',
    {
      config: { permission: 'signed-in' },
      schema: {
        summary: 'The current console session',
        description: 'The signed-in user, the CSRF token and when the session ends; 401 without a live session cookie.',
        operationId: 'getSession',
        tags,
        response: { 200: sessionBody, ...errorResponses() },
      },
    },
    async (req) => {
      const p = req.principal!;
      if (!p.session) throw noSession();
      return body(p, p.session.csrfToken, p.session.expiresAt);
    },
  );

  app.delete(
    '/api/v1/session',
    {
      config: { permission: 'signed-in' },
      schema: {
        summary: 'Sign out of the console',
        description:
          'Ends the session on main (its cookie no longer works anywhere) and clears the cookie (Max-Age=0).',
        operationId: 'signOut',
        tags,
        response: { 204: { type: 'null', description: 'Signed out' }, ...errorResponses() },
      },
    },
    async (req, reply: FastifyReply) => {
      const p = req.principal!;
      if (!p.session) throw noSession();
      await s.sessions.revoke(p.session.key);
      await s.audit.record({
        actor: p.user.id,
        action: 'auth.signout',
        target: p.user.name,
        outcome: 'ok',
        remote: req.ip,
      });
      return reply.header('set-cookie', clearCookie()).code(204).send();
    },
  );
}
