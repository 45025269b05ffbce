/** Bird's-eye view of events: `GET /api/v1/search/events`, events of many tenants merged newest first. */
import type { FastifyInstance } from 'fastify';
import { DEFAULT_EVENT_SEARCH_LIMIT, DOMAIN_NAME_PATTERN } from '#common/events.js';
import { NAME_LIST_PATTERN } from '#common/names.js';
import type { MainServices } from '../services.js';
import {
  commaList,
  DEFAULT_FANOUT_TIMEOUT_MS,
  MAX_FANOUT_TIMEOUT_MS,
  MIN_FANOUT_TIMEOUT_MS,
} from '../search/fanout.js';
import { MAX_CROSS_TENANT_EVENTS, searchEvents } from '../search/events.js';
import { errorResponses, limitOf, limitParam } from './schemas.js';

interface EventQs {
  domain?: string;
  q?: string;
  from?: string;
  to?: string;
  tenants?: string;
  labels?: string;
  limit?: string;
  timeoutMs?: string;
}

const eventItem = {
  type: 'object',
  required: ['tenant', 'id', 'time', 'domain', 'logSource', 'message'],
  additionalProperties: true,
  properties: {
    tenant: { type: 'string', description: 'The tenant this event belongs to' },
    id: { type: 'string', description: 'Id within its tenant (sorts by time)' },
    time: { type: 'string', description: 'When the engine received it' },
    logSourceTime: { type: 'string', description: "The time in the message's header, when it had one" },
    domain: { type: 'string', description: "The domain tagging gave it within its tenant (or 'Default Domain')" },
    domainRule: { type: 'string', description: 'Which rule chose the domain, e.g. log-source:fw1@engine-a' },
    logSource: { type: 'string', description: 'IDENTIFIER@ENGINE' },
    engine: { type: 'string' },
    sender: { type: 'string' },
    severity: { type: 'integer' },
    facility: { type: 'integer' },
    host: { type: 'string' },
    app: { type: 'string' },
    procId: { type: 'string', description: 'RFC 5424 PROCID (or the PID of an RFC 3164 tag)' },
    msgId: { type: 'string', description: 'RFC 5424 MSGID' },
    structuredData: { type: 'string', description: 'RFC 5424 STRUCTURED-DATA, as sent' },
    message: { type: 'string' },
    sourceAddress: { type: 'string' },
    destinationAddress: { type: 'string' },
    sourcePort: { type: 'integer' },
    destinationPort: { type: 'integer' },
  },
} as const;

export function registerEventSearchRoute(app: FastifyInstance, s: MainServices): void {
  app.get(
    '/api/v1/search/events',
    {
      config: { permission: 'search:read' },
      schema: {
        summary: 'Search events across tenants',
        description: `Asks every chosen tenant (named in \`tenants\`, or carrying any of \`labels\`, or else every tenant the caller may reach) at once, each within a deadline, for its newest events matching the filters, and merges them by time, newest first. A tenant that is down or slow is listed in \`errors\`; the others still answer. It does not page (\`next\` is always null): it answers the newest \`limit\` matches, up to ${MAX_CROSS_TENANT_EVENTS}; for older ones, move \`to\` back. Nothing of the results is stored on main.`,
        operationId: 'searchEvents',
        tags: ['tenants'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            domain: {
              type: 'string',
              pattern: DOMAIN_NAME_PATTERN,
              description: "Only events of each tenant's domain of this name",
            },
            q: { type: 'string', minLength: 1, maxLength: 200, description: 'Text in the message (case-insensitive)' },
            from: { type: 'string', maxLength: 40, description: 'Received at or after this ISO 8601 time' },
            to: { type: 'string', maxLength: 40, description: 'Received at or before this ISO 8601 time' },
            tenants: {
              type: 'string',
              maxLength: 8000,
              pattern: NAME_LIST_PATTERN,
              description: 'Comma-separated tenant names (not with labels)',
            },
            labels: {
              type: 'string',
              maxLength: 4000,
              pattern: NAME_LIST_PATTERN,
              description: 'Comma-separated labels: tenants carrying any of them (not with tenants)',
            },
            limit: limitParam(
              `Most events to answer, 1-${MAX_CROSS_TENANT_EVENTS} (default ${DEFAULT_EVENT_SEARCH_LIMIT})`,
            ),
            timeoutMs: {
              type: 'string',
              pattern: '^[0-9]{1,5}$',
              description: `Per-tenant deadline in ms (${MIN_FANOUT_TIMEOUT_MS}-${MAX_FANOUT_TIMEOUT_MS}, default ${DEFAULT_FANOUT_TIMEOUT_MS})`,
            },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['items', 'errors', 'next'],
            description: 'The newest matches across the chosen tenants',
            properties: {
              items: { type: 'array', items: eventItem },
              errors: {
                type: 'array',
                description: 'Tenants that could not answer (down, slow past the deadline, refused)',
                items: {
                  type: 'object',
                  required: ['tenant', 'code', 'message'],
                  properties: { tenant: { type: 'string' }, code: { type: 'string' }, message: { type: 'string' } },
                },
              },
              next: { type: 'string', nullable: true, description: 'Always null: narrow from/to instead' },
            },
          },
          ...errorResponses(404),
        },
      },
    },
    async (req) => {
      const q = req.query as EventQs;
      return searchEvents(
        s.tenants,
        req.principal!,
        {
          domain: q.domain,
          q: q.q,
          from: q.from,
          to: q.to,
          tenants: commaList(q.tenants, 'tenants'),
          labels: commaList(q.labels, 'labels'),
          limit: limitOf(q.limit),
          timeoutMs: q.timeoutMs === undefined ? undefined : Number(q.timeoutMs),
        },
        s.audit,
      );
    },
  );
}
