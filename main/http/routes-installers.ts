/**
 * Installer routes: create a bundle with a one-time enrolment key, list the keys with their status, and
 * revoke one before it is used. Keys themselves are enrolment.ts (making, consuming) and enrol-keys.ts
 * (status, revocation).
 */
import type { FastifyInstance } from 'fastify';
import { parseDuration } from '#common/duration.js';
import { BadParameterError } from '#common/errors.js';
import { writeBundle, BUNDLE_FORMAT } from '#common/bundle.js';
import { NAME_PATTERN } from '#common/names.js';
import { DEFAULT_ENROL_TTL_MS } from '../config.js';
import { ENROL_KEY_STATUSES, listKeys, revokeKey, type EnrolKeyStatus } from '../enrolment/enrol-keys.js';
import type { MainServices } from '../services.js';
import { errorResponses } from './schemas.js';

/** Longest enrolment-key lifetime an admin may ask for: a week covers shipping a bundle to a customer. */
const MAX_ENROL_TTL_MS = 7 * 86_400_000;

const nullableString = { type: 'string', nullable: true } as const;
const enrolKeyView = {
  type: 'object',
  required: ['id', 'kind', 'name', 'status', 'createdAt', 'createdBy', 'expiresAt'],
  properties: {
    id: { type: 'string', description: 'Key id (the part of the key before the dot; not secret)' },
    kind: { type: 'string', enum: ['host', 'engine'] },
    name: { type: 'string', description: 'The agent name it enrols' },
    tenant: { ...nullableString, description: 'Engines: the tenant it serves' },
    group: nullableString,
    createdAt: { type: 'string' },
    createdBy: { type: 'string' },
    expiresAt: { type: 'string' },
    status: {
      type: 'string',
      enum: [...ENROL_KEY_STATUSES],
      description: 'unused (can still enrol), used, expired or revoked',
    },
    usedAt: nullableString,
    usedBy: { ...nullableString, description: 'The agent id it enrolled' },
    revokedAt: nullableString,
    revokedBy: {
      ...nullableString,
      description: 'Who revoked it (a user id), or the user whose removal of its agent or tenant voided it',
    },
  },
} as const;

