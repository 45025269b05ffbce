/**
 * A tenant's obfuscation API (docs/events.md#obfuscation): `POST /api/v1/obfuscation {"name","domain"?,"field"? |
 * "regex"?}` answers the rule with its `key` (the only time it is shown; the tenant keeps the public half only),
 * `GET /api/v1/obfuscation` lists rules (`{"items":[…]}`, no key), `DELETE /api/v1/obfuscation/:name` removes one
 * (values it sealed stay sealed). `POST /api/v1/events/reveal {"key", …search filters}` is the events search with
 * that rule's tokens opened, for callers holding `events:reveal`; the key travels in the signed body, never a URL,
 * and is neither stored nor logged. Rules need `events:write`; all are audited.
 */
import type { FastifyInstance } from 'fastify';
import { BadParameterError } from '#common/errors.js';
import {
  DEFAULT_EVENT_SEARCH_LIMIT,
  DOMAIN_NAME_PATTERN,
  MAX_EVENT_SEARCH_LIMIT,
  MAX_PROPERTY_REGEX,
} from '#common/events.js';
import type { EventPipeline } from './event-pipeline.js';
import { EVENT_ID_PATTERN } from './event-store.js';
import {
  FIELD_NAME_PATTERN,
  OBFUSCATION_NAME_PATTERN,
  checkField,
  revealEvent,
  type Obfuscation,
} from './obfuscation.js';

const nameParam = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string', pattern: OBFUSCATION_NAME_PATTERN } },
} as const;

function time(v: string | undefined, field: string): number | undefined {
  if (v === undefined) return undefined;
  const t = /^\d{1,15}$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(t)) throw new BadParameterError('ERR_BAD_REQUEST', `${field}: not a time`, { field });
  return t;
}

export function registerObfuscationRoutes(app: FastifyInstance, ob: Obfuscation, events: EventPipeline): void {
  // A caller limited to some domains sees the rules for every domain and for its own, not another domain's (its name).
  app.get('/api/v1/obfuscation', { config: { tenantPermission: 'events:read' } }, async (req) => ({
    items: ob.list().filter((r) => !req.domains || r.domain === undefined || req.domains.has(r.domain)),
  }));
  app.post(
    '/api/v1/obfuscation',
    {
      config: { tenantPermission: 'events:write' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: {
            name: { type: 'string', pattern: OBFUSCATION_NAME_PATTERN },
            domain: { type: 'string', pattern: DOMAIN_NAME_PATTERN },
            field: { type: 'string', pattern: FIELD_NAME_PATTERN },
            regex: { type: 'string', minLength: 1, maxLength: MAX_PROPERTY_REGEX },
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { name: string; domain?: string; field?: string; regex?: string };
      if (b.domain !== undefined) events.config.domain(b.domain); // 404 naming the field
      if (b.field !== undefined && b.regex === undefined) checkField(b.field, [...events.config.properties.keys()]);
      const r = await ob.create(b, req.caller?.id ?? '');
      req.auditAs = {
        action: 'obfuscation.create',
        target: r.name,
        detail: { domain: b.domain, field: b.field, regex: b.regex },
      };
      return reply.code(201).send(r);
    },
  );
  app.delete(
    '/api/v1/obfuscation/:name',
    { config: { tenantPermission: 'events:write' }, schema: { params: nameParam } },
    async (req) => {
      const r = await ob.remove((req.params as { name: string }).name);
      req.auditAs = { action: 'obfuscation.remove', target: r.name };
      return r;
    },
  );
  app.post(
    '/api/v1/events/reveal',
    {
      config: { tenantPermission: 'events:reveal' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['key'],
          properties: {
            key: { type: 'string', minLength: 40, maxLength: 64 },
            domain: { type: 'string', pattern: DOMAIN_NAME_PATTERN },
            q: { type: 'string', minLength: 1, maxLength: 200 },
            from: { type: 'string', maxLength: 40 },
            to: { type: 'string', maxLength: 40 },
            limit: { type: 'integer', minimum: 1, maximum: MAX_EVENT_SEARCH_LIMIT },
            before: { type: 'string', pattern: EVENT_ID_PATTERN },
          },
        },
      },
    },
    async (req) => {
      const b = req.body as { key: string; domain?: string; q?: string; from?: string; to?: string; limit?: number };
      const { opener, rule } = ob.opener(b.key);
      if (b.domain !== undefined) events.config.domain(b.domain);
      const page = await events.store.search({
        domain: b.domain,
        q: b.q,
        from: time(b.from, 'from'),
        to: time(b.to, 'to'),
        limit: b.limit ?? DEFAULT_EVENT_SEARCH_LIMIT,
        before: (b as { before?: string }).before,
        domains: req.domains,
      });
      req.auditAs = { action: 'events.reveal', target: rule.name, detail: { domain: b.domain, q: b.q } };
      return { ...page, items: page.items.map((e) => revealEvent(e, opener)), revealed: rule.name };
    },
  );
}
