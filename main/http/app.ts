/**
 * Builds main's fastify app: TLS per DESIGN §3 (client certificates requested, not required, so the
 * console and the agent endpoint share the port), one error table, OpenAPI at /docs, and an auth hook
 * that makes every /api/v1 route declare the permission it needs.
 */
import Fastify, { LogController, type FastifyInstance, type FastifyError, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { HTTP_STATUS, isPalisadeError, AccessDeniedError } from '#common/errors.js';
import { tlsProfile } from '#common/tls-profile.js';
import { AGENT_VERSION } from '#common/protocol-version.js';
import type { Logger } from '#common/logging.js';
import { authenticate, type Permission, type Principal } from '../api-keys.js';
import type { Registry } from '../registry.js';
import type { AuditLog } from '../audit.js';

declare module 'fastify' {
  interface FastifyContextConfig { permission?: Permission | 'public' }
  interface FastifyRequest { principal?: Principal }
}

export interface AppOptions {
  keyPem: string; certPem: string; caPem: string;
  publicUrl: string; bodyLimit: number;
  registry: Registry; audit: AuditLog; log: Logger;
}

export async function buildApp(o: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    https: { key: o.keyPem, cert: o.certPem, ca: o.caPem, requestCert: true, rejectUnauthorized: false, ...tlsProfile() },
    loggerInstance: o.log,
    // Per-request lines would drown the audit log; denied requests are audited instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: o.bodyLimit,
    return503OnClosing: true,
    requestTimeout: 130_000,
    routerOptions: { maxParamLength: 256 },
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
    frameworkErrors: (err, _req, reply) => {
      void (reply as unknown as { code(n: number): { send(b: unknown): void } }).code(400)
        .send({ error: { code: 'ERR_BAD_URL', message: `malformed request: ${err.message}` } });
    },
  }) as unknown as FastifyInstance;

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Palisade main API', version: AGENT_VERSION,
        description: 'MSSP control plane: agents, enrolment, commands. Authenticate with `Authorization: Bearer <API key>`.',
        license: { name: 'Proprietary', url: 'https://palisade.invalid/license' },
        contact: { name: 'Palisade', url: 'https://palisade.invalid' },
      },
      servers: [{ url: o.publicUrl, description: 'This main' }],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A Palisade API key' } } },
      security: [{ bearer: [] }],
      tags: [
        { name: 'system', description: 'Health and audit' },
        { name: 'installers', description: 'Installer bundles and enrolment keys' },
        { name: 'agents', description: 'Hosts and engines' },
        { name: 'commands', description: 'Commands to agents' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/api/') && route.config?.permission === undefined) {
      throw new Error(`route ${route.method} ${route.url} declares no permission`);
    }
  });

  app.addHook('onRequest', async (req) => {
    const permission = req.routeOptions.config?.permission;
    if (permission === undefined || permission === 'public') return;
    await authorise(req, permission, o);
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: { code: 'ERR_NOT_FOUND', message: `no route ${req.method} ${req.url.split('?')[0].slice(0, 200)}` } });
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const { status, code, message } = classify(err);
    if (status >= 500) req.log.error({ err, url: req.url }, 'request failed');
    void reply.code(status).send({ error: { code, message } });
  });

  return app;
}

async function authorise(req: FastifyRequest, permission: Permission, o: AppOptions): Promise<void> {
  const header = req.headers.authorization;
  const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
  const remote = req.ip;
  try {
    req.principal = await authenticate(o.registry, token);
  } catch (e) {
    await o.audit.record({ actor: 'anonymous', action: 'auth.key', target: `${req.method} ${req.routeOptions.url}`, outcome: 'denied', remote, detail: { code: (e as { code?: string }).code } });
    throw e;
  }
  if (!req.principal.permissions.has(permission)) {
    await o.audit.record({ actor: req.principal.user.id, action: 'auth.permission', target: `${req.method} ${req.routeOptions.url}`, outcome: 'denied', remote, detail: { permission, keyId: req.principal.keyId } });
    throw new AccessDeniedError('ERR_FORBIDDEN', `this key lacks the "${permission}" permission`);
  }
}

function classify(err: FastifyError): { status: number; code: string; message: string } {
  if (isPalisadeError(err)) return { status: HTTP_STATUS[err.category], code: err.code, message: err.message };
  if (err.validation) {
    const v = err.validation[0];
    const where = `${err.validationContext ?? 'request'}${v?.instancePath ?? ''}`;
    const missing = (v?.params as { missingProperty?: string } | undefined)?.missingProperty;
    const extra = (v?.params as { additionalProperty?: string } | undefined)?.additionalProperty;
    const field = missing ? `${where}/${missing}` : extra ? `${where}/${extra}` : where;
    const what = extra ? 'is not a known field' : (v?.message ?? 'is invalid');
    return { status: 400, code: 'ERR_BAD_REQUEST', message: `${field.replace(/^(\w+)\//, '$1.').replace(/\//g, '.')} ${what}` };
  }
  const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
  if (status === 500) return { status, code: 'ERR_INTERNAL', message: 'internal error' };
  const code = err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? 'ERR_BODY_TOO_LARGE'
    : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'ERR_UNSUPPORTED_MEDIA_TYPE'
    : err.code?.startsWith('FST_ERR_CTP') ? 'ERR_BAD_BODY'
    : err.code ?? `ERR_HTTP_${status}`;
  return { status, code, message: err.message };
}
