/**
 * A tenant's sites API (`/api/v1/sites`, through main `/api/v1/tenants/T/api/sites`; docs/sites.md): list (who may
 * read incidents), create, activate and deactivate (`sites:write`). Deactivating removes the site's data, so it
 * takes `{"confirm": true}`; without it the answer is 409 ERR_SITE_CONFIRM counting what would be removed, and
 * nothing changes. Not the store (site-store.ts) nor the removal (site-purge.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ConflictError } from '#common/errors.js';
import { NAME_PARAMS, NAME_PATTERN } from '#common/names.js';
import { describeRemoval } from '#common/sites.js';
import type { SiteStore } from './site-store.js';
import type { SitePurge } from './site-purge.js';

const siteOut = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    active: { type: 'boolean' },
    syncStatus: { type: 'string', enum: ['synced', 'pending', 'inactive'] },
    lastSynced: { type: 'string', nullable: true },
    lastSyncedItem: {
      type: 'object',
      nullable: true,
      properties: { id: { type: 'string' }, version: { type: 'integer' } },
    },
    created: { type: 'string' },
    updated: { type: 'string' },
  },
} as const;

/** Activating and deactivating take an optional body: none is `{}` (so, for deactivate, not confirmed). */
const noBodyIsEmpty = async (req: FastifyRequest) => {
  if (req.body === undefined || req.body === null) req.body = {};
};

export function registerSiteRoutes(app: FastifyInstance, sites: SiteStore, purge: SitePurge): void {
  app.get(
    '/api/v1/sites',
    {
      config: { tenantPermission: 'incidents:read' },
      schema: { response: { 200: { type: 'array', items: siteOut } } },
    },
    async () => sites.list(),
  );

  app.post(
    '/api/v1/sites',
    {
      config: { tenantPermission: 'sites:write' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: { name: { type: 'string', pattern: NAME_PATTERN } },
        },
      },
    },
    async (req, reply) => {
      const s = await sites.create((req.body as { name: string }).name);
      req.auditAs = { action: 'site.create', target: s.name };
      return reply.code(201).send(s);
    },
  );

  app.post(
    '/api/v1/sites/:name/activate',
    {
      config: { tenantPermission: 'sites:write' },
      preValidation: noBodyIsEmpty,
      schema: { params: NAME_PARAMS, body: { type: 'object', additionalProperties: false, properties: {} } },
    },
    async (req) => {
      const name = (req.params as { name: string }).name;
      const s = await sites.activate(name);
      req.auditAs = { action: 'site.activate', target: name };
      return s;
    },
  );

  app.post(
    '/api/v1/sites/:name/deactivate',
    {
      config: { tenantPermission: 'sites:write' },
      preValidation: noBodyIsEmpty,
      schema: {
        params: NAME_PARAMS,
        body: { type: 'object', additionalProperties: false, properties: { confirm: { type: 'boolean' } } },
      },
    },
    async (req) => {
      const name = (req.params as { name: string }).name;
      await sites.get(name); // 404 before anything else
      if ((req.body as { confirm?: boolean } | undefined)?.confirm !== true) {
        const would = await purge.count(name);
        throw new ConflictError(
          'ERR_SITE_CONFIRM',
          `deactivating site ${name} removes its data: ${describeRemoval(would)}; nothing was changed: ` +
            'confirm with {"confirm": true} (CLI: --yes)',
          { field: 'confirm' },
        );
      }
      const site = await sites.deactivate(name);
      const removed = await purge.purge(name);
      req.auditAs = { action: 'site.deactivate', target: name, detail: { removed } };
      return { site, removed };
    },
  );
}
