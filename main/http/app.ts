/**
 * Builds main's fastify app: TLS per docs/security.md (client certificates requested, not required, so the
 * console and the agent endpoint share the port), the server's handshake and header timeouts, sockets
 * closed after a request that authenticated nothing, one error table, OpenAPI at /docs, and an auth hook that makes
 * every route outside /docs (the /api/v1 routes, /metrics, /readyz) declare the permission it needs.
 */
import type { Socket } from 'node:net';
import Fastify, { LogController, type FastifyInstance, type FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { AccessDeniedError } from '#common/errors.js';
import { clientErrorHandler, frameworkErrors, installErrorHandlers } from '#common/http-errors.js';
import { acceptEmptyJsonBody, installEmptyQueryRule } from '#common/http-input.js';
import { tlsProfile } from '#common/tls-profile.js';
import { AGENT_VERSION } from '#common/protocol-version.js';
import type { Logger } from '#common/logging.js';
import { authenticate, type CustomRoleLookup, type Permission, type Principal } from '../access/api-keys.js';
import type { Registry } from '../registry.js';
import type { AuditLog } from '../access/audit.js';
import { auditThrottled, tooManyFailures, type AuthFailureThrottle } from '../access/auth-throttle.js';
import { CSRF_HEADER, csrfMatches, sessionCookie, type SessionStore } from '../access/sessions.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** 'signed-in': any authenticated caller (bearer key or session), e.g. GET /session; the route checks more. */
    permission?: Permission | 'public' | 'signed-in';
  }
  interface FastifyRequest {
    principal?: Principal;
  }
}

export interface AppOptions {
  keyPem: string;
  certPem: string;
  caPem: string;
  ticketKeys?: Buffer;
  publicUrl: string;
  bodyLimit: number;
  registry: Registry;
  audit: AuditLog;
  log: Logger;
  /** Custom roles' main permissions (roles.ts); without it only built-in roles grant anything. */
  roles?: CustomRoleLookup;
  /** Failed authentications per address (auth-throttle.ts); the relay counts tenant keys' failures in it too. */
  throttle: AuthFailureThrottle;
  /** Console sessions (sessions.ts): a session cookie is the other way, beside a bearer key, to name the caller. */
  sessions: SessionStore;
  /** Server timeouts for strangers (config.ts; connection-guard.ts explains them). */
  timeouts: { handshakeMs: number; headersMs: number };
  /** Told of each socket whose request carried a valid API key (connection-guard.ts stops counting it). */
  onAuthenticated?(socket: Socket): void;
}

/**
 * How often Node checks its header and request timeouts: its default (30 s) would let a silent socket
 * live 40 s with a 10 s header timeout. The check walks only sockets still in HTTP (not upgraded ones).
 */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000;

export async function buildApp(o: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    https: {
      key: o.keyPem,
      cert: o.certPem,
      ca: o.caPem,
      requestCert: true,
      rejectUnauthorized: false,
      ticketKeys: o.ticketKeys,
      ...tlsProfile(),
      handshakeTimeout: o.timeouts.handshakeMs,
      headersTimeout: o.timeouts.headersMs,
      connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
    },
    loggerInstance: o.log,
    // Per-request lines would drown the audit log; denied requests are audited instead.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: o.bodyLimit,
    return503OnClosing: true,
    requestTimeout: 130_000,
    routerOptions: { maxParamLength: 256 },
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
    frameworkErrors,
    clientErrorHandler,
  }) as unknown as FastifyInstance;
  installEmptyQueryRule(app); // `?q=&limit=` is no q and no limit (common/http-input.ts)
  acceptEmptyJsonBody(app); // a bodiless POST with a JSON content type (publish, share) is a bodiless POST

  await app.register(swagger, {
    // OpenAPI has no wildcard path parameter: document the relay's `*` as {path}.
    transform: ({ schema, url }) => {
      if (!url.includes('*')) return { schema, url };
      const params = schema?.params as { properties?: Record<string, unknown>; required?: string[] } | undefined;
      const properties: Record<string, unknown> = { ...params?.properties, path: params?.properties?.['*'] };
      delete properties['*'];
      return {
        url: url.replace('*', ':path'),
        schema: {
          ...schema,
          params: { ...params, properties, required: (params?.required ?? []).map((r) => (r === '*' ? 'path' : r)) },
        },
      };
    },
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Palisade main API',
        version: AGENT_VERSION,
        description:
          'MSSP control plane: agents, enrolment, commands. Authenticate with `Authorization: Bearer <API key>`.',
        license: { name: 'Proprietary', url: 'https://palisade.invalid/license' },
        contact: { name: 'Palisade', url: 'https://palisade.invalid' },
      },
      servers: [{ url: o.publicUrl, description: 'This main' }],
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'A Palisade API key' },
          session: {
            type: 'apiKey',
            in: 'cookie',
            name: '__Host-palisade_session',
            description: 'A console session (POST /session); changes also need the X-CSRF-Token header',
          },
        },
      },
      security: [{ bearer: [] }, { session: [] }],
      tags: [
        { name: 'system', description: 'Health and audit' },
        { name: 'installers', description: 'Installer bundles and enrolment keys' },
        { name: 'agents', description: 'Hosts and engines' },
        { name: 'commands', description: 'Commands to agents' },
        { name: 'tenants', description: 'Tenants and the relay into their APIs' },
        { name: 'access', description: 'Users, API keys and roles' },
        { name: 'content', description: 'Content library and its propagation to tenants' },
        { name: 'console', description: 'Web console: sign-in sessions, passwords, TOTP and the live overview' },
      ],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.addHook('onRoute', (route) => {
    // Every route but the documentation's (swagger-ui's own) says who may call it, the root ones too (/metrics).
    if (!route.url.startsWith('/docs') && route.config?.permission === undefined) {
      throw new Error(`route ${route.method} ${route.url} declares no permission`);
    }
  });

  app.addHook('onRequest', async (req) => {
    const permission = req.routeOptions.config?.permission;
    if (permission === undefined || permission === 'public') return;
    await authorise(req, permission, o);
  });

  // HTTPS only, never sniffed, never cached: what a scanner expects of an API that carries keys.
  app.addHook('onSend', async (_req, reply) => {
    void reply.header('strict-transport-security', 'max-age=31536000');
    void reply.header('x-content-type-options', 'nosniff');
    if (!reply.hasHeader('cache-control')) void reply.header('cache-control', 'no-store');
  });
  // API answers are data, never a page: nothing in them may run, be framed or leak the URL onwards (the
  // console's own pages set their own policy).
  app.addHook('onSend', async (req, reply) => {
    if (!req.url.startsWith('/api/')) return;
    for (const [k, v] of Object.entries(API_SECURITY_HEADERS)) if (!reply.hasHeader(k)) void reply.header(k, v);
  });

  // A request that proved nothing (no key, a bad one, a public route) leaves no idle keep-alive socket
  // behind: it is answered, then closed (connection-guard.ts). A tenant key proves itself when its tenant
  // accepts it.
  app.addHook('onSend', async (req, reply) => {
    const p = req.principal;
    if (!p || (p.tenantKey && reply.statusCode >= 400)) void reply.header('connection', 'close');
    else if (p.tenantKey) o.onAuthenticated?.(req.raw.socket);
  });

  installErrorHandlers(app);

  return app;
}

