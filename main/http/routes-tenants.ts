/** Tenant routes: list, create, remove, and the relay into a tenant's own API ("switch to a tenant"). */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { setTimeout as sleep } from 'node:timers/promises';
import { NAME_PATTERN } from '#common/names.js';
import { NotFoundError, UnauthenticatedError } from '#common/errors.js';
import { forgetTenantInUsers } from '../access/access.js';
import { revokeTenantEngines } from '../agents/agent-admin.js';
import { callerIdentity, mayReach } from '../access/api-keys.js';
import type { MainServices } from '../services.js';
import { errorResponses, tenantEvents } from './schemas.js';
import { auditThrottled } from '../access/auth-throttle.js';
import { isPlainMediaType } from '#common/media-types.js';

const tenantView = {
  type: 'object',
  required: ['name', 'host', 'port', 'status', 'labels', 'publicKey'],
  properties: {
    name: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'integer' },
    status: {
      type: 'string',
      description: 'running, starting, restarting, stopped, failed, host-offline, creating, removing',
    },
    labels: { type: 'array', items: { type: 'string' } },
    region: {
      type: 'string',
      nullable: true,
      description: 'Its region (region-scoped connections reach it); null: none',
    },
    initialised: {
      type: 'boolean',
      description: 'True once its process has reported running the first time (it finished initialising)',
    },
    publicKey: { type: 'string', description: 'NaCl public key, base64' },
    publicKeyFingerprint: { type: 'string' },
    createdAt: { type: 'string' },
    pid: { type: 'integer', nullable: true },
    restarts: { type: 'integer' },
    memoryMb: {
      type: 'integer',
      nullable: true,
      description: "Its V8 heap limit in MiB, the budget it was created with (null: Node's default)",
    },
    cpuPercent: {
      type: 'number',
      nullable: true,
      description:
        'CPU use in percent of one core, as its host last measured it (each heartbeat); null when not running',
    },
    rssBytes: {
      type: 'integer',
      nullable: true,
      description: 'Resident memory of its process in bytes, as its host last measured it; null when not running',
    },
    events: tenantEvents,
  },
} as const;

const lifecycleRoute = (stop: boolean) =>
  ({
    config: { permission: 'tenants:write' },
    // No body is the usual call: checked as {} (a JSON null or anything else still fails the schema).
    preValidation: async (req: FastifyRequest) => {
      if (req.body === undefined) req.body = {};
    },
    schema: {
      summary: stop ? 'Stop a tenant' : 'Start a stopped tenant',
      description: stop
        ? "Ends the tenant's process and keeps it down, across host restarts too, until it is started; its data, keys and registration stay. Requests relayed to it meanwhile answer 503 ERR_TENANT_STOPPED. Stopping a stopped tenant is not an error: changed is false."
        : "Starts a stopped tenant's process again with the data it had. Starting a running tenant is not an error: changed is false.",
      operationId: stop ? 'stopTenant' : 'startTenant',
      tags: ['tenants'],
      params: tenantParam,
      // Nothing to say but the name: any body other than {} (or none) is a mistake, refused before it acts.
      body: { type: 'object', additionalProperties: false, properties: {}, description: 'Nothing: {} or no body' },
      response: {
        200: {
          ...tenantView,
          required: [...tenantView.required, 'changed'],
          properties: {
            ...tenantView.properties,
            changed: { type: 'boolean', description: 'false: it already was stopped (or running)' },
          },
          description: 'The tenant',
        },
        ...errorResponses(404, 503),
      },
    },
  }) as const;

const tenantParam = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: { name: { type: 'string', pattern: NAME_PATTERN, description: 'Tenant name' } },
} as const;

const RELAY_PREFIX = /^\/api\/v1\/tenants\/[^/]+\/api(?=\/|$)/;
/**
 * A refused tenant key (`ptk_T~…`) is answered no sooner than this after its request arrived, the same
 * way whether main relayed it to T (which refused it) or there was no T to ask: without it the missing
 * round trip tells a prober which tenant names exist. Well above a tenant's refusal round trip (a few ms
 * here, tens under load); only refusals wait, a valid key's requests never do.
 */
