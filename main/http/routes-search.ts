/**
 * Bird's-eye view routes: incident and indicator search across tenants, and commands across tenants (read-only ones
 * with `commands:fanout`; write ones with `commands:write` too, main/search/write-commands.ts).
 */
import type { FastifyInstance } from 'fastify';
import {
  INDICATOR_TYPES,
  MAX_INDICATOR_VALUE,
  REPUTATIONS,
  type IndicatorType,
  type Reputation,
} from '#common/indicators.js';
import { NAME_LIST_PATTERN, NAME_PATTERN } from '#common/names.js';
import { TENANT_COMMAND_NAMES, TENANT_COMMANDS } from '#common/tenant-commands.js';
import { isWriteCommand, WRITE_COMMAND_NAMES, WRITE_COMMANDS } from '#common/write-commands.js';
import type { MainServices } from '../services.js';
import type { ContentPropagation } from '../content/propagation.js';
import { DEFAULT_WRITE_TIMEOUT_MS, runWriteCommand } from '../search/write-commands.js';
import {
  commaList,
  DEFAULT_FANOUT_TIMEOUT_MS,
  INTEGRATION_COMMAND_PATTERN,
  MAX_FANOUT_TIMEOUT_MS,
  MIN_FANOUT_TIMEOUT_MS,
  runCommand,
} from '../search/fanout.js';
import { DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT, searchIncidents } from '../search/incidents.js';
import { searchIndicators } from '../search/indicators.js';
import { errorResponses, limitOf, limitParam } from './schemas.js';

const tenantErrors = {
  type: 'array',
  description: 'Tenants that could not answer (down, slow past the deadline, refused): the rest still answered.',
  items: {
    type: 'object',
    required: ['tenant', 'code', 'message'],
    properties: { tenant: { type: 'string' }, code: { type: 'string' }, message: { type: 'string' } },
  },
} as const;

const searchItem = {
  type: 'object',
  required: ['tenant', 'id', 'created'],
  additionalProperties: true,
  properties: {
    tenant: { type: 'string', description: 'The tenant this incident belongs to' },
    id: { type: 'string', description: 'Id within its tenant' },
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
    site: { type: 'string', description: "The tenant's site it belongs to, when it names one" },
  },
} as const;

const indicatorItem = {
  type: 'object',
  required: ['tenant', 'value', 'type', 'reputation', 'lastSeen'],
  additionalProperties: true,
  properties: {
    tenant: { type: 'string', description: 'The tenant this indicator belongs to' },
    value: { type: 'string', description: 'The indicator itself (an IP address, a domain, a hash…)' },
    type: { type: 'string', description: INDICATOR_TYPES.join(', ') },
    reputation: { type: 'string', description: REPUTATIONS.join(', ') },
    firstSeen: { type: 'string', description: 'When this tenant first saw it' },
    lastSeen: { type: 'string', description: 'When this tenant last saw it' },
    incidents: {
      type: 'array',
      items: { type: 'string' },
      description: "Ids of the tenant's incidents it was seen in",
    },
  },
} as const;

const timeoutDescription = `Per-tenant deadline in ms (${MIN_FANOUT_TIMEOUT_MS}-${MAX_FANOUT_TIMEOUT_MS}, default ${DEFAULT_FANOUT_TIMEOUT_MS}); a tenant past it is reported in errors`;

const tenantSelection = {
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
} as const;

interface IndicatorQs {
  value?: string;
  type?: IndicatorType;
  reputation?: Reputation;
  tenants?: string;
  labels?: string;
  limit?: string;
  timeoutMs?: string;
}
interface SearchQs {
  q?: string;
  tenants?: string;
  labels?: string;
  status?: 'open' | 'closed';
  severity?: string;
  type?: string;
  limit?: string;
  cursor?: string;
  timeoutMs?: string;
}

