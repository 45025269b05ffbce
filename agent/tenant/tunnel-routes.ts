/** A tenant's tunnel API: open, list and close MSSP-side listeners whose connections reach its engines. */
import type { FastifyInstance } from 'fastify';
import type { TunnelEndpoint } from './tunnel-endpoint.js';

const hostPort = '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]{1,253}):[0-9]{1,5}$';

export function registerTunnelRoutes(app: FastifyInstance, tunnels: TunnelEndpoint): void {
  app.post('/api/v1/tunnels', {
    config: { tenantPermission: 'tunnels:write' },
    schema: {
      body: {
        type: 'object', additionalProperties: false, required: ['to', 'listen'],
        properties: { to: { type: 'string', pattern: hostPort }, listen: { type: 'string', pattern: hostPort } },
      },
    },
  }, async (req, reply) => {
    const b = req.body as { to: string; listen: string };
    return reply.code(201).send({ ...(await tunnels.openListener(b.to, b.listen)), engines: tunnels.engines().length });
  });
  app.get('/api/v1/tunnels', { config: { tenantPermission: 'tenant:read' } }, async () => ({ tunnels: tunnels.listListeners(), engines: tunnels.engines() }));
  app.delete('/api/v1/tunnels/:id', {
    config: { tenantPermission: 'tunnels:write' },
    schema: { params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^tun_[0-9a-f]{12}$' } } } },
  }, async (req) => tunnels.closeListener((req.params as { id: string }).id));
}