const TENANT_KEY_REFUSAL_MS = 300;
const invalidKey = () => new UnauthenticatedError('ERR_AUTH_INVALID_KEY', 'the API key is invalid or revoked');

export function registerTenantRoutes(app: FastifyInstance, s: MainServices): void {
  app.get(
    '/api/v1/tenants',
    {
      config: { permission: 'tenants:read' },
      schema: {
        summary: 'List tenants with status',
        description:
          'Every tenant with its host, loopback port, labels, public key and live status reported by its host.',
        operationId: 'listTenants',
        tags: ['tenants'],
        response: { 200: { type: 'array', items: tenantView, description: 'Tenants' }, ...errorResponses() },
      },
    },
    async (req) => (await s.tenants.list()).filter((t) => mayReach(req.principal!, t.name)),
  );

  app.post(
    '/api/v1/tenants',
    {
      config: { permission: 'tenants:write' },
      schema: {
        summary: 'Create a tenant on a host',
        description:
          "The host checks its memory and disk budget, creates the tenant's data directory, LevelDB store and NaCl key pair, picks a loopback port from 18501 and starts the tenant as its own process.",
        operationId: 'createTenant',
        tags: ['tenants'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'host'],
          properties: {
            name: { type: 'string', pattern: NAME_PATTERN, description: 'Tenant name' },
            host: { type: 'string', pattern: NAME_PATTERN, description: 'Host to run it on' },
            labels: {
              type: 'array',
              maxItems: 50,
              uniqueItems: true,
              items: { type: 'string', pattern: NAME_PATTERN },
              description: 'Propagation labels',
            },
            region: {
              type: 'string',
              pattern: NAME_PATTERN,
              description: 'Its region: connections authored on main with scope region:R reach the tenants of R',
            },
            memoryMb: {
              type: 'integer',
              minimum: 16,
              maximum: 1_048_576,
              description: 'Memory the host must have free for it (default 256)',
            },
            diskMb: {
              type: 'integer',
              minimum: 16,
              maximum: 67_108_864,
              description: 'Disk the host must have free for it (default 512)',
            },
          },
        },
        response: { 201: { ...tenantView, description: 'The tenant, running' }, ...errorResponses(404, 409, 503) },
      },
    },
    async (req, reply) => {
      const b = req.body as {
        name: string;
        host: string;
        labels?: string[];
        region?: string;
        memoryMb?: number;
        diskMb?: number;
      };
      const t = await s.tenants.create({
        name: b.name,
        host: b.host,
        labels: b.labels ?? [],
        region: b.region,
        actor: req.principal!.user.id,
        remote: req.ip,
        memoryMb: b.memoryMb,
        diskMb: b.diskMb,
      });
      return reply.code(201).send(t);
    },
  );

  app.get(
    '/api/v1/tenants/:name',
    {
      config: { permission: 'tenants:read' },
      schema: {
        summary: 'Show one tenant',
        description: 'Where it runs and its live status.',
        operationId: 'getTenant',
        tags: ['tenants'],
        params: tenantParam,
        response: { 200: { ...tenantView, description: 'The tenant' }, ...errorResponses(404) },
      },
    },
    async (req) => {
      const name = (req.params as { name: string }).name;
      if (!mayReach(req.principal!, name))
        throw new NotFoundError('ERR_TENANT_NOT_FOUND', `no tenant "${name}"`, { field: 'name' });
      return s.tenants.view(await s.tenants.find(name));
    },
  );

  app.patch(
    '/api/v1/tenants/:name',
    {
      config: { permission: 'tenants:write' },
      schema: {
        summary: "Change a tenant's propagation labels or region",
        description:
          'Replaces its labels and/or its region (null: none); shared content whose labels (or scope) now match flows to it, and content shared only through a removed label (or its old region) is taken off it.',
        operationId: 'updateTenant',
        tags: ['tenants'],
        params: tenantParam,
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: {
            labels: {
              type: 'array',
              maxItems: 50,
              uniqueItems: true,
              items: { type: 'string', pattern: NAME_PATTERN },
              description: 'Propagation labels (replace the current ones)',
            },
            region: {
              type: 'string',
              nullable: true,
              pattern: NAME_PATTERN,
              description: 'Its region (null: none)',
            },
          },
        },
        response: { 200: { ...tenantView, description: 'The tenant' }, ...errorResponses(404) },
      },
    },
    async (req) => {
      const name = (req.params as { name: string }).name;
      if (!mayReach(req.principal!, name))
        throw new NotFoundError('ERR_TENANT_NOT_FOUND', `no tenant "${name}"`, { field: 'name' });
      const b = req.body as { labels?: string[]; region?: string | null };
      let view = b.labels ? await s.tenants.setLabels(name, b.labels, req.principal!.user.id, req.ip) : undefined;
      if (b.region !== undefined) view = await s.tenants.setRegion(name, b.region, req.principal!.user.id, req.ip);
      return view!;
    },
  );

  app.delete(
    '/api/v1/tenants/:name',
    {
      config: { permission: 'tenants:write' },
      schema: {
        summary: 'Offboard a tenant',
        description:
          'Stops its process and deletes its data directory, keys and registration, revokes its engines and voids its unused engine enrolment keys (none of them reaches a later tenant of the same name); answers with what was removed.',
        operationId: 'removeTenant',
        tags: ['tenants'],
        params: tenantParam,
        response: {
          200: {
            type: 'object',
            description: 'What was removed',
            properties: {
              name: { type: 'string' },
              host: { type: 'string' },
              removed: { type: 'array', items: { type: 'string' } },
            },
          },
          ...errorResponses(404, 503),
        },
      },
    },
    async (req) => {
      const removed = await s.tenants.remove((req.params as { name: string }).name, req.principal!.user.id, req.ip);
      // Users and engines tied to the name must not reach a future tenant created under it.
      const users = await forgetTenantInUsers(s.registry, removed.name, req.principal!.user.id, s.audit, req.ip);
      const engines = await revokeTenantEngines(s, removed.name, req.principal!.user.id, req.ip);
      return { ...removed, removed: [...removed.removed, ...users, ...engines] };
    },
  );

  for (const stop of [true, false])
    app.post(`/api/v1/tenants/:name/${stop ? 'stop' : 'start'}`, lifecycleRoute(stop), async (req) => {
      const name = (req.params as { name: string }).name;
      if (!mayReach(req.principal!, name))
        throw new NotFoundError('ERR_TENANT_NOT_FOUND', `no tenant "${name}"`, { field: 'name' });
      return s.tenants.setStopped(name, stop, req.principal!.user.id, req.ip);
    });

  app.post(
    '/api/v1/tenants/:name/move',
    {
      config: { permission: 'tenants:write' },
      schema: {
        summary: 'Move a tenant to another host',
        description:
          'Suspends the tenant, streams a consistent snapshot in checksummed chunks over the agent channels to the target host, starts it there, switches routing and deletes the old copy. On failure the tenant keeps running where it was and the answer says why.',
        operationId: 'moveTenant',
        tags: ['tenants'],
        params: tenantParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['to'],
          properties: { to: { type: 'string', pattern: NAME_PATTERN, description: 'Target host' } },
        },
        response: {
          200: {
            type: 'object',
            description: 'Moved',
            properties: {
              name: { type: 'string' },
              from: { type: 'string' },
              to: { type: 'string' },
              port: { type: 'integer' },
              bytes: { type: 'integer' },
              chunks: { type: 'integer' },
              sha256: { type: 'string' },
            },
          },
          ...errorResponses(404, 409, 503),
        },
      },
    },
    async (req) => {
      const moved = await s.tenants.move(
        (req.params as { name: string }).name,
        (req.body as { to: string }).to,
        req.principal!.user.id,
        req.ip,
      );
      s.revocations.tellHostOf(moved.name); // its new host may not know which of its engines main revoked lately
      return moved;
    },
  );

  // The relay forwards the body bytes untouched: main neither parses nor re-serialises tenant payloads
  // (the tenant validates them, and main's signature covers exactly what the tenant receives).
  void app.register(async (relay) => {
    relay.removeAllContentTypeParsers();
    relay.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const) {
      relay.route({
        method,
        url: '/api/v1/tenants/:name/api/*',
        config: { permission: 'tenants:relay' },
        schema: {
          summary: `Switch to a tenant: ${method} on the tenant's own API`,
          description:
            "Relayed through the tenant's host, signed by main for this tenant and the calling user; e.g. /api/v1/tenants/acme/api/incidents is acme's /api/v1/incidents. The tenant's status code and body are passed through. Main neither parses, logs nor stores a relayed body: a connection's clear `secret` (POST/PATCH …/api/connections) crosses main in memory only (docs/integrations.md).",
          operationId: `relay${method[0]}${method.slice(1).toLowerCase()}`,
          tags: ['tenants'],
          params: {
            type: 'object',
            required: ['name', '*'],
            properties: {
              name: { type: 'string', pattern: NAME_PATTERN, description: 'Tenant name' },
              '*': { type: 'string', description: "Path inside the tenant's /api/v1 (may contain /)" },
            },
          },
          response: {
            200: { type: 'object', additionalProperties: true, description: "The tenant API's answer" },
            ...errorResponses(404, 503),
          },
        },
        handler: async (req, reply) => {
          const name = (req.params as { name: string }).name;
          const path = '/api/v1' + req.url.replace(RELAY_PREFIX, '');
          const p = req.principal!;
          if (!mayReach(p, name)) {
            await s.audit.record({
              actor: p.user.id,
              action: 'auth.tenant',
              target: `${req.method} tenant:${name}`,
              outcome: 'denied',
              remote: req.ip,
              detail: { keyId: p.keyId },
            });
            // The same answer as for a tenant that does not exist: a scoped caller learns nothing of others.
            throw new NotFoundError('ERR_TENANT_NOT_FOUND', `no tenant "${name}"`, { field: 'name' });
          }
          const body = Buffer.isBuffer(req.body) && req.body.length > 0 ? req.body : undefined;
          const contentType = body ? relayedContentType(req.headers['content-type']) : undefined;
          // A tenant key refused (by its tenant, or for want of one) counts against the caller's address like a
          // bad main key, and gets one answer at one time whichever it was (TENANT_KEY_REFUSAL_MS).
          const refusedTenantKey = async () => {
            if (s.authThrottle.fail(req.ip, 'tenant_key')) await auditThrottled(s.audit, req.ip);
            await sleep(Math.max(0, TENANT_KEY_REFUSAL_MS - reply.elapsedTime));
            return invalidKey();
          };
          let r: Awaited<ReturnType<typeof s.tenants.relay>>;
          try {
            r = await s.tenants.relay(name, { method: req.method, path, body, contentType, user: callerIdentity(p) });
          } catch (e) {
            // Main cannot check a tenant key: whether its tenant exists or runs is not told to its bearer.
            if (p.tenantKey && (e as { category?: string }).category !== 'timeout') throw await refusedTenantKey();
            throw e;
          }
          if (p.tenantKey && r.status === 401) throw await refusedTenantKey();
          return (reply as unknown as { code(n: number): typeof reply })
            .code(r.status)
            .header('content-type', r.contentType)
            .send(r.body);
        },
      });
    }
  });
}

/**
 * The body's media type as the tenant should see it: JSON unless the caller said NDJSON (bulk ingest).
 * Anything else is passed on by name only if it is a plain media type, so the tenant can answer 415 for it.
 */
function relayedContentType(header: string | undefined): string {
  const t = (header ?? '').split(';')[0].trim().toLowerCase();
  return t === '' ? 'application/json' : isPlainMediaType(t) ? t : 'application/octet-stream';
}