export function registerSearchRoutes(app: FastifyInstance, s: MainServices, propagation: ContentPropagation): void {
  app.get(
    '/api/v1/search/incidents',
    {
      config: { permission: 'search:read' },
      schema: {
        summary: 'Search incidents across tenants',
        description:
          'Asks every chosen tenant (named in `tenants`, or carrying any of `labels`, or else every tenant the caller may reach) at once, each within a deadline, and merges the answers newest first. A tenant that is down or slow is listed in `errors`; the others still answer. Page on with `cursor` = the previous `next`, repeating the same filters. Nothing of the results is stored on main.',
        operationId: 'searchIncidents',
        tags: ['tenants'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            q: {
              type: 'string',
              minLength: 1,
              maxLength: 200,
              description: 'Text in name or details (case-insensitive)',
            },
            ...tenantSelection,
            status: { type: 'string', enum: ['open', 'closed'], description: 'Only incidents with this status' },
            severity: { type: 'string', pattern: '^[0-4]$', description: 'Only incidents of this severity (0-4)' },
            type: { type: 'string', minLength: 1, maxLength: 100, description: 'Only incidents of this type' },
            limit: limitParam(`Page size, 1-${MAX_SEARCH_LIMIT} (default ${DEFAULT_SEARCH_LIMIT})`),
            cursor: {
              type: 'string',
              maxLength: 12_000,
              pattern: '^[A-Za-z0-9_-]+$',
              description: 'Opaque: the `next` of the previous page',
            },
            timeoutMs: { type: 'string', pattern: '^[0-9]{1,5}$', description: timeoutDescription },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['items', 'errors', 'next'],
            description: 'One page, newest first',
            properties: {
              items: { type: 'array', items: searchItem },
              errors: tenantErrors,
              next: {
                type: 'string',
                nullable: true,
                description: 'Cursor for the next page; null when every tenant has given all its matches',
              },
            },
          },
          ...errorResponses(404),
        },
      },
    },
    async (req) => {
      const q = req.query as SearchQs;
      return searchIncidents(
        s.tenants,
        req.principal!,
        {
          q: q.q,
          status: q.status,
          type: q.type,
          severity: q.severity === undefined ? undefined : Number(q.severity),
          tenants: commaList(q.tenants, 'tenants'),
          labels: commaList(q.labels, 'labels'),
          limit: limitOf(q.limit),
          cursor: q.cursor,
          timeoutMs: q.timeoutMs === undefined ? undefined : Number(q.timeoutMs),
        },
        s.audit,
      );
    },
  );

  app.get(
    '/api/v1/search/indicators',
    {
      config: { permission: 'search:read' },
      schema: {
        summary: 'Search indicators across tenants',
        description: `Asks every chosen tenant (named in \`tenants\`, or carrying any of \`labels\`, or else every tenant the caller may reach) at once, each within a deadline, for the indicators matching \`value\`, \`type\` and \`reputation\` (at least one of them), and merges the answers by \`lastSeen\`, newest first, equal times by tenant name. A tenant that does not know the indicator is simply absent; a tenant that is down or slow is listed in \`errors\`. It does not page (\`next\` is always null): it answers the newest \`limit\` matches, up to ${MAX_SEARCH_LIMIT}; to see others, narrow the filters. Nothing of the results is stored on main.`,
        operationId: 'searchIndicators',
        tags: ['tenants'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            value: {
              type: 'string',
              minLength: 1,
              maxLength: MAX_INDICATOR_VALUE,
              description: 'Exact indicator value (e.g. 198.51.100.7), in any type unless `type` is given',
            },
            type: { type: 'string', enum: INDICATOR_TYPES, description: 'Only indicators of this type' },
            reputation: { type: 'string', enum: REPUTATIONS, description: 'Only indicators with this reputation' },
            ...tenantSelection,
            limit: limitParam(
              `Most items to answer, 1-${MAX_SEARCH_LIMIT} (default ${DEFAULT_SEARCH_LIMIT}); the newest ones`,
            ),
            timeoutMs: { type: 'string', pattern: '^[0-9]{1,5}$', description: timeoutDescription },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['items', 'errors', 'next'],
            description: 'The newest matches across the chosen tenants',
            properties: {
              items: { type: 'array', items: indicatorItem },
              errors: tenantErrors,
              next: {
                type: 'string',
                nullable: true,
                description: 'Always null: this search does not page; narrow the filters instead',
              },
            },
          },
          ...errorResponses(404),
        },
      },
    },
    async (req) => {
      const q = req.query as IndicatorQs;
      return searchIndicators(
        s.tenants,
        req.principal!,
        {
          value: q.value,
          type: q.type,
          reputation: q.reputation,
          tenants: commaList(q.tenants, 'tenants'),
          labels: commaList(q.labels, 'labels'),
          limit: limitOf(q.limit),
          timeoutMs: q.timeoutMs === undefined ? undefined : Number(q.timeoutMs),
        },
        s.audit,
      );
    },
  );

  const names = {
    type: 'array',
    minItems: 1,
    maxItems: 1000,
    uniqueItems: true,
    items: { type: 'string', pattern: NAME_PATTERN },
  } as const;
  app.post(
    '/api/v1/commands',
    {
      config: { permission: 'commands:fanout' },
      schema: {
        summary: 'Run a command across tenants',
        description: `Runs one command on every chosen tenant at once, each within a deadline, and answers with each tenant's outcome. Read-only commands: ${TENANT_COMMAND_NAMES.map((n) => `\`${n}\` (${TENANT_COMMANDS[n].description})`).join('; ')}; and \`integration:INSTANCE.COMMAND\`, which each tenant runs with its own instance and credentials and refuses unless the command is read-only. Write commands, which also need the \`commands:write\` permission (403 naming it before anything runs anywhere): ${WRITE_COMMAND_NAMES.map((n) => `\`${n}\` (${WRITE_COMMANDS[n].description})`).join('; ')}. Results are not stored on main; the run is audited.`,
        operationId: 'runTenantCommand',
        tags: ['commands'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['command'],
          properties: {
            command: {
              type: 'string',
              anyOf: [
                { enum: [...TENANT_COMMAND_NAMES, ...WRITE_COMMAND_NAMES] },
                { pattern: INTEGRATION_COMMAND_PATTERN },
              ],
              description:
                "Which command: a tenant command, a write command, or `integration:INSTANCE.COMMAND` (a read-only command of each tenant's own instance)",
            },
            args: {
              type: 'object',
              additionalProperties: true,
              description: "The command's arguments (checked against its schema before any tenant is asked)",
            },
            tenants: { ...names, description: 'Tenants to run it on (or labels)' },
            labels: {
              ...names,
              maxItems: 50,
              description: 'Run it on tenants carrying any of these labels (or tenants)',
            },
            timeoutMs: {
              type: 'integer',
              minimum: MIN_FANOUT_TIMEOUT_MS,
              maximum: MAX_FANOUT_TIMEOUT_MS,
              description: `${timeoutDescription} (write commands: default ${DEFAULT_WRITE_TIMEOUT_MS})`,
            },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['results'],
            description: "Each tenant's outcome, by tenant name",
            properties: {
              results: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['tenant', 'ok'],
                  properties: {
                    tenant: { type: 'string' },
                    ok: { type: 'boolean' },
                    result: { type: 'object', additionalProperties: true, description: "The command's answer (ok)" },
                    error: {
                      type: 'object',
                      properties: { code: { type: 'string' }, message: { type: 'string' } },
                      description: 'Why it failed on this tenant (not ok)',
                    },
                  },
                },
              },
            },
          },
          ...errorResponses(404, 409),
        },
      },
    },
    async (req) => {
      const b = req.body as {
        command: string;
        args?: Record<string, unknown>;
        tenants?: string[];
        labels?: string[];
        timeoutMs?: number;
      };
      if (isWriteCommand(b.command))
        return runWriteCommand(
          { tenants: s.tenants, audit: s.audit, content: s.content, propagation },
          req.principal!,
          { ...b, command: b.command },
          req.ip,
        );
      return runCommand(s.tenants, s.audit, req.principal!, b, req.ip);
    },
  );
}
