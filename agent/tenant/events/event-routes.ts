/**
 * A tenant's events API (through main: `/api/v1/tenants/T/api/events…`): search the stored events, read and
 * change the event settings (CEP fall-through, retention), list log sources and put them in groups. Reading
 * needs `events:read`; changing anything `events:write`, and is audited. Domains and custom properties are
 * domain-routes.ts's; the pipeline that stores events is event-pipeline.ts.
 */
import type { FastifyInstance } from 'fastify';
import { BadParameterError } from '#common/errors.js';
import { parseDuration } from '#common/duration.js';
import {
  DEFAULT_EVENT_SEARCH_LIMIT,
  DOMAIN_NAME_PATTERN,
  GROUP_NAME_PATTERN,
  LOG_SOURCE_NAME_PATTERN,
  MAX_EVENT_SEARCH_LIMIT,
} from '#common/events.js';
import type { EventPipeline } from './event-pipeline.js';
import type { EventSettings } from './event-config.js';
import { EVENT_ID_PATTERN } from './event-store.js';

interface SearchQs {
  domain?: string;
  q?: string;
  from?: string;
  to?: string;
  limit?: string;
  before?: string;
}

/** An ISO time (or ms since the epoch) from a query parameter, or a 400 naming it. */
function time(v: string | undefined, field: string): number | undefined {
  if (v === undefined) return undefined;
  const t = /^\d{1,15}$/.test(v) ? Number(v) : Date.parse(v);
  if (!Number.isFinite(t))
    throw new BadParameterError('ERR_BAD_REQUEST', `${field}: not a time; use ISO 8601, e.g. 2026-12-01T00:00:00Z`, {
      field,
    });
  return t;
}

const settingsView = (s: EventSettings) => ({
  cepFallthrough: s.cepFallthrough,
  retentionMs: s.retentionMs,
  retention: `${+(s.retentionMs / 86_400_000).toFixed(3)}d`,
  fsync: s.fsync,
});

export function registerEventRoutes(app: FastifyInstance, events: EventPipeline): void {
  const { config, store } = events;

  app.get(
    '/api/v1/events',
    {
      config: { tenantPermission: 'events:read' },
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            domain: { type: 'string', pattern: DOMAIN_NAME_PATTERN },
            q: { type: 'string', minLength: 1, maxLength: 200 },
            from: { type: 'string', maxLength: 40 },
            to: { type: 'string', maxLength: 40 },
            limit: { type: 'string', pattern: '^[0-9]+$' }, // its range below: the 400 says it
            before: { type: 'string', pattern: EVENT_ID_PATTERN },
          },
        },
      },
    },
    async (req) => {
      const qs = req.query as SearchQs;
      // More than four digits is never in range (the inputs taken are those of ^[0-9]{1,4}$ in range).
      const limit = qs.limit === undefined ? DEFAULT_EVENT_SEARCH_LIMIT : qs.limit.length > 4 ? NaN : Number(qs.limit);
      if (!(limit >= 1 && limit <= MAX_EVENT_SEARCH_LIMIT))
        throw new BadParameterError('ERR_BAD_REQUEST', `limit: must be 1 to ${MAX_EVENT_SEARCH_LIMIT}`, {
          field: 'limit',
        });
      const from = time(qs.from, 'from');
      const to = time(qs.to, 'to');
      if (from !== undefined && to !== undefined && from > to)
        throw new BadParameterError('ERR_BAD_REQUEST', 'from: after to', { field: 'from' });
      if (qs.domain !== undefined) config.domain(qs.domain); // 404 for a domain that does not exist
      return store.search({ domain: qs.domain, q: qs.q, from, to, limit, before: qs.before, domains: req.domains });
    },
  );

  app.get('/api/v1/events/settings', { config: { tenantPermission: 'events:read' } }, async () =>
    settingsView(config.settings),
  );

  app.patch(
    '/api/v1/events/settings',
    {
      config: { tenantPermission: 'events:write' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: {
            cepFallthrough: { type: 'boolean' },
            retention: { type: 'string', minLength: 1, maxLength: 20 },
            fsync: { type: 'boolean' },
          },
        },
      },
    },
    async (req) => {
      const b = req.body as { cepFallthrough?: boolean; retention?: string; fsync?: boolean };
      const s = await config.updateSettings({
        ...(b.cepFallthrough !== undefined ? { cepFallthrough: b.cepFallthrough } : {}),
        ...(b.fsync !== undefined ? { fsync: b.fsync } : {}),
        ...(b.retention !== undefined ? { retentionMs: parseDuration(b.retention, 'retention') } : {}),
      });
      req.auditAs = { action: 'events.settings', target: 'events', detail: { ...b } };
      return settingsView(s);
    },
  );

  app.get('/api/v1/log-sources', { config: { tenantPermission: 'events:read' } }, async (req) => ({
    items: visibleSources(config, req.domains),
  }));

  const sourceParams = {
    type: 'object',
    additionalProperties: false,
    required: ['name'],
    properties: { name: { type: 'string', pattern: LOG_SOURCE_NAME_PATTERN }, group: { type: 'string' } },
  } as const;
  app.post(
    '/api/v1/log-sources/:name/groups',
    {
      config: { tenantPermission: 'events:write' },
      schema: {
        params: sourceParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['group'],
          properties: { group: { type: 'string', pattern: GROUP_NAME_PATTERN } },
        },
      },
    },
    async (req) => {
      const { name } = req.params as { name: string };
      const { group } = req.body as { group: string };
      const s = await config.group(name, group);
      req.auditAs = { action: 'log-source.group', target: name, detail: { group } };
      return s;
    },
  );
  app.delete(
    '/api/v1/log-sources/:name/groups/:group',
    {
      config: { tenantPermission: 'events:write' },
      schema: {
        params: {
          ...sourceParams,
          required: ['name', 'group'],
          properties: { ...sourceParams.properties, group: { type: 'string', pattern: GROUP_NAME_PATTERN } },
        },
      },
    },
    async (req) => {
      const { name, group } = req.params as { name: string; group: string };
      const s = await config.group(name, group, true);
      req.auditAs = { action: 'log-source.ungroup', target: name, detail: { group } };
      return s;
    },
  );
}

/**
 * The log sources a caller limited to `domains` may see: one mapped to a domain outside them (by its own mapping, or
 * else by its groups', as tagging ranks them) is another domain's device, and its name says so; one mapped to none is
 * not any domain's (its events are tagged by property, collector or default), and is shown.
 */
function visibleSources(config: EventPipeline['config'], domains: ReadonlySet<string> | undefined) {
  const all = config.listSources();
  if (!domains) return all;
  // Mappings are keyed `KIND~KEY` (event-config.ts mappingId).
  const mapped = (kind: string, key: string) => config.mappings.get(`${kind}~${key}`)?.domain;
  return all.filter((s) => {
    const own = mapped('log-source', s.name);
    if (own !== undefined) return domains.has(own);
    const viaGroups = s.groups.map((g) => mapped('log-source-group', g)).filter((d) => d !== undefined);
    return viaGroups.length === 0 || viaGroups.some((d) => domains.has(d));
  });
}
