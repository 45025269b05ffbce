/**
 * A tenant's security profile API (docs/events.md#security-profiles): `POST /api/v1/profiles {"name","domains"}`,
 * `GET /api/v1/profiles` (`{"items":[{id,name,domains,…}]}`), `DELETE /api/v1/profiles/:name`. Reading needs
 * `users:read`, changing `users:write` (a profile limits users, as roles do); changes are audited. The domains
 * must exist; a profile carried by a user of this tenant is not removed (409). Enforcement is profile-scope.ts's.
 */
import type { FastifyInstance } from 'fastify';
import { ConflictError } from '#common/errors.js';
import { DOMAIN_NAME_PATTERN } from '#common/events.js';
import type { AccessStore } from './access-store.js';
import type { EventConfig } from './events/event-config.js';
import { PROFILE_NAME_PATTERN, type ProfileStore } from './profiles.js';

export function registerProfileRoutes(
  app: FastifyInstance,
  d: { profiles: ProfileStore; access: AccessStore; config: EventConfig },
): void {
  app.get('/api/v1/profiles', { config: { tenantPermission: 'users:read' } }, async () => ({
    items: d.profiles.list(),
  }));
  app.post(
    '/api/v1/profiles',
    {
      config: { tenantPermission: 'users:write' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'domains'],
          properties: {
            name: { type: 'string', pattern: PROFILE_NAME_PATTERN },
            domains: {
              type: 'array',
              minItems: 1,
              maxItems: 100,
              uniqueItems: true,
              items: { type: 'string', pattern: DOMAIN_NAME_PATTERN },
            },
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { name: string; domains: string[] };
      for (const dom of b.domains) d.config.domain(dom, 'domains'); // 404 naming the field for a missing domain
      const p = await d.profiles.create(b.name, b.domains, req.caller?.id ?? '');
      req.auditAs = { action: 'profile.create', target: p.name, detail: { domains: p.domains } };
      return reply.code(201).send(p);
    },
  );
  app.delete(
    '/api/v1/profiles/:name',
    {
      config: { tenantPermission: 'users:write' },
      schema: {
        params: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: { name: { type: 'string', pattern: PROFILE_NAME_PATTERN } },
        },
      },
    },
    async (req) => {
      const { name } = req.params as { name: string };
      d.profiles.get(name);
      const holders = (await d.access.listUsers()).filter((u) => u.profile === name).map((u) => u.name);
      if (holders.length)
        throw new ConflictError('ERR_PROFILE_IN_USE', `profile "${name}" is carried by ${holders.join(', ')}`, {
          field: 'name',
        });
      const p = await d.profiles.remove(name);
      req.auditAs = { action: 'profile.remove', target: name };
      return p;
    },
  );
}
