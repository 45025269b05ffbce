/**
 * A tenant's roles API (through main's relay: /api/v1/tenants/T/api/v1/roles): list every role that
 * applies here (built-in, shared by main, tenant-only) and define or delete tenant-only roles for the
 * tenant's own users. A tenant role never exceeds CUSTOMER_CEILING (tunnels, engine commands and the
 * audit log stay with MSSP staff) nor what its creator holds: managing roles must not be a way up.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AccessDeniedError, BadParameterError } from '#common/errors.js';
import {
  CUSTOMER_CEILING,
  ROLE_NAME_PATTERN,
  TENANT_PERMISSIONS,
  checkPermissions,
  checkRoleName,
  type TenantPermission,
} from '#common/roles.js';
import type { AccessStore } from './access-store.js';
import type { RoleStore } from './role-store.js';

/** Refuses permissions the caller does not hold itself (403: it may manage roles, not climb through them). */
export function checkGrantable(req: FastifyRequest, permissions: Iterable<TenantPermission>, what: string): void {
  const mine = req.permissions ?? new Set<TenantPermission>();
  const beyond = [...permissions].filter((p) => !mine.has(p));
  if (beyond.length)
    throw new AccessDeniedError(
      'ERR_ROLE_ESCALATION',
      `${what} would grant ${beyond.join(', ')}, which you do not hold in this tenant`,
    );
}

export function registerRoleRoutes(app: FastifyInstance, roles: RoleStore, access: AccessStore): void {
  app.get('/api/v1/roles', { config: { tenantPermission: 'users:read' } }, async () => roles.list());

  app.post(
    '/api/v1/roles',
    {
      config: { tenantPermission: 'users:write' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'permissions'],
          properties: {
            name: { type: 'string', maxLength: 64 },
            description: { type: 'string', maxLength: 500 },
            permissions: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 64 } },
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { name: string; permissions: string[]; description?: string };
      checkRoleName(b.name);
      const permissions = checkPermissions(b.permissions, TENANT_PERMISSIONS, 'permissions', 'tenant permissions');
      const over = permissions.filter((p) => !CUSTOMER_CEILING.has(p));
      if (over.length)
        throw new BadParameterError(
          'ERR_ROLE_CEILING',
          `permissions: ${over.join(', ')} is never granted to a tenant's own users; a tenant role may hold only ${[...CUSTOMER_CEILING].join(', ')}`,
          { field: 'permissions' },
        );
      checkGrantable(req, permissions, `role "${b.name}"`);
      const role = await roles.create(
        { name: b.name, permissions, ...(b.description !== undefined ? { description: b.description } : {}) },
        req.caller?.id ?? '',
      );
      req.auditAs = { action: 'role.create', target: role.name, detail: { permissions: role.permissions } };
      return reply.code(201).send(role);
    },
  );

  app.delete(
    '/api/v1/roles/:name',
    {
      config: { tenantPermission: 'users:write' },
      schema: {
        params: {
          type: 'object',
          required: ['name'],
          additionalProperties: false,
          properties: { name: { type: 'string', pattern: ROLE_NAME_PATTERN } },
        },
      },
    },
    async (req) => {
      const { name } = req.params as { name: string };
      const r = await roles.remove(name, (n) => access.usersWithRole(n));
      req.auditAs = { action: 'role.delete', target: name };
      return r;
    },
  );
}
