/** A tenant's SOC data API: incidents and indicators, validated by schema, stored in the tenant's LevelDB. */
import type { FastifyInstance } from 'fastify';
import { BadParameterError } from '#common/errors.js';
import { DEFAULT_DOMAIN } from '#common/events.js';
import { INDICATOR_TYPES, MAX_INDICATOR_VALUE, REPUTATIONS } from '#common/indicators.js';
import { NAME_PATTERN } from '#common/names.js';
import type { Incident, IncidentFilter, Reputation, TenantStore } from './store.js';
import type { SiteStore } from './sites/site-store.js';

const incidentInput = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'type', 'severity'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 500 },
    type: { type: 'string', minLength: 1, maxLength: 100 },
    severity: { type: 'integer', minimum: 0, maximum: 4 },
    details: { type: 'string', maxLength: 100_000 },
    labels: { type: 'object', maxProperties: 50, additionalProperties: { type: 'string', maxLength: 1000 } },
  },
} as const;
/** A new incident may name its site (an active one: checked against the tenant's sites, docs/sites.md). */
const newIncident = {
  ...incidentInput,
  properties: { ...incidentInput.properties, site: { type: 'string', pattern: NAME_PATTERN } },
} as const;

/**
 * What a PATCH of an incident may set: the fields of a new one, any of them (scripts patch by the same rule), but
 * not its site: that is set at creation, so a site's data is what came in for it.
 */
export const INCIDENT_PATCH_SCHEMA = { ...incidentInput, required: [], minProperties: 1 } as const;

/** Most incidents one POST may carry: bounded so one request can't hold the store for long. */
export const MAX_BATCH = 1000;
const incidentOut = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    type: { type: 'string' },
    severity: { type: 'integer' },
    details: { type: 'string' },
    status: { type: 'string' },
    created: { type: 'string' },
    updated: { type: 'string' },
    closed: { type: 'string' },
    closeReason: { type: 'string' },
    labels: { type: 'object', additionalProperties: { type: 'string' } },
    domain: { type: 'string' },
    site: { type: 'string' },
  },
} as const;
const idParam = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', pattern: '^[0-9]{1,12}$' } },
} as const;

type NewIncident = {
  name: string;
  type: string;
  severity: number;
  details?: string;
  labels?: Record<string, string>;
  site?: string;
};

