/**
 * A tenant's connections API (`/api/v1/connections`, reached through main as `/api/v1/tenants/T/api/connections`):
 * create, list, show, update, remove. A secret comes in once, as `sealedSecret` (sealed by the CLI to this
 * tenant's key, so main and the host relayed only ciphertext) or as a clear `secret` over HTTPS (main relays
 * its bytes in memory, unparsed and unlogged), and never goes out again: answers say `hasSecret`. Audit lines
 * name the caller and what changed, never a value of the secret. Not the store: connection-store.ts.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { NAME_PARAMS, NAME_PATTERN } from '#common/names.js';
import { BadParameterError } from '#common/errors.js';
import {
  CONNECTION_TYPES,
  MAX_SECRET_BYTES,
  MAX_SETTINGS,
  checkSecret,
  type ConnectionType,
} from '#common/connections.js';
import { openSealedSecret } from '#common/sealed-secret.js';
import type { ConnectionStore, SecretChange } from './connection-store.js';
import type { ConnectionResolver } from './connection-resolve.js';

const settingsSchema = {
  type: 'object',
  maxProperties: MAX_SETTINGS,
  additionalProperties: { type: ['string', 'integer', 'boolean'], maxLength: 2048 },
} as const;
const secretFields = {
  secret: { type: 'string', maxLength: MAX_SECRET_BYTES },
  // The sealed form of the largest secret, in base64, with room for its framing (common/sealed-secret.ts).
  sealedSecret: { type: 'string', maxLength: 2 * MAX_SECRET_BYTES },
} as const;

interface SecretFields {
  secret?: string;
  sealedSecret?: string;
  clearSecret?: true;
}

/** The secret change a body asks for (at most one of its three forms), opened and checked. */
function secretChange(b: SecretFields, tenant: string, name: string, tenantSecretKey: Uint8Array): SecretChange {
  const given = (['secret', 'sealedSecret', 'clearSecret'] as const).filter((k) => b[k] !== undefined);
  if (given.length > 1)
    throw new BadParameterError('ERR_CONNECTION_SECRET', `secret: give one of ${given.join(', ')}, not several`, {
      field: 'secret',
    });
  if (b.clearSecret) return { clear: true };
  if (b.sealedSecret !== undefined)
    return { set: checkSecret(openSealedSecret(b.sealedSecret, tenantSecretKey, tenant, name)) };
  return b.secret !== undefined ? { set: checkSecret(b.secret) } : undefined;
}

const by = (req: FastifyRequest) => req.caller?.name || req.caller?.id || '';
const via = (b: SecretFields) => (b.sealedSecret !== undefined ? 'sealed' : 'clear');

export function registerConnectionRoutes(
  app: FastifyInstance,
  store: ConnectionStore,
  tenant: string,
  tenantSecretKey: Uint8Array,
): void {
  app.get('/api/v1/connections', { config: { tenantPermission: 'connections:read' } }, async () => store.list());
  app.get(
    '/api/v1/connections/:name',
    { config: { tenantPermission: 'connections:read' }, schema: { params: NAME_PARAMS } },
    async (req) => store.get((req.params as { name: string }).name),
  );

  app.post(
    '/api/v1/connections',
    {
      config: { tenantPermission: 'connections:write' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'type'],
          properties: {
            name: { type: 'string', pattern: NAME_PATTERN },
            type: { type: 'string', enum: CONNECTION_TYPES },
            settings: settingsSchema,
            ...secretFields,
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { name: string; type: ConnectionType; settings?: Record<string, unknown> } & SecretFields;
      const s = secretChange(b, tenant, b.name, tenantSecretKey);
      const c = await store.create(
        { name: b.name, type: b.type, settings: b.settings ?? {}, ...(s && 'set' in s ? { secret: s.set } : {}) },
        by(req),
      );
      req.auditAs = {
        action: 'connection.create',
        target: c.name,
        detail: { type: c.type, settings: Object.keys(c.settings), secret: s ? via(b) : 'none' },
      };
      return reply.code(201).send(c);
    },
  );

  app.patch(
    '/api/v1/connections/:name',
    {
      config: { tenantPermission: 'connections:write' },
      schema: {
        params: NAME_PARAMS,
        body: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: {
            settings: settingsSchema,
            unset: {
              type: 'array',
              maxItems: MAX_SETTINGS,
              uniqueItems: true,
              items: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9]{0,63}$' },
            },
            ...secretFields,
            clearSecret: { type: 'boolean', const: true },
          },
        },
      },
    },
    async (req) => {
      const name = (req.params as { name: string }).name;
      const b = req.body as { settings?: Record<string, unknown>; unset?: string[] } & SecretFields;
      const s = secretChange(b, tenant, name, tenantSecretKey);
      const c = await store.update(name, { settings: b.settings, unset: b.unset, secret: s }, by(req));
      req.auditAs = {
        action: 'connection.update',
        target: name,
        detail: {
          set: Object.keys(b.settings ?? {}),
          unset: b.unset ?? [],
          secret: s === undefined ? 'kept' : 'clear' in s ? 'cleared' : `replaced (${via(b)})`,
        },
      };
      return c;
    },
  );

  app.delete(
    '/api/v1/connections/:name',
    { config: { tenantPermission: 'connections:write' }, schema: { params: NAME_PARAMS } },
    async (req) => {
      const name = (req.params as { name: string }).name;
      const r = await store.remove(name);
      req.auditAs = { action: 'connection.remove', target: name };
      return r;
    },
  );
}

/**
 * `GET /api/v1/connections/resolve?name=N&site=S`: which connection a call naming N (at site S) would use here and
 * why (connection-resolve.ts); never the secret. A connection named `resolve` is still reached by list and by runs.
 */
export function registerConnectionResolveRoute(app: FastifyInstance, resolver: ConnectionResolver): void {
  app.get(
    '/api/v1/connections/resolve',
    {
      config: { tenantPermission: 'connections:read' },
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: {
            name: { type: 'string', pattern: NAME_PATTERN },
            site: { type: 'string', pattern: NAME_PATTERN },
          },
        },
      },
    },
    async (req) => {
      const q = req.query as { name: string; site?: string };
      return resolver.resolve(q.name, q.site);
    },
  );
}
