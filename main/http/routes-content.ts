/** Content library and propagation routes (docs/content.md): items, versions, publish, share/unshare, status. */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  CONTENT_BODY_MAX,
  CONTENT_ID_PATTERN,
  CONTENT_NAME_MAX,
  CONTENT_NAME_PATTERN,
  CONTENT_TYPES,
  type ContentType,
} from '#common/content.js';
import { NAME_PATTERN } from '#common/names.js';
import { AccessDeniedError } from '#common/errors.js';
import { ContentLibrary } from '../content/library.js';
import type { ContentPropagation } from '../content/propagation.js';
import { errorResponses } from './schemas.js';

const tags = ['content'];
const name = {
  type: 'string',
  minLength: 1,
  maxLength: CONTENT_NAME_MAX,
  pattern: CONTENT_NAME_PATTERN,
  description: 'Display name',
} as const;
const body = {
  type: 'string',
  maxLength: CONTENT_BODY_MAX,
  description: 'The item itself: YAML, JSON or script text',
} as const;
const labels = {
  type: 'array',
  maxItems: 50,
  uniqueItems: true,
  items: { type: 'string', pattern: NAME_PATTERN },
  description: 'Propagation labels: shared to tenants carrying any of them; `all` means every tenant',
} as const;
const idParam = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', pattern: CONTENT_ID_PATTERN, description: 'Content item id' } },
} as const;

const itemView = {
  type: 'object',
  description: 'A content item',
  required: ['id', 'type', 'name', 'labels', 'version', 'published', 'shared'],
  properties: {
    id: { type: 'string' },
    type: { type: 'string', enum: [...CONTENT_TYPES] },
    name: { type: 'string' },
    labels: { type: 'array', items: { type: 'string' } },
    version: { type: 'integer', description: 'Latest version' },
    published: { type: 'integer', nullable: true, description: 'Latest published version' },
    shared: { type: 'boolean' },
    sharedVersion: { type: 'integer', nullable: true, description: 'The version tenants should hold' },
    createdAt: { type: 'string' },
    createdBy: { type: 'string' },
    updatedAt: { type: 'string' },
  },
} as const;
const publishedView = {
  ...itemView,
  properties: {
    ...itemView.properties,
    warnings: {
      type: 'array',
      items: { type: 'string' },
      description: 'What does not stop the publish but may surprise (a connection scoped to a region no tenant has)',
    },
  },
} as const;
const versionView = {
  type: 'object',
  required: ['version', 'name', 'body', 'published'],
  properties: {
    version: { type: 'integer' },
    name: { type: 'string' },
    body: { type: 'string' },
    createdAt: { type: 'string' },
    createdBy: { type: 'string' },
    published: { type: 'boolean' },
    publishedAt: { type: 'string', nullable: true },
  },
} as const;
const itemWithVersions = {
  ...itemView,
  description: 'A content item with every version',
  properties: { ...itemView.properties, versions: { type: 'array', items: versionView } },
} as const;
const statusView = {
  type: 'object',
  description: "Sharing status: a rollup, each tenant's state, and the sharing log",
  required: ['id', 'rollup', 'tenants', 'log'],
  properties: {
    id: { type: 'string' },
    rollup: { type: 'string', enum: ['Successful', 'Sharing', 'Incomplete', 'Not Shared'] },
    version: { type: 'integer' },
    published: { type: 'integer', nullable: true },
    sharedVersion: { type: 'integer', nullable: true },
    labels: { type: 'array', items: { type: 'string' } },
    problems: {
      type: 'array',
      items: { type: 'string' },
      description: "Why a shared playbook's dependencies cannot all travel (unpublished, ambiguous, a cycle)",
    },
    tenants: {
      type: 'array',
      items: {
        type: 'object',
        required: ['tenant', 'state', 'version', 'reason'],
        properties: {
          tenant: { type: 'string' },
          state: { type: 'string', enum: ['not-shared', 'sharing', 'shared', 'failed', 'out-of-date'] },
          version: { type: 'integer', nullable: true, description: 'The version the tenant holds' },
          target: { type: 'integer', nullable: true, description: 'The version it should hold' },
          reason: { type: 'string', nullable: true },
          at: { type: 'string', nullable: true },
          dependencies: {
            type: 'array',
            description: "A shared playbook's dependencies on this tenant: the version its share took, the one held",
            items: {
              type: 'object',
              required: ['id', 'type', 'name', 'version', 'held', 'present'],
              properties: {
                id: { type: 'string' },
                type: { type: 'string' },
                name: { type: 'string' },
                version: { type: 'integer' },
                held: { type: 'integer', nullable: true },
                present: { type: 'boolean' },
              },
            },
          },
        },
      },
    },
    log: {
      type: 'array',
      items: {
        type: 'object',
        required: ['at', 'action', 'outcome'],
        properties: {
          at: { type: 'string' },
          action: { type: 'string' },
          actor: { type: 'string' },
          outcome: { type: 'string', enum: ['ok', 'failed'] },
          tenant: { type: 'string' },
          version: { type: 'integer' },
          reason: { type: 'string' },
        },
      },
    },
  },
} as const;

