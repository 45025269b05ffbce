/**
 * Health, readiness, metrics and audit routes. `/readyz` and `/metrics` sit at the root, outside the versioned JSON
 * API, where probes and Prometheus look by default; the same auth hook guards them
 * (docs/operations.md#metrics-and-readiness).
 */
import type { FastifyInstance } from 'fastify';
import { AGENT_VERSION, PROTOCOL_MAJOR, PROTOCOL_MINOR } from '#common/protocol-version.js';
import type { MainServices } from '../services.js';
import { errorBody, errorResponses } from './schemas.js';

export function registerSystemRoutes(app: FastifyInstance, s: MainServices): void {
  app.get(
    '/api/v1/health',
    {
      config: { permission: 'public' },
      schema: {
        summary: 'Liveness and version',
        description: 'Unauthenticated; 200 while main serves, 503 while it shuts down.',
        operationId: 'health',
        tags: ['system'],
        security: [],
        querystring: { type: 'object', additionalProperties: false, properties: {} },
        response: {
          200: {
            type: 'object',
            description: 'main is serving',
            required: ['status'],
            properties: {
              status: { type: 'string', enum: ['ok'] },
              version: { type: 'string' },
              protocol: { type: 'string' },
            },
          },
          400: { ...errorBody, description: 'Unknown query parameter' },
          503: { ...errorBody, description: 'main is shutting down' },
        },
      },
    },
    async () => ({ status: 'ok', version: AGENT_VERSION, protocol: `${PROTOCOL_MAJOR}.${PROTOCOL_MINOR}` }),
  );

  registerReadiness(app, s);
  registerMetrics(app, s);

  app.get(
    '/api/v1/audit',
    {
      config: { permission: 'audit:read' },
      schema: {
        summary: 'Recent audit entries, newest first',
        description:
          'Who did what, from where, with what outcome: enrolments, key use, changes and denied requests. Never contains secrets.',
        operationId: 'listAudit',
        tags: ['system'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'string', pattern: '^[0-9]{1,5}$' }, action: { type: 'string', maxLength: 64 } },
        },
        response: {
          200: {
            type: 'array',
            description: 'Audit entries',
            items: {
              type: 'object',
              required: ['at', 'actor', 'action', 'outcome'],
              properties: {
                at: { type: 'string' },
                actor: { type: 'string' },
                action: { type: 'string' },
                target: { type: 'string' },
                outcome: { type: 'string' },
                remote: { type: 'string' },
                detail: { type: 'object', additionalProperties: true },
              },
            },
          },
          ...errorResponses(),
        },
      },
    },
    async (req) => {
      const q = req.query as { limit?: string; action?: string };
      return s.audit.list({ limit: Math.min(10_000, Number(q.limit ?? 100) || 100), action: q.action });
    },
  );
}

const noQuery = { type: 'object', additionalProperties: false, properties: {} } as const;
const readyChecks = {
  type: 'object',
  description: 'Each check: true when it is ready',
  required: ['store', 'https', 'agents'],
  properties: {
    store: { type: 'boolean', description: "main's registry (LevelDB) is open" },
    https: { type: 'boolean', description: 'the HTTPS listener is up' },
    agents: { type: 'boolean', description: 'the agent gateway (/agent/v1, /enrol/v1) admits agents' },
  },
} as const;
const NOT_READY: Record<keyof ReturnType<typeof readiness>, string> = {
  store: 'the registry store is not open',
  https: 'the HTTPS listener is not up',
  agents: 'the agent gateway does not admit agents',
};

/** What /readyz checks; the 503 names each one that is false. */
function readiness(app: FastifyInstance, s: MainServices): { store: boolean; https: boolean; agents: boolean } {
  return { store: s.registry.db.status === 'open', https: app.server.listening, agents: s.gateway.accepting };
}

function registerReadiness(app: FastifyInstance, s: MainServices): void {
  app.get(
    '/readyz',
    {
      config: { permission: 'public' },
      schema: {
        summary: 'Readiness: store open, listeners up',
        description:
          'Unauthenticated, for load balancers and orchestrators: 200 while main can serve requests and agents, 503 naming what is not ready (as while it shuts down).',
        operationId: 'readiness',
        tags: ['system'],
        security: [],
        querystring: noQuery,
        response: {
          200: {
            type: 'object',
            description: 'main is ready',
            required: ['ready', 'checks'],
            properties: { ready: { type: 'boolean', enum: [true] }, checks: readyChecks },
          },
          400: { ...errorBody, description: 'Unknown query parameter' },
          503: {
            type: 'object',
            description: 'main is not ready; error.message names what is not',
            required: ['ready', 'checks', 'error'],
            properties: {
              ready: { type: 'boolean', enum: [false] },
              checks: readyChecks,
              error: errorBody.properties.error,
            },
          },
        },
      },
    },
    async (_req, reply) => {
      const checks = readiness(app, s);
      const missing = (Object.keys(checks) as (keyof typeof checks)[]).filter((k) => !checks[k]);
      if (missing.length === 0) return { ready: true, checks };
      const message = `not ready: ${missing.map((k) => NOT_READY[k]).join('; ')}`;
      return reply.code(503).send({ ready: false, checks, error: { code: 'ERR_NOT_READY', message } });
    },
  );
}

function registerMetrics(app: FastifyInstance, s: MainServices): void {
  app.get(
    '/metrics',
    {
      config: { permission: 'metrics:read' },
      schema: {
        summary: 'Prometheus metrics',
        description:
          "Main's metrics in the Prometheus text exposition format (0.0.4): agents, commands, the relay, tunnels, enrolments, authentication failures, tenants per host, and the process. Scrape it with an API key of a role holding `metrics:read`.",
        operationId: 'metrics',
        tags: ['system'],
        querystring: noQuery,
        response: {
          200: {
            description: 'The metrics, one sample per line',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
          ...errorResponses(),
        },
      },
    },
    async (_req, reply) => {
      const m = await s.metrics.render();
      return reply.header('content-type', m.contentType).send(m.text);
    },
  );
}
