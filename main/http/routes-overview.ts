/**
 * The console's overview routes: GET /api/v1/overview (one answer; the benchmark's too) and
 * GET /api/v1/overview/stream (server-sent events). Both with a session cookie or a bearer key, both cut to
 * what the caller may see (console/overview.ts); the stream is console/overview-stream.ts.
 */
import type { FastifyInstance } from 'fastify';
import { errorMessage } from '#common/errors.js';
import { overviewFor, readOverviewState } from '../console/overview.js';
import { OverviewStreams } from '../console/overview-stream.js';
import type { MainServices } from '../services.js';
import { API_SECURITY_HEADERS } from './app.js';
import { agentView, errorBody, errorResponses, tenantEvents } from './schemas.js';

const tags = ['console'];

const overviewSchema = {
  type: 'object',
  description: 'Hosts, engines and tenants the caller may see, with live status',
  required: ['hosts', 'engines', 'tenants'],
  properties: {
    hosts: { type: 'array', items: agentView, description: 'As GET /hosts (callers with agents:read; else [])' },
    engines: {
      type: 'array',
      items: { type: 'object', additionalProperties: true },
      description: 'As GET /engines with agents:read; else name, status, lastSeen, tenant, group of reachable ones',
    },
    tenants: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: true,
        required: ['name', 'status', 'host'],
        properties: {
          name: { type: 'string' },
          status: { type: 'string' },
          host: { type: 'string' },
          region: { type: 'string' },
          labels: { type: 'array', items: { type: 'string' } },
          events: tenantEvents,
        },
      },
      description:
        "As GET /tenants with tenants:read; else name, status, host, labels and events of the caller's tenants",
    },
  },
} as const;

const SCOPE =
  ' Cut to the caller: hosts and full engine rows need agents:read, full tenant rows tenants:read; a customer user sees its own tenant only.';

export function registerOverviewRoutes(app: FastifyInstance, s: MainServices): OverviewStreams {
  const streams = new OverviewStreams(s, s.log.child({ component: 'overview' }));

  app.get(
    '/api/v1/overview',
    {
      config: { permission: 'signed-in' },
      schema: {
        summary: 'Overview of hosts, engines and tenants',
        description: `The console's overview at one moment, as the stream's \`overview\` events carry it.${SCOPE}`,
        operationId: 'getOverview',
        tags,
        response: { 200: overviewSchema, ...errorResponses() },
      },
    },
    async (req) => overviewFor(await readOverviewState(s), req.principal!),
  );

  app.get(
    '/api/v1/overview/stream',
    {
      config: { permission: 'signed-in' },
      schema: {
        summary: 'Live overview (server-sent events)',
        description: `text/event-stream: an \`overview\` event (data: the JSON of GET /overview) on connect and whenever it changes, at most once a second; a comment line every 15 s. Ends when the session ends or the key is revoked. At most 8 streams per user (429 ERR_OVERVIEW_STREAMS).${SCOPE}`,
        operationId: 'streamOverview',
        tags,
        response: {
          200: {
            description: 'An event stream',
            content: { 'text/event-stream': { schema: { type: 'string', description: 'event: overview' } } },
          },
          ...errorResponses(),
          429: { ...errorBody, description: 'Too many streams open' },
        },
      },
    },
    async (req, reply) => {
      const p = req.principal!;
      const slot = streams.admit(p); // refused (429) while it can still be a JSON answer
      const res = reply.raw;
      let close: () => void;
      try {
        reply.hijack();
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          'x-accel-buffering': 'no',
          'strict-transport-security': 'max-age=31536000',
          'x-content-type-options': 'nosniff',
          ...API_SECURITY_HEADERS,
        });
        req.raw.socket.setNoDelay(true);
        close = await streams.open(slot, p, { write: (t) => res.write(t), end: () => res.end() });
      } catch (e) {
        slot.release();
        s.log.warn({ err: errorMessage(e) }, 'overview stream failed to open');
        res.end();
        return;
      }
      if (res.destroyed) close();
      else res.on('close', close);
    },
  );

  return streams;
}
