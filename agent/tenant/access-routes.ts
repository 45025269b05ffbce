/**
 * A tenant's own users and API keys: customer users and keys that work for this tenant only (through
 * main's relay). Their roles are the built-in customer roles, roles shared by main, or the tenant's own
 * (role-store.ts); whoever creates a user cannot give it more than it holds itself.
 */
import type { FastifyInstance } from 'fastify';
import { BadParameterError } from '#common/errors.js';
import { ROLE_NAME_PATTERN } from '#common/roles.js';
import type { AccessStore } from './access-store.js';
import type { RoleStore } from './role-store.js';
import { checkGrantable } from './role-routes.js';
import { PROFILE_NAME_PATTERN, type ProfileStore } from './profiles.js';

const USER_NAME = '^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$';
const REF = { type: 'string', pattern: '^[A-Za-z0-9_@.+-]{1,64}$' } as const;

export function registerAccessRoutes(
  app: FastifyInstance,
  access: AccessStore,
  roles: RoleStore,
  profiles?: ProfileStore,
): void {
  app.post(
    '/api/v1/users',
    {
      config: { tenantPermission: 'users:write' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'roles'],
          properties: {
            name: { type: 'string', pattern: USER_NAME },
            roles: {
              type: 'array',
              minItems: 1,
              uniqueItems: true,
              maxItems: 16,
              items: { type: 'string', pattern: ROLE_NAME_PATTERN },
            },
            profile: { type: 'string', pattern: PROFILE_NAME_PATTERN },
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { name: string; roles: string[]; profile?: string };
      if (b.profile !== undefined) profiles?.get(b.profile); // 404 naming the field for a missing profile
      const unknown = b.roles.find((r) => !roles.knownToCustomers(r));
      if (unknown !== undefined)
        throw new BadParameterError(
          'ERR_UNKNOWN_ROLE',
          `roles: "${unknown}" is not a role of this tenant; use admin, read-write, read-only or a role from GET /api/v1/roles`,
          { field: 'roles' },
        );
      checkGrantable(req, roles.permissionsOf({ roles: b.roles, tenant: '' }), `user "${b.name}"`);
      return reply.code(201).send(await access.createUser(b.name, b.roles, req.caller?.id ?? '', b.profile));
    },
  );
  app.get('/api/v1/users', { config: { tenantPermission: 'users:read' } }, async () => access.listUsers());
  app.post(
    '/api/v1/apikeys',
    {
      config: { tenantPermission: 'users:write' },
      schema: { body: { type: 'object', additionalProperties: false, required: ['user'], properties: { user: REF } } },
    },
    async (req, reply) =>
      reply.code(201).send(await access.createKey((req.body as { user: string }).user, req.caller?.id ?? '')),
  );
  app.get('/api/v1/apikeys', { config: { tenantPermission: 'users:read' } }, async () => access.listKeys());
  app.delete(
    '/api/v1/apikeys/:id',
    {
      config: { tenantPermission: 'users:write' },
      schema: { params: { type: 'object', required: ['id'], properties: { id: REF } } },
    },
    async (req) => access.revokeKey((req.params as { id: string }).id),
  );
}
