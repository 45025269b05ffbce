/**
 * A tenant's content API. Users list and read every item, and create, change and delete the tenant's
 * own; an item shared by main is read-only for every user, the tenant's admin included (403
 * ERR_CONTENT_SHARED_READONLY). `/content/shared/:id` is main's propagation only: the signed claim must
 * carry main's propagation identity (see common/content.ts), which no relayed user request can.
 * A local script or playbook is code a playbook run executes with its own permissions (integrations:run,
 * incidents:write), whoever wrote it, and a local automation rule starts runs as the tenant: creating, changing or
 * deleting one of these needs `playbooks:write` as well as
 * `content:write` (403 ERR_CONTENT_RUNNABLE_FORBIDDEN), so `content:write` alone cannot raise what its holder does.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  CONTENT_BODY_MAX,
  CONTENT_ID_PATTERN,
  CONTENT_NAME_MAX,
  CONTENT_NAME_PATTERN,
  CONTENT_TYPES,
  LOCAL_CONTENT_ID_PATTERN,
  isContentPropagation,
  type ContentType,
  type SharedContentPush,
} from '#common/content.js';
import { NAME_PATTERN } from '#common/names.js';
import { AccessDeniedError, BadParameterError } from '#common/errors.js';
import type { ContentStore } from './content-store.js';
import type { SiteStore } from './sites/site-store.js';

const name = { type: 'string', minLength: 1, maxLength: CONTENT_NAME_MAX, pattern: CONTENT_NAME_PATTERN } as const;
const body = { type: 'string', maxLength: CONTENT_BODY_MAX } as const;
const labels = {
  type: 'array',
  maxItems: 50,
  uniqueItems: true,
  items: { type: 'string', pattern: NAME_PATTERN },
} as const;
const type = { type: 'string', enum: [...CONTENT_TYPES] } as const;
const anyId = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', pattern: `${CONTENT_ID_PATTERN}|${LOCAL_CONTENT_ID_PATTERN}` } },
} as const;
const sharedId = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', pattern: CONTENT_ID_PATTERN } },
} as const;

/** Types whose items a playbook run executes (see the header). */
const RUNNABLE: ReadonlySet<ContentType> = new Set<ContentType>(['script', 'playbook', 'automation-rule']);

/** A shared item is left to the store's own refusal (read-only for everyone). */
function checkRunnable(req: FastifyRequest, item: { type: ContentType; shared?: boolean }): void {
  const type = item.type;
  if (!item.shared && RUNNABLE.has(type) && !req.permissions?.has('playbooks:write'))
    throw new AccessDeniedError(
      'ERR_CONTENT_RUNNABLE_FORBIDDEN',
      `a local ${type} runs with a playbook run's permissions; writing one needs playbooks:write`,
    );
}

export function registerContentRoutes(app: FastifyInstance, store: ContentStore, sites: SiteStore): void {
  app.get(
    '/api/v1/content',
    {
      config: { tenantPermission: 'content:read' },
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { type, shared: { type: 'string', enum: ['true', 'false'] } },
        },
      },
    },
    async (req) => {
      const q = req.query as { type?: string; shared?: string };
      return store.list({ type: q.type, shared: q.shared === undefined ? undefined : q.shared === 'true' });
    },
  );

  app.get(
    '/api/v1/content/:id',
    { config: { tenantPermission: 'content:read' }, schema: { params: anyId } },
    async (req) => store.get((req.params as { id: string }).id),
  );

  app.post(
    '/api/v1/content',
    {
      config: { tenantPermission: 'content:write' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['type', 'name', 'body'],
          properties: { type, name, body, labels },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { type: ContentType; name: string; body: string; labels?: string[] };
      // A local "role" item would look like a role and grant nothing: tenant roles have their own route and checks.
      if (b.type === 'role')
        throw new BadParameterError(
          'ERR_CONTENT_ROLE_LOCAL',
          "type: a tenant's own roles are made with POST /api/v1/roles (palisade roles create NAME --tenant T), not as content",
          { field: 'type' },
        );
      if (b.type === 'connection')
        throw new BadParameterError(
          'ERR_CONTENT_CONNECTION_LOCAL',
          "type: a tenant's own connections are made with POST /api/v1/connections (palisade connections create NAME " +
            '--tenant T), not as content',
          { field: 'type' },
        );
      checkRunnable(req, b);
      return reply.code(201).send(await store.createLocal(b, req.caller?.id ?? ''));
    },
  );

  app.put(
    '/api/v1/content/:id',
    {
      config: { tenantPermission: 'content:write' },
      schema: {
        params: anyId,
        body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { name, body, labels } },
      },
    },
    async (req) => {
      const id = (req.params as { id: string }).id;
      checkRunnable(req, await store.get(id));
      return store.updateLocal(id, req.body as { name?: string; body?: string; labels?: string[] });
    },
  );

  app.delete(
    '/api/v1/content/:id',
    { config: { tenantPermission: 'content:write' }, schema: { params: anyId } },
    async (req) => {
      const id = (req.params as { id: string }).id;
      checkRunnable(req, await store.get(id));
      return store.deleteLocal(id);
    },
  );

  // Propagation only. The route permission is checked first (main signs its propagation as an admin),
  // then the propagation claim, so a tenant admin relaying here is refused too.
  const propagationOnly = async (req: { caller?: Parameters<typeof isContentPropagation>[0] }) => {
    if (!isContentPropagation(req.caller))
      throw new AccessDeniedError(
        'ERR_CONTENT_PROPAGATION_ONLY',
        "shared content is written only by main's content propagation",
      );
  };
  app.put(
    '/api/v1/content/shared/:id',
    {
      config: { tenantPermission: 'content:write' },
      preValidation: propagationOnly,
      schema: {
        params: sharedId,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['type', 'name', 'body', 'version', 'labels'],
          properties: {
            type,
            name,
            body,
            labels,
            version: { type: 'integer', minimum: 1 },
            region: { type: 'string', nullable: true, pattern: NAME_PATTERN },
          },
        },
      },
    },
    // The answer names the sites the share reached and the inactive ones it passed by (docs/sites.md): main's
    // status of the item is Incomplete while a tenant has an inactive site.
    async (req) => {
      const id = (req.params as { id: string }).id;
      const item = await store.putShared(id, req.body as SharedContentPush);
      return { ...item, sites: await sites.shared(id, item.version) };
    },
  );

  app.delete(
    '/api/v1/content/shared/:id',
    {
      config: { tenantPermission: 'content:write' },
      preValidation: propagationOnly,
      schema: { params: sharedId },
    },
    async (req) => store.deleteShared((req.params as { id: string }).id),
  );
}
