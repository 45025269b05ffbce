/**
 * A tenant's engine API: tunnels (outbound listeners here whose connections reach the customer network
 * through an engine; inbound listeners on the engines whose connections reach a service here), the
 * connected engines, and integration commands run on an engine. Tunnels and commands may be bound to an engine
 * group: they then use only that group's live engines (tunnels/engine-target.ts).
 */
import type { FastifyInstance } from 'fastify';
import { NAME_PATTERN } from '#common/names.js';
import type { TunnelEndpoint, Direction } from './tunnel-endpoint.js';

/** HOST:PORT; TunnelEndpoint.open reads it (common/address.ts) and says what is wrong with it. */
const hostPort = { type: 'string', minLength: 1, maxLength: 300 };
const engineName = { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,62}$' };
/** Engine groups are named as main names them when it makes their bundles. */
const groupName = { type: 'string', pattern: NAME_PATTERN };
export const ENGINE_COMMANDS = ['http.request', 'tcp.check'] as const;

/**
 * Whether an engine command may run again on another engine when its engine ends before answering (it may
 * have run already): only read-only ones, tcp.check and http.request with GET, HEAD or OPTIONS (the engine's
 * default method is GET); never http.request with a method that may change something.
 */
export function isRetrySafe(command: string, args: unknown): boolean {
  if (command === 'tcp.check') return true;
  if (command !== 'http.request') return false;
  const method = (args as { method?: unknown } | null)?.method;
  return (
    method === undefined || (typeof method === 'string' && ['GET', 'HEAD', 'OPTIONS'].includes(method.toUpperCase()))
  );
}

export function registerTunnelRoutes(app: FastifyInstance, tunnels: TunnelEndpoint): void {
  app.post(
    '/api/v1/tunnels',
    {
      config: { tenantPermission: 'tunnels:write' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['to', 'listen'],
          properties: {
            to: hostPort,
            listen: hostPort,
            direction: { type: 'string', enum: ['outbound', 'inbound'] },
            engine: engineName,
            group: groupName,
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { to: string; listen: string; direction?: Direction; engine?: string; group?: string };
      const view = await tunnels.open(b.direction ?? 'outbound', b.to, b.listen, { engine: b.engine, group: b.group });
      return reply.code(201).send({ ...view, engineCount: tunnels.engines().length });
    },
  );
  app.get('/api/v1/tunnels', { config: { tenantPermission: 'tenant:read' } }, async () => ({
    tunnels: tunnels.listListeners(),
    engines: tunnels.engines(),
  }));
  app.delete(
    '/api/v1/tunnels/:id',
    {
      config: { tenantPermission: 'tunnels:write' },
      schema: {
        params: {
          type: 'object',
          required: ['id'],
          properties: { id: { type: 'string', pattern: '^tun_[0-9a-f]{12}$' } },
        },
      },
    },
    async (req) => tunnels.closeListener((req.params as { id: string }).id),
  );

  app.get('/api/v1/engines', { config: { tenantPermission: 'tenant:read' } }, async () => ({
    engines: tunnels.engines(),
  }));
  app.post(
    '/api/v1/engine-commands',
    {
      config: { tenantPermission: 'engines:run' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['command'],
          properties: {
            command: { type: 'string', enum: [...ENGINE_COMMANDS] },
            args: { type: 'object' },
            engine: engineName,
            group: groupName,
            timeoutMs: { type: 'integer', minimum: 100, maximum: 120_000 },
          },
        },
      },
    },
    async (req) => {
      const b = req.body as { command: string; args?: unknown; engine?: string; group?: string; timeoutMs?: number };
      const args = b.args ?? {};
      // The engine's own deadline for the work (args.timeoutMs) is shorter than ours for the answer.
      return tunnels.runCommand(
        b.command,
        args,
        { engine: b.engine, group: b.group },
        { timeoutMs: b.timeoutMs ?? 60_000, retrySafe: isRetrySafe(b.command, args) },
      );
    },
  );
}
