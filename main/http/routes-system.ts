/** Health and audit routes. */
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