/** Headers on every /api/ answer (docs/access.md#console-sign-in). */
export const API_SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
});

/**
 * Who is calling: the bearer key if there is an Authorization header, else the session cookie, else nobody
 * (authenticate's 401). A bearer wins over a cookie: a browser never adds one by itself, so a request carrying
 * one was written by its sender on purpose (no CSRF possible), and scripts keep working beside a console tab.
 */
async function authorise(req: FastifyRequest, permission: Permission | 'signed-in', o: AppOptions): Promise<void> {
  const header = req.headers.authorization;
  const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
  const cookie = header === undefined ? sessionCookie(req.headers.cookie) : undefined;
  const remote = req.ip;
  const blockedMs = o.throttle.blockedFor(remote);
  try {
    const keyUse = (keyId: string, userId: string) =>
      o.audit.recordLater({ actor: userId, action: 'auth.key', target: keyId, outcome: 'ok', remote });
    const p =
      cookie !== undefined
        ? (await o.sessions.resolve(cookie, o.roles)).principal
        : await authenticate(o.registry, token, o.roles, keyUse);
    req.principal = { ...p, from: remote };
    // A tenant key is only checked by its tenant, later: it proves nothing here.
    if (!req.principal.tenantKey) o.onAuthenticated?.(req.raw.socket);
  } catch (e) {
    if (blockedMs) throw tooManyFailures(blockedMs);
    if (o.throttle.fail(remote, cookie !== undefined ? 'session' : 'api')) await auditThrottled(o.audit, remote);
    await o.audit.record({
      actor: 'anonymous',
      action: cookie !== undefined ? 'auth.session' : 'auth.key',
      target: `${req.method} ${req.routeOptions.url}`,
      outcome: 'denied',
      remote,
      detail: { code: (e as { code?: string }).code },
    });
    throw e;
  }
  // A tenant key is checked by its tenant: from a blocked address, it is not worth a relay.
  if (blockedMs && req.principal.tenantKey) throw tooManyFailures(blockedMs);
  const session = req.principal.session;
  // A cookie rides along with any request the browser makes, a forged cross-site one too; only our own page
  // can read the CSRF token (from the sign-in answer or GET /session) and send it back as a header.
  if (
    session &&
    req.method !== 'GET' &&
    req.method !== 'HEAD' &&
    !csrfMatches(req.headers[CSRF_HEADER], session.csrfToken)
  ) {
    await o.audit.record({
      actor: req.principal.user.id,
      action: 'auth.csrf',
      target: `${req.method} ${req.routeOptions.url}`,
      outcome: 'denied',
      remote,
    });
    throw new AccessDeniedError('ERR_CSRF', `a change made with the session cookie needs the ${CSRF_HEADER} header`);
  }
  if (permission === 'signed-in') {
    // Main cannot check a tenant's own key (its tenant does, on the relay): here it proves nobody.
    if (req.principal.tenantKey)
      throw new AccessDeniedError('ERR_FORBIDDEN', "a tenant's own key reaches that tenant's API only");
    return;
  }
  if (!req.principal.permissions.has(permission)) {
    await o.audit.record({
      actor: req.principal.user.id,
      action: 'auth.permission',
      target: `${req.method} ${req.routeOptions.url}`,
      outcome: 'denied',
      remote,
      detail: { permission, keyId: req.principal.keyId },
    });
    throw new AccessDeniedError('ERR_FORBIDDEN', `this key lacks the "${permission}" permission`);
  }
}