const actorOf = (req: FastifyRequest) => ({ id: req.principal!.user.id, remote: req.ip });
const idOf = (req: FastifyRequest) => (req.params as { id: string }).id;

/**
 * Writing, publishing or sharing a role changes who may do what, so besides the route's content
 * permission it takes `roles:write` (built-in admin only: no custom role can grant it, see common/roles.ts).
 */
async function roleWriteCheck(req: FastifyRequest, lib: ContentLibrary, type: string | Promise<string>): Promise<void> {
  if ((await type) !== 'role' || req.principal!.permissions.has('roles:write')) return;
  await lib.audit.record({
    actor: req.principal!.user.id,
    action: 'auth.permission',
    target: `${req.method} ${req.routeOptions.url}`,
    outcome: 'denied',
    remote: req.ip,
    detail: { permission: 'roles:write', keyId: req.principal!.keyId },
  });
  throw new AccessDeniedError(
    'ERR_FORBIDDEN',
    'this key lacks the "roles:write" permission that changing a role needs',
  );
}
const typeOf = async (lib: ContentLibrary, req: FastifyRequest) => (await lib.find(idOf(req))).type;

export function registerContentRoutes(app: FastifyInstance, lib: ContentLibrary, prop: ContentPropagation): void {
  /** For routes on an existing item: a role item also needs `roles:write`. */
  const roleItemGate = async (req: FastifyRequest) => roleWriteCheck(req, lib, typeOf(lib, req));
  app.post(
    '/api/v1/content',
    {
      config: { permission: 'content:write' },
      schema: {
        summary: 'Create a content item',
        description:
          'Creates a playbook, script, integration, list, incident type, automation rule or role at version 1 (unpublished). A role\'s name is its role name and its body is JSON `{"permissions":[tenant permissions],"mainPermissions"?:[main permissions],"description"?}` (see GET /roles); creating, editing, publishing or sharing a role also needs `roles:write`.',
        operationId: 'createContent',
        tags,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['type', 'name', 'body'],
          properties: {
            type: { type: 'string', enum: [...CONTENT_TYPES], description: 'Item type' },
            name,
            body,
            labels,
          },
        },
        response: { 201: itemWithVersions, ...errorResponses(404, 409, 413, 503) },
      },
    },
    async (req, reply) => {
      const b = req.body as { type: ContentType; name: string; body: string; labels?: string[] };
      await roleWriteCheck(req, lib, b.type);
      return reply.code(201).send(await lib.create({ ...b, labels: b.labels ?? [] }, actorOf(req)));
    },
  );

  app.get(
    '/api/v1/content',
    {
      config: { permission: 'content:read' },
      schema: {
        summary: 'List content items',
        description: 'Every item of the library (without bodies), optionally of one type or carrying one label.',
        operationId: 'listContent',
        tags,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            type: { type: 'string', enum: [...CONTENT_TYPES], description: 'Only this type' },
            label: { type: 'string', pattern: NAME_PATTERN, description: 'Only items with this label' },
          },
        },
        response: { 200: { type: 'array', items: itemView, description: 'Items' }, ...errorResponses() },
      },
    },
    async (req) => lib.list(req.query as { type?: string; label?: string }),
  );

  app.get(
    '/api/v1/content/:id',
    {
      config: { permission: 'content:read' },
      schema: {
        summary: 'Show a content item with its versions',
        description: 'The item and every version with its body and whether it is published.',
        operationId: 'getContent',
        tags,
        params: idParam,
        response: { 200: itemWithVersions, ...errorResponses(404) },
      },
    },
    async (req) => {
      const item = await lib.find(idOf(req));
      return { ...ContentLibrary.view(item), versions: await lib.versions(item.id) };
    },
  );

  app.put(
    '/api/v1/content/:id',
    {
      config: { permission: 'content:write' },
      preHandler: roleItemGate,
      schema: {
        summary: 'Edit a content item (new version)',
        description:
          'Makes a new version from the given name and/or body (the rest carried over); labels change in place. Tenants keep the shared version until it is published and shared again.',
        operationId: 'updateContent',
        tags,
        params: idParam,
        body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { name, body, labels } },
        response: { 200: itemView, ...errorResponses(404, 413, 503) },
      },
    },
    async (req) => lib.update(idOf(req), req.body as { name?: string; body?: string; labels?: string[] }, actorOf(req)),
  );

  app.post(
    '/api/v1/content/:id/publish',
    {
      config: { permission: 'content:write' },
      preHandler: roleItemGate,
      schema: {
        summary: 'Publish the latest version',
        description: 'Only a published version can be shared; tenants holding an older one become out-of-date.',
        operationId: 'publishContent',
        tags,
        params: idParam,
        response: { 200: publishedView, ...errorResponses(404, 503) },
      },
    },
    async (req) => lib.publish(idOf(req), actorOf(req)),
  );

  app.post(
    '/api/v1/content/:id/share',
    {
      config: { permission: 'content:share' },
      preHandler: roleItemGate,
      schema: {
        summary: 'Share to matching tenants',
        description:
          "Pushes the latest published version to every tenant whose labels match the item's (all tenants for `all`) and removes it from tenants that no longer match; answers with the resulting status. Unreachable tenants catch up when they return.",
        operationId: 'shareContent',
        tags,
        params: idParam,
        response: { 200: statusView, ...errorResponses(404, 409) },
      },
    },
    async (req) => prop.share(idOf(req), actorOf(req)),
  );

  app.delete(
    '/api/v1/content/:id/share',
    {
      config: { permission: 'content:share' },
      preHandler: roleItemGate,
      schema: {
        summary: 'Un-share from every tenant',
        description: 'Removes the item from every tenant holding it; unreachable tenants lose it when they return.',
        operationId: 'unshareContent',
        tags,
        params: idParam,
        response: { 200: statusView, ...errorResponses(404) },
      },
    },
    async (req) => prop.unshare(idOf(req), actorOf(req)),
  );

  app.get(
    '/api/v1/content/:id/status',
    {
      config: { permission: 'content:read' },
      schema: {
        summary: 'Sharing status of an item',
        description:
          "Rollup (Successful, Sharing, Incomplete, Not Shared), each tenant's state (not-shared, sharing, shared, failed, out-of-date) with version and reason (for a playbook: its dependencies there, each present or not), and the sharing log.",
        operationId: 'contentStatus',
        tags,
        params: idParam,
        response: { 200: statusView, ...errorResponses(404) },
      },
    },
    async (req) => prop.status(idOf(req)),
  );
}
