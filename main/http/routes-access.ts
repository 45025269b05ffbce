/** Users, API keys and roles on main. Keys created here work for main and every tenant their owner may reach. */
import type { FastifyInstance } from 'fastify';
import { NAME_PATTERN } from '#common/names.js';
import {
  CUSTOM_MAIN_PERMISSIONS,
  ROLE_NAME_PATTERN,
  TENANT_PERMISSIONS,
  checkPermissions,
  checkRoleName,
} from '#common/roles.js';
import { NotFoundError, UnavailableError } from '#common/errors.js';
import { CUSTOMER_ROLES, ROLE_PERMISSIONS, type Principal } from '../access/api-keys.js';
import { AccessService } from '../access/access.js';
import type { MainServices } from '../services.js';
import { callTenant } from '../search/fanout.js';
import { errorResponses } from './schemas.js';

const tags = ['access'];
const USER_NAME = '^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$';
const ROLE = { type: 'string', pattern: ROLE_NAME_PATTERN } as const;

const userSchema = {
  type: 'object',
  description: 'A user',
  required: ['id', 'name', 'roles', 'tenant', 'tenants', 'createdAt', 'disabled'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    roles: { type: 'array', items: { type: 'string' } },
    tenant: { type: 'string', nullable: true, description: 'Set for a customer user: the one tenant it belongs to' },
    tenants: {
      type: 'array',
      items: { type: 'string' },
      nullable: true,
      description: 'MSSP staff limited to these tenants; null = every tenant',
    },
    profile: { type: 'string', description: "A customer user's security profile: it sees that profile's domains" },
    createdAt: { type: 'string' },
    disabled: { type: 'boolean' },
    password: { type: 'boolean', description: 'A console password is set' },
    totp: { type: 'boolean', description: 'Console sign-in needs a TOTP code' },
  },
} as const;

const keySchema = {
  type: 'object',
  description: 'An API key (never its secret)',
  required: ['id', 'user', 'createdAt'],
  properties: {
    id: { type: 'string' },
    user: { type: 'string' },
    userName: { type: 'string' },
    createdAt: { type: 'string' },
    lastUsedAt: { type: 'string', nullable: true },
    revokedAt: { type: 'string', nullable: true },
  },
} as const;

const roleSchema = {
  type: 'object',
  description: 'A role and what it grants',
  required: ['name', 'source', 'for', 'mainPermissions', 'permissions'],
  properties: {
    name: { type: 'string' },
    source: { type: 'string', enum: ['built-in', 'custom'] },
    for: { type: 'string', enum: ['staff', 'customer', 'any'] },
    mainPermissions: { type: 'array', items: { type: 'string' } },
    permissions: { type: 'array', items: { type: 'string' }, description: 'Inside tenants' },
    description: { type: 'string' },
    id: { type: 'string', description: 'Content item id of a custom role' },
    version: { type: 'integer' },
    published: { type: 'integer', nullable: true },
    labels: { type: 'array', items: { type: 'string' } },
    sharedVersion: { type: 'integer', nullable: true },
  },
} as const;

const idParam = (what: string) =>
  ({
    type: 'object',
    required: ['id'],
    additionalProperties: false,
    properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_@.+-]{1,64}$', description: what } },
  }) as const;

