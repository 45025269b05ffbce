/** Health, audit and installer routes. */
import type { FastifyInstance } from 'fastify';
import { AGENT_VERSION, PROTOCOL_MAJOR, PROTOCOL_MINOR } from '#common/protocol-version.js';
import { parseDuration } from '#common/duration.js';
import { BadParameterError } from '#common/errors.js';
import { writeBundle, BUNDLE_FORMAT } from '#common/bundle.js';
import { NAME_PATTERN } from '#common/names.js';
import { DEFAULT_ENROL_TTL_MS } from '../config.js';
import type { MainServices } from '../services.js';
import { errorBody, errorResponses } from './schemas.js';

/** Longest enrolment-key lifetime an admin may ask for: a week covers shipping a bundle to a customer. */
const MAX_ENROL_TTL_MS = 7 * 86_400_000;

export function registerSystemRoutes(app: FastifyInstance, s: MainServices): void {
  app.get('/api/v1/health', {
    config: { permission: 'public' },
    schema: {
      summary: 'Liveness and version', description: 'Unauthenticated; 200 while main serves, 503 while it shuts down.', operationId: 'health', tags: ['system'], security: [],
      querystring: { type: 'object', additionalProperties: false, properties: {} },
      response: {
        200: {
          type: 'object', description: 'main is serving', required: ['status'],
          properties: { status: { type: 'string', enum: ['ok'] }, version: { type: 'string' }, protocol: { type: 'string' } },
        },
        400: { ...errorBody, description: 'Unknown query parameter' },
        503: { ...errorBody, description: 'main is shutting down' },
      },
    },
  }, async () => ({ status: 'ok', version: AGENT_VERSION, protocol: `${PROTOCOL_MAJOR}.${PROTOCOL_MINOR}` }));

  app.get('/api/v1/audit', {
    config: { permission: 'audit:read' },
    schema: {
      summary: 'Recent audit entries, newest first', description: 'Who did what, from where, with what outcome: enrolments, key use, changes and denied requests. Never contains secrets.', operationId: 'listAudit', tags: ['system'],
      querystring: {
        type: 'object', additionalProperties: false,
        properties: { limit: { type: 'string', pattern: '^[0-9]{1,5}$' }, action: { type: 'string', maxLength: 64 } },
      },
      response: {
        200: {
          type: 'array', description: 'Audit entries',
          items: {
            type: 'object', required: ['at', 'actor', 'action', 'outcome'],
            properties: {
              at: { type: 'string' }, actor: { type: 'string' }, action: { type: 'string' }, target: { type: 'string' },
              outcome: { type: 'string' }, remote: { type: 'string' }, detail: { type: 'object', additionalProperties: true },
            },
          },
        },
        ...errorResponses(),
      },
    },
  }, async (req) => {
    const q = req.query as { limit?: string; action?: string };
    return s.audit.list({ limit: Math.min(10_000, Number(q.limit ?? 100) || 100), action: q.action });
  });

  app.post('/api/v1/installers', {
    config: { permission: 'installers:create' },
    schema: {
      summary: 'Create an installer bundle with a one-time enrolment key', description: 'Returns a base64 .tar.gz holding main\'s URL, its CA certificate and a single-use enrolment key (stored on main only as a hash) that expires after ttl.', operationId: 'createInstaller', tags: ['installers'],
      body: {
        type: 'object', additionalProperties: false, required: ['kind', 'name'],
        properties: {
          kind: { type: 'string', enum: ['host', 'engine'] },
          name: { type: 'string', pattern: NAME_PATTERN, description: 'Agent name: lowercase letters, digits, -' },
          ttl: { type: 'string', maxLength: 20, description: 'Enrolment key lifetime, e.g. 24h (default), at most 7d' },
          tenant: { type: 'string', pattern: NAME_PATTERN, description: 'Engines: the tenant it serves' },
          group: { type: 'string', pattern: NAME_PATTERN, description: 'Engines: engine group' },
        },
      },
      response: {
        201: {
          type: 'object', description: 'The bundle (base64 .tar.gz); it holds a secret key: store it like a password',
          required: ['bundle', 'kind', 'name', 'expiresAt'],
          properties: {
            bundle: { type: 'string' }, kind: { type: 'string' }, name: { type: 'string' }, expiresAt: { type: 'string' },
            enrolKeyId: { type: 'string' }, mainUrl: { type: 'string' },
          },
        },
        ...errorResponses(404, 409),
      },
    },
  }, async (req, reply) => {
    const b = req.body as { kind: 'host' | 'engine'; name: string; ttl?: string; tenant?: string; group?: string };
    const ttlMs = b.ttl ? parseDuration(b.ttl, 'ttl') : DEFAULT_ENROL_TTL_MS;
    if (ttlMs > MAX_ENROL_TTL_MS) {
      throw new BadParameterError('ERR_BAD_TTL', 'ttl: at most 7d; issue a new bundle instead of a long-lived key', { field: 'ttl' });
    }
    // An engine serves exactly one tenant and carries that tenant's public key; a host serves none.
    if (b.kind === 'engine' && !b.tenant) throw new BadParameterError('ERR_ENGINE_TENANT', 'tenant: an engine bundle must name the tenant it serves (--tenant T)', { field: 'tenant' });
    if (b.kind === 'host' && (b.tenant || b.group)) throw new BadParameterError('ERR_HOST_TENANT', 'tenant/group: apply to engines only', { field: 'tenant' });
    const tenant = b.tenant ? await s.tenants.find(b.tenant) : undefined;
    const key = await s.enrolment.createKey({ kind: b.kind, name: b.name, ttlMs, createdBy: req.principal!.user.id, tenant: b.tenant, group: b.group });
    const bundle = await writeBundle({
      manifest: {
        format: BUNDLE_FORMAT, kind: b.kind, name: b.name, mainUrl: s.publicUrl, enrolKey: key.token,
        expiresAt: key.record.expiresAt, tenant: b.tenant, tenantPublicKey: tenant?.publicKey, group: b.group,
      },
      caPem: s.caPem,
    });
    return reply.code(201).send({
      bundle: bundle.toString('base64'), kind: b.kind, name: b.name, expiresAt: key.record.expiresAt, enrolKeyId: key.record.id, mainUrl: s.publicUrl,
    });
  });
}