export function registerIncidentRoutes(
  app: FastifyInstance,
  store: TenantStore,
  tenant: string,
  publicKey: Uint8Array,
  sites: Pick<SiteStore, 'checkActive'>,
): void {
  // publicKey: what the CLI seals a connection's secret to (common/sealed-secret.ts), for callers who may not
  // read main's tenant record (a customer's users and keys hold only tenants:relay there).
  app.get('/api/v1/info', { config: { tenantPermission: 'tenant:read' } }, async () => ({
    tenant,
    pid: process.pid,
    publicKey: Buffer.from(publicKey).toString('base64'),
  }));

  // A batch may also come as application/x-ndjson, one incident per line (see body-parsers.ts).
  app.post(
    '/api/v1/incidents',
    {
      config: { tenantPermission: 'incidents:write', ndjsonMaxLines: MAX_BATCH },
      schema: {
        // if/then/else rather than oneOf: ajv validates a 1 000-item batch once, not against both shapes.
        body: {
          type: 'object',
          if: { required: ['items'] },
          then: {
            additionalProperties: false,
            required: ['items'],
            properties: { items: { type: 'array', minItems: 1, maxItems: MAX_BATCH, items: newIncident } },
          },
          else: newIncident,
        },
      },
    },
    async (req, reply) => {
      const b = req.body as NewIncident | { items: NewIncident[] };
      const input = 'items' in b ? b.items : [b];
      const named = new Map<string, string>(); // site → where it first came in, checked once per request
      input.forEach((i, n) => {
        if (i.site && !named.has(i.site)) named.set(i.site, 'items' in b ? `items.${n}.site` : 'site');
      });
      for (const [site, field] of named) await sites.checkActive(site, field);
      const domain = domainOfNew(req.domains);
      const created = await store.createIncidents(
        input.map((i) => ({
          name: i.name,
          type: i.type,
          severity: i.severity,
          details: i.details ?? '',
          ...(i.labels ? { labels: i.labels } : {}),
          ...(i.site ? { site: i.site } : {}),
          ...(domain ? { domain } : {}),
        })),
      );
      // A batch answers with ids only: echoing 1 000 records back would double the cost of ingest.
      return reply.code(201).send('items' in b ? { count: created.length, ids: created.map((i) => i.id) } : created[0]);
    },
  );

  app.get(
    '/api/v1/incidents',
    {
      config: { tenantPermission: 'incidents:read' },
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            status: { type: 'string', enum: ['open', 'closed'] },
            severity: { type: 'string', pattern: '^[0-4]$' },
            type: { type: 'string', maxLength: 100 },
            q: { type: 'string', maxLength: 200 },
            site: { type: 'string', pattern: NAME_PATTERN },
            limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
            cursor: { type: 'string', pattern: '^[0-9]{1,12}$' },
          },
        },
        // A response schema lets fastify serialise pages with fast-json-stringify instead of JSON.stringify.
        response: {
          200: {
            type: 'object',
            properties: { items: { type: 'array', items: incidentOut }, next: { type: 'string', nullable: true } },
          },
        },
      },
    },
    async (req) => {
      const q = req.query as {
        status?: 'open' | 'closed';
        severity?: string;
        type?: string;
        q?: string;
        site?: string;
        limit?: string;
        cursor?: string;
      };
      const limit = Math.min(1000, Math.max(1, Number(q.limit ?? 50)));
      const f: IncidentFilter = {
        status: q.status,
        severity: q.severity === undefined ? undefined : Number(q.severity),
        type: q.type,
        q: q.q,
        site: q.site,
        domains: req.domains,
      };
      return store.listIncidents(f, limit, q.cursor);
    },
  );

  app.get(
    '/api/v1/incidents/:id',
    { config: { tenantPermission: 'incidents:read' }, schema: { params: idParam } },
    async (req) => store.getIncident((req.params as { id: string }).id),
  );

  app.patch(
    '/api/v1/incidents/:id',
    {
      config: { tenantPermission: 'incidents:write' },
      schema: {
        params: idParam,
        body: INCIDENT_PATCH_SCHEMA,
      },
    },
    async (req) => {
      const cur = await store.getIncident((req.params as { id: string }).id);
      if (cur.status === 'closed')
        throw new BadParameterError('ERR_INCIDENT_CLOSED', `incident ${cur.id} is closed; reopen is not supported`, {
          field: 'id',
        });
      const next: Incident = { ...cur, ...(req.body as Partial<Incident>), updated: new Date().toISOString() };
      await store.putIncident(next);
      return next;
    },
  );

  app.post(
    '/api/v1/incidents/:id/close',
    {
      config: { tenantPermission: 'incidents:write' },
      schema: {
        params: idParam,
        body: {
          type: 'object',
          additionalProperties: false,
          properties: { reason: { type: 'string', maxLength: 2000 } },
        },
      },
    },
    async (req) => {
      const cur = await store.getIncident((req.params as { id: string }).id);
      if (cur.status === 'closed') return cur;
      const now = new Date().toISOString();
      const next: Incident = {
        ...cur,
        status: 'closed',
        closed: now,
        updated: now,
        closeReason: (req.body as { reason?: string } | undefined)?.reason ?? '',
      };
      await store.putIncident(next);
      return next;
    },
  );

  app.post(
    '/api/v1/indicators',
    {
      config: { tenantPermission: 'incidents:write' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['value', 'type'],
          properties: {
            value: { type: 'string', minLength: 1, maxLength: MAX_INDICATOR_VALUE },
            type: { type: 'string', enum: INDICATOR_TYPES },
            reputation: { type: 'string', enum: REPUTATIONS },
            incident: { type: 'string', pattern: '^[0-9]{1,12}$' },
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { value: string; type: string; reputation?: Reputation; incident?: string };
      if (b.incident) await store.getIncident(b.incident);
      return reply
        .code(201)
        .send(await store.upsertIndicator(b.type, b.value, { reputation: b.reputation, incident: b.incident }));
    },
  );

  app.get(
    '/api/v1/indicators',
    {
      config: { tenantPermission: 'incidents:read' },
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            type: { type: 'string', enum: INDICATOR_TYPES },
            reputation: { type: 'string', enum: REPUTATIONS },
            value: { type: 'string', maxLength: MAX_INDICATOR_VALUE },
            limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
          },
        },
      },
    },
    async (req) => {
      const q = req.query as { type?: string; reputation?: Reputation; value?: string; limit?: string };
      if (q.value !== undefined && q.type !== undefined) {
        // One known key: [it], or 404 when this tenant has never seen it (callers tell "unknown" by that).
        const i = await store.getIndicator(q.type, q.value);
        return !q.reputation || i.reputation === q.reputation ? [i] : [];
      }
      return store.listIndicators(
        { value: q.value, type: q.type, reputation: q.reputation },
        Math.min(1000, Math.max(1, Number(q.limit ?? 100))),
      );
    },
  );
}

/**
 * The domain of an incident a caller makes: none (the Default Domain) for one without a security profile; else its
 * profile's first domain, so the caller sees what it made (an incident without one would be the Default Domain's,
 * which the profile may not include).
 */
function domainOfNew(domains: ReadonlySet<string> | undefined): string | undefined {
  const first = domains?.values().next().value;
  return first === undefined || first === DEFAULT_DOMAIN ? undefined : first;
}