export function registerAccessRoutes(app: FastifyInstance, s: MainServices): void {
  const access = new AccessService(s.registry, s.tenants, s.audit, s.roles);

  app.post(
    '/api/v1/users',
    {
      config: { permission: 'users:write' },
      schema: {
        summary: 'Create a user',
        operationId: 'createUser',
        tags,
        description:
          'MSSP staff (roles admin, analyst, viewer; optionally limited to `tenants`) or a customer user of one `tenant` (roles admin, read-write, read-only, which apply inside that tenant only). Either may also hold custom roles (GET /roles).',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'roles'],
          properties: {
            name: { type: 'string', pattern: USER_NAME },
            roles: { type: 'array', items: ROLE, minItems: 1, maxItems: 16, uniqueItems: true },
            tenant: { type: 'string', pattern: NAME_PATTERN },
            tenants: {
              type: 'array',
              items: { type: 'string', pattern: NAME_PATTERN },
              maxItems: 1000,
              uniqueItems: true,
            },
            profile: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' },
          },
        },
        response: { 201: userSchema, ...errorResponses(404, 409, 503) },
      },
    },
    async (req, reply) => {
      const b = req.body as { name: string; roles: string[]; tenant?: string; tenants?: string[]; profile?: string };
      if (b.profile !== undefined && b.tenant !== undefined && s.tenants.peek(b.tenant))
        await checkProfile(s, req.principal!, b.tenant, b.profile);
      return reply.code(201).send(await access.createUser(b, req.principal!.user.id, req.ip));
    },
  );

  app.get(
    '/api/v1/users',
    {
      config: { permission: 'users:read' },
      schema: {
        summary: 'List users',
        description: 'Every user on main, removed ones marked disabled.',
        operationId: 'listUsers',
        tags,
        response: { 200: { type: 'array', items: userSchema, description: 'Users' }, ...errorResponses() },
      },
    },
    async () => access.listUsers(),
  );

  app.delete(
    '/api/v1/users/:id',
    {
      config: { permission: 'users:write' },
      schema: {
        summary: 'Remove a user',
        description: 'Disables the user (kept for the audit trail) and revokes all its keys.',
        operationId: 'removeUser',
        tags,
        params: idParam('User id or name'),
        response: {
          200: {
            type: 'object',
            description: 'What was removed',
            properties: { user: userSchema, revokedKeys: { type: 'array', items: { type: 'string' } } },
          },
          ...errorResponses(404, 409),
        },
      },
    },
    async (req) => access.removeUser((req.params as { id: string }).id, req.principal!.user.id, req.ip),
  );

  app.post(
    '/api/v1/apikeys',
    {
      config: { permission: 'users:write' },
      schema: {
        summary: 'Create an API key for a user',
        description:
          'The key is in this answer only; main keeps its hash. It works for main and every tenant its user may reach.',
        operationId: 'createApiKey',
        tags,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['user'],
          properties: { user: { type: 'string', pattern: '^[A-Za-z0-9_@.+-]{1,64}$', description: 'User id or name' } },
        },
        response: {
          201: {
            type: 'object',
            description: 'The new key, shown once',
            required: ['id', 'key', 'user'],
            properties: { id: { type: 'string' }, key: { type: 'string' }, user: { type: 'string' } },
          },
          ...errorResponses(404, 409),
        },
      },
    },
    async (req, reply) =>
      reply.code(201).send(await access.createKey((req.body as { user: string }).user, req.principal!.user.id, req.ip)),
  );

  app.get(
    '/api/v1/apikeys',
    {
      config: { permission: 'users:read' },
      schema: {
        summary: 'List API keys',
        description: 'Key ids, owners, creation, last use and revocation; never secrets.',
        operationId: 'listApiKeys',
        tags,
        response: { 200: { type: 'array', items: keySchema, description: 'Keys' }, ...errorResponses() },
      },
    },
    async () => access.listKeys(),
  );

  app.delete(
    '/api/v1/apikeys/:id',
    {
      config: { permission: 'users:write' },
      schema: {
        summary: 'Revoke an API key',
        description: 'The key stops working at once.',
        operationId: 'revokeApiKey',
        tags,
        params: idParam('Key id'),
        response: { 200: keySchema, ...errorResponses(404) },
      },
    },
    async (req) => access.revokeKey((req.params as { id: string }).id, req.principal!.user.id, req.ip),
  );

  app.get(
    '/api/v1/roles',
    {
      config: { permission: 'users:read' },
      schema: {
        summary: 'List roles',
        description:
          "Every role with what it grants: built-in staff and customer roles and the custom roles of the content library (`permissions` apply inside tenants the role reaches, `mainPermissions` on main). `main` and `customer` keep the built-in catalogue's older shape.",
        operationId: 'listRoles',
        tags,
        response: {
          200: {
            type: 'object',
            description: 'Role catalogue',
            required: ['roles', 'main', 'customer'],
            properties: {
              roles: { type: 'array', items: roleSchema },
              main: { type: 'object', additionalProperties: { type: 'array', items: { type: 'string' } } },
              customer: { type: 'array', items: { type: 'string' } },
              tenantPermissions: { type: 'array', items: { type: 'string' } },
              mainPermissions: {
                type: 'array',
                items: { type: 'string' },
                description: 'The main permissions a custom role may grant',
              },
            },
          },
          ...errorResponses(),
        },
      },
    },
    async () => ({
      roles: await s.roles.list(),
      main: ROLE_PERMISSIONS,
      customer: CUSTOMER_ROLES,
      tenantPermissions: TENANT_PERMISSIONS,
      mainPermissions: CUSTOM_MAIN_PERMISSIONS,
    }),
  );

  app.post(
    '/api/v1/roles',
    {
      config: { permission: 'roles:write' },
      schema: {
        summary: 'Create a custom role',
        operationId: 'createRole',
        tags,
        description:
          "Creates and publishes a content item of type `role` (its versions, publishing and sharing are the content library's). Share it to tenants with POST /content/:id/share; a tenant created later with a matching label gets it at creation.",
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'permissions'],
          properties: {
            name: { type: 'string', maxLength: 64, description: 'Role name: lower-case letters, digits, -' },
            permissions: {
              type: 'array',
              maxItems: 64,
              items: { type: 'string', maxLength: 64 },
              description: 'Tenant permissions',
            },
            mainPermissions: {
              type: 'array',
              maxItems: 64,
              items: { type: 'string', maxLength: 64 },
              description: 'Main permissions (never users:write or roles:write)',
            },
            description: { type: 'string', maxLength: 500 },
            labels: {
              type: 'array',
              maxItems: 50,
              uniqueItems: true,
              items: { type: 'string', pattern: NAME_PATTERN },
              description: 'Propagation labels',
            },
          },
        },
        response: { 201: roleSchema, ...errorResponses(409) },
      },
    },
    async (req, reply) => {
      const b = req.body as {
        name: string;
        permissions: string[];
        mainPermissions?: string[];
        description?: string;
        labels?: string[];
      };
      checkRoleName(b.name);
      const body = {
        permissions: checkPermissions(b.permissions, TENANT_PERMISSIONS, 'permissions', 'tenant permissions'),
        mainPermissions: checkPermissions(
          b.mainPermissions ?? [],
          CUSTOM_MAIN_PERMISSIONS,
          'mainPermissions',
          'main permissions a custom role may grant',
        ),
        ...(b.description !== undefined ? { description: b.description } : {}),
      };
      return reply
        .code(201)
        .send(
          await s.roles.create(
            s.content,
            { name: b.name, body, labels: b.labels ?? [] },
            { id: req.principal!.user.id, remote: req.ip },
          ),
        );
    },
  );

  app.delete(
    '/api/v1/roles/:name',
    {
      config: { permission: 'roles:write' },
      schema: {
        summary: 'Delete a custom role',
        description: 'Refused (409) while it is shared to tenants or held by a user.',
        operationId: 'deleteRole',
        tags,
        params: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: ROLE } },
        response: {
          200: {
            type: 'object',
            description: 'The deleted role',
            properties: { name: { type: 'string' }, id: { type: 'string' }, deleted: { type: 'boolean' } },
          },
          ...errorResponses(404, 409),
        },
      },
    },
    async (req) =>
      s.roles.remove(s.content, (req.params as { name: string }).name, { id: req.principal!.user.id, remote: req.ip }),
  );
}

/**
 * A customer user's profile must be one its tenant holds: a misspelt one would leave the user seeing nothing, with
 * nothing said (the tenant grants a profile it does not hold no domain). Asked of the tenant, which owns profiles.
 */
async function checkProfile(s: MainServices, principal: Principal, tenant: string, profile: string): Promise<void> {
  const r = await callTenant(s.tenants, principal, tenant, {
    method: 'GET',
    path: '/api/v1/profiles',
    timeoutMs: 10_000,
  });
  if (!r.ok)
    throw new UnavailableError(
      'ERR_TENANT_NOT_RUNNING',
      `profile: tenant "${tenant}" could not say whether it holds profile "${profile}" (${r.message}); retry when it runs`,
      { field: 'profile' },
    );
  const items = (r.value as { items?: { name?: unknown }[] } | null)?.items ?? [];
  if (!items.some((p) => p.name === profile))
    throw new NotFoundError(
      'ERR_PROFILE_NOT_FOUND',
      `profile: tenant "${tenant}" has no security profile "${profile}" (palisade profiles list --tenant ${tenant})`,
      { field: 'profile' },
    );
}