export function registerInstallerRoutes(app: FastifyInstance, s: MainServices): void {
  app.post(
    '/api/v1/installers',
    {
      config: { permission: 'installers:create' },
      schema: {
        summary: 'Create an installer bundle with a one-time enrolment key',
        description:
          "Returns a base64 .tar.gz holding main's URL, its CA certificate and a single-use enrolment key (stored on main only as a hash) that expires after ttl.",
        operationId: 'createInstaller',
        tags: ['installers'],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['kind', 'name'],
          properties: {
            kind: { type: 'string', enum: ['host', 'engine'] },
            name: { type: 'string', pattern: NAME_PATTERN, description: 'Agent name: lowercase letters, digits, -' },
            ttl: {
              type: 'string',
              maxLength: 20,
              description: 'Enrolment key lifetime, e.g. 24h (default), at most 7d',
            },
            tenant: { type: 'string', pattern: NAME_PATTERN, description: 'Engines: the tenant it serves' },
            group: { type: 'string', pattern: NAME_PATTERN, description: 'Engines: engine group' },
            ring: { type: 'string', enum: ['canary', 'default'], description: 'Upgrade ring (default: default)' },
          },
        },
        response: {
          201: {
            type: 'object',
            description: 'The bundle (base64 .tar.gz); it holds a secret key: store it like a password',
            required: ['bundle', 'kind', 'name', 'expiresAt'],
            properties: {
              bundle: { type: 'string' },
              kind: { type: 'string' },
              name: { type: 'string' },
              expiresAt: { type: 'string' },
              enrolKeyId: { type: 'string' },
              mainUrl: { type: 'string' },
            },
          },
          ...errorResponses(404, 409),
        },
      },
    },
    async (req, reply) => {
      const b = req.body as {
        kind: 'host' | 'engine';
        name: string;
        ttl?: string;
        tenant?: string;
        group?: string;
        ring?: 'canary' | 'default';
      };
      const ttlMs = b.ttl ? parseDuration(b.ttl, 'ttl') : DEFAULT_ENROL_TTL_MS;
      if (ttlMs > MAX_ENROL_TTL_MS) {
        throw new BadParameterError(
          'ERR_BAD_DURATION',
          'ttl: at most 7d; issue a new bundle instead of a long-lived key',
          { field: 'ttl' },
        );
      }
      // An engine serves exactly one tenant and carries that tenant's public key; a host serves none.
      if (b.kind === 'engine' && !b.tenant)
        throw new BadParameterError(
          'ERR_ENGINE_TENANT',
          'tenant: an engine bundle must name the tenant it serves (--tenant T)',
          { field: 'tenant' },
        );
      if (b.kind === 'host' && (b.tenant || b.group))
        throw new BadParameterError('ERR_HOST_TENANT', 'tenant/group: apply to engines only', { field: 'tenant' });
      const tenant = b.tenant ? await s.tenants.find(b.tenant) : undefined;
      // The key (and the engine it enrols) is bound to the tenant's identity, its public key, not just its name.
      const key = await s.enrolment.createKey({
        kind: b.kind,
        name: b.name,
        ttlMs,
        createdBy: req.principal!.user.id,
        tenant: b.tenant,
        tenantKey: tenant?.publicKey,
        group: b.group,
        ring: b.ring,
      });
      const bundle = await writeBundle({
        manifest: {
          format: BUNDLE_FORMAT,
          kind: b.kind,
          name: b.name,
          mainUrl: s.publicUrl,
          enrolKey: key.token,
          expiresAt: key.record.expiresAt,
          tenant: b.tenant,
          tenantPublicKey: tenant?.publicKey,
          group: b.group,
        },
        caPem: s.caPem,
      });
      return reply.code(201).send({
        bundle: bundle.toString('base64'),
        kind: b.kind,
        name: b.name,
        expiresAt: key.record.expiresAt,
        enrolKeyId: key.record.id,
        mainUrl: s.publicUrl,
      });
    },
  );

  app.get(
    '/api/v1/installers',
    {
      config: { permission: 'installers:read' },
      schema: {
        summary: 'List enrolment keys with their status',
        description:
          'Every one-time enrolment key main issued in an installer bundle, newest first, with its status (never the key itself: main holds only its hash).',
        operationId: 'listInstallers',
        tags: ['installers'],
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            status: { type: 'string', enum: [...ENROL_KEY_STATUSES], description: 'Only keys with this status' },
          },
        },
        response: {
          200: { type: 'array', items: enrolKeyView, description: 'Enrolment keys, newest first' },
          ...errorResponses(),
        },
      },
    },
    async (req) => listKeys(s.registry, (req.query as { status?: EnrolKeyStatus }).status),
  );

  app.delete(
    '/api/v1/installers/:id',
    {
      config: { permission: 'installers:revoke' },
      schema: {
        summary: 'Revoke an unused enrolment key',
        description:
          'The key enrols nothing from then on (an agent trying gets ERR_ENROL_KEY_REVOKED). Written to disk before the answer. A used key cannot be revoked: remove its agent instead. Revoking a revoked key changes nothing (no new audit entry) and answers the key with alreadyRevoked true.',
        operationId: 'revokeInstaller',
        tags: ['installers'],
        params: {
          type: 'object',
          required: ['id'],
          additionalProperties: false,
          properties: {
            id: { type: 'string', pattern: '^[A-Za-z0-9_-]{6,32}$', description: 'Key id, as installer list shows it' },
          },
        },
        response: {
          200: {
            ...enrolKeyView,
            required: [...enrolKeyView.required, 'alreadyRevoked'],
            properties: {
              ...enrolKeyView.properties,
              alreadyRevoked: {
                type: 'boolean',
                description: 'True when the key was revoked before this call (revokedAt says when): nothing changed',
              },
            },
            description: 'The revoked key',
          },
          ...errorResponses(404, 409),
        },
      },
    },
    async (req) =>
      revokeKey(s.registry, s.enrolment, s.audit, (req.params as { id: string }).id, req.principal!.user.id, req.ip),
  );
}
