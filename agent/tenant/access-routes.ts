/** A tenant's own users and API keys: customer users and keys that work for this tenant only (through main's relay). */
import type { FastifyInstance } from 'fastify';
import { AccessStore, TENANT_USER_ROLES } from './access-store.js';

const USER_NAME = '^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$';
const REF = { type: 'string', pattern: '^[A-Za-z0-9_@.+-]{1,64}$' } as const;

export function registerAccessRoutes(app: FastifyInstance, access: AccessStore): void {
  app.post('/api/v1/users', {
    config: { tenantPermission: 'users:write' },
    schema: {
      body: {
        type: 'object', additionalProperties: false, required: ['name', 'roles'],
        properties: { name: { type: 'string', pattern: USER_NAME }, roles: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', enum: [...TENANT_USER_ROLES] } } },
      },
    },
  }, async (req, reply) => {
    const b = req.body as { name: string; roles: string[] };
    return reply.code(201).send(await access.createUser(b.name, b.roles, req.caller?.id ?? ''));
  });
  app.get('/api/v1/users', { config: { tenantPermission: 'users:read' } }, async () => access.listUsers());
  app.post('/api/v1/apikeys', {
    config: { tenantPermission: 'users:write' },
    schema: { body: { type: 'object', additionalProperties: false, required: ['user'], properties: { user: REF } } },
  }, async (req, reply) => reply.code(201).send(await access.createKey((req.body as { user: string }).user, req.caller?.id ?? '')));
  app.get('/api/v1/apikeys', { config: { tenantPermission: 'users:read' } }, async () => access.listKeys());
  app.delete('/api/v1/apikeys/:id', {
    config: { tenantPermission: 'users:write' },
    schema: { params: { type: 'object', required: ['id'], properties: { id: REF } } },
  }, async (req) => access.revokeKey((req.params as { id: string }).id));
}
