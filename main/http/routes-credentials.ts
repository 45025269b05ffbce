/**
 * Console credentials of main's users: PUT /users/:name/password, POST and DELETE /users/:name/totp. A user
 * may change its own (any signed-in caller, checked in access/credentials.ts); another user's needs
 * users:write. The logic is access/credentials.ts.
 */
import type { FastifyInstance } from 'fastify';
import { AccessService } from '../access/access.js';
import { Credentials } from '../access/credentials.js';
import { PASSWORD_MAX_LENGTH } from '../access/passwords.js';
import type { MainServices } from '../services.js';
import { errorResponses } from './schemas.js';

const tags = ['console'];
const userParam = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: { name: { type: 'string', pattern: '^[A-Za-z0-9_@.+-]{1,64}$', description: 'User name or id' } },
} as const;
const WHO =
  ' A user may do this for itself (signed in, or with its own API key); for another user it takes users:write.';

export function registerCredentialRoutes(app: FastifyInstance, s: MainServices): void {
  const creds = new Credentials(
    s.registry,
    new AccessService(s.registry, s.tenants, s.audit, s.roles),
    s.sessions,
    s.audit,
    s.authThrottle,
    s.secretBox,
  );
  const name = (p: unknown) => (p as { name: string }).name;

  app.put(
    '/api/v1/users/:name/password',
    {
      config: { permission: 'signed-in' },
      schema: {
        summary: "Set a user's console password",
        description: `Stored as a scrypt hash (N=2^15, r=8, p=1); at least 12 characters. Ends every session of the user.${WHO} Your OWN password also needs the current one in \`current\` (400 ERR_PASSWORD_CURRENT_MISSING without, 403 ERR_PASSWORD_CURRENT when wrong, counted into the sign-in throttle: 429), except with an API key holding users:write.`,
        operationId: 'setUserPassword',
        tags,
        params: userParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['password'],
          properties: {
            password: { type: 'string', maxLength: PASSWORD_MAX_LENGTH },
            current: {
              type: 'string',
              maxLength: PASSWORD_MAX_LENGTH,
              description: 'The current password: needed to change your own (see above)',
            },
          },
        },
        response: {
          200: {
            type: 'object',
            description: 'The password is set',
            required: ['name', 'sessionsEnded'],
            properties: { name: { type: 'string' }, sessionsEnded: { type: 'integer' } },
          },
          ...errorResponses(404, 409, 429),
        },
      },
    },
    async (req) => {
      const b = req.body as { password: string; current?: string };
      return creds.setPassword(name(req.params), b.password, req.principal!, req.ip, b.current);
    },
  );

  app.post(
    '/api/v1/users/:name/totp',
    {
      config: { permission: 'signed-in' },
      schema: {
        summary: 'Turn on TOTP for a user',
        description: `A new secret (RFC 6238: SHA-1, 6 digits, 30 s), shown in this answer only, replacing any older one; from now on sign-in needs a code.${WHO}`,
        operationId: 'enableUserTotp',
        tags,
        params: userParam,
        response: {
          200: {
            type: 'object',
            description: 'The secret, shown once, and the otpauth:// URI for an authenticator app',
            required: ['secret', 'uri'],
            properties: { secret: { type: 'string' }, uri: { type: 'string' } },
          },
          ...errorResponses(404, 409),
        },
      },
    },
    async (req) => creds.enableTotp(name(req.params), req.principal!, req.ip),
  );

  app.delete(
    '/api/v1/users/:name/totp',
    {
      config: { permission: 'signed-in' },
      schema: {
        summary: 'Turn off TOTP for a user',
        description: `Sign-in needs the password only again; changed is false if TOTP was off.${WHO}`,
        operationId: 'disableUserTotp',
        tags,
        params: userParam,
        response: {
          200: {
            type: 'object',
            description: 'TOTP is off',
            required: ['name', 'changed'],
            properties: { name: { type: 'string' }, changed: { type: 'boolean' } },
          },
          ...errorResponses(404, 409),
        },
      },
    },
    async (req) => creds.disableTotp(name(req.params), req.principal!, req.ip),
  );
}
