/**
 * A tenant's domains and custom properties API (through main: `/api/v1/tenants/T/api/domains…`,
 * `…/api/properties…`): create, list and remove domains, map sources of events to them (and unmap), and define
 * the regex properties that property mappings match. Reading needs `events:read`, changing `events:write`
 * (audited). The tagging order is domain-tagger.ts's; events/settings/log sources are event-routes.ts's.
 */
import type { FastifyInstance } from 'fastify';
import { BadParameterError, ConflictError } from '#common/errors.js';
import {
  DOMAIN_NAME_PATTERN,
  MAPPING_KINDS,
  MAX_PROPERTY_REGEX,
  PROPERTY_NAME_PATTERN,
  type MappingKind,
} from '#common/events.js';
import type { EventPipeline } from './event-pipeline.js';
import type { DomainMapping } from './event-config.js';
import type { ProfileStore } from '../profiles.js';

const domainParams = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string', pattern: DOMAIN_NAME_PATTERN } },
} as const;
const mappingBody = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'value'],
  properties: {
    kind: { type: 'string', enum: MAPPING_KINDS },
    value: { type: 'string', minLength: 1, maxLength: 400 },
  },
} as const;

/** `{kind, value}` as a mapping: for a property, value is `NAME=VALUE`. */
function mappingOf(b: { kind: MappingKind; value: string }): Omit<DomainMapping, 'domain'> {
  if (b.kind !== 'property') return { kind: b.kind, key: b.value };
  const eq = b.value.indexOf('=');
  if (eq <= 0)
    throw new BadParameterError('ERR_BAD_REQUEST', 'value: a property mapping is NAME=VALUE, e.g. customer=acme', {
      field: 'value',
    });
  return { kind: 'property', key: b.value.slice(0, eq), value: b.value.slice(eq + 1) };
}

export function registerDomainRoutes(
  app: FastifyInstance,
  events: EventPipeline,
  profiles: Pick<ProfileStore, 'list'>,
): void {
  const { config } = events;

  app.get('/api/v1/domains', { config: { tenantPermission: 'events:read' } }, async () => ({
    items: config.listDomains().map((d) => ({ ...d, mappings: config.listMappings(d.name) })),
  }));

  app.post(
    '/api/v1/domains',
    {
      config: { tenantPermission: 'events:write' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: {
            name: { type: 'string', maxLength: 64 },
            description: { type: 'string', maxLength: 500 },
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { name: string; description?: string };
      const d = await config.createDomain(b.name, b.description);
      req.auditAs = { action: 'domain.create', target: d.name };
      return reply.code(201).send(d);
    },
  );

  app.delete(
    '/api/v1/domains/:name',
    { config: { tenantPermission: 'events:write' }, schema: { params: domainParams } },
    async (req) => {
      const { name } = req.params as { name: string };
      // A profile naming a removed domain would grant it again to a domain made later under the same name.
      const holders = profiles.list().filter((p) => p.domains.includes(name));
      if (holders.length)
        throw new ConflictError(
          'ERR_DOMAIN_IN_USE',
          `name: security profile ${holders.map((p) => `"${p.name}"`).join(', ')} names domain "${name}": change ` +
            'or remove it first (palisade profiles list)',
          { field: 'name' },
        );
      const r = await config.removeDomain(name);
      req.auditAs = { action: 'domain.remove', target: name, detail: { mappingsRemoved: r.mappingsRemoved } };
      return r;
    },
  );

  app.get(
    '/api/v1/domains/:name/mappings',
    { config: { tenantPermission: 'events:read' }, schema: { params: domainParams } },
    async (req) => {
      const { name } = req.params as { name: string };
      config.domain(name, 'name');
      return { items: config.listMappings(name) };
    },
  );

  app.post(
    '/api/v1/domains/:name/mappings',
    { config: { tenantPermission: 'events:write' }, schema: { params: domainParams, body: mappingBody } },
    async (req, reply) => {
      const { name } = req.params as { name: string };
      const m = await config.map(name, mappingOf(req.body as { kind: MappingKind; value: string }));
      req.auditAs = { action: 'domain.map', target: name, detail: { mapping: m.id } };
      return reply.code(201).send(m);
    },
  );

  app.post(
    '/api/v1/domains/:name/unmap',
    { config: { tenantPermission: 'events:write' }, schema: { params: domainParams, body: mappingBody } },
    async (req) => {
      const { name } = req.params as { name: string };
      const r = await config.unmap(name, mappingOf(req.body as { kind: MappingKind; value: string }));
      req.auditAs = { action: 'domain.unmap', target: name, detail: { mapping: r.id } };
      return r;
    },
  );

  app.get('/api/v1/properties', { config: { tenantPermission: 'events:read' } }, async () => ({
    items: config.listProperties(),
  }));

  app.post(
    '/api/v1/properties',
    {
      config: { tenantPermission: 'events:write' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'regex'],
          properties: {
            name: { type: 'string', maxLength: 64 },
            regex: { type: 'string', maxLength: MAX_PROPERTY_REGEX },
          },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { name: string; regex: string };
      const p = await config.createProperty(b.name, b.regex);
      req.auditAs = { action: 'property.create', target: p.name, detail: { regex: p.regex } };
      return reply.code(201).send(p);
    },
  );

  app.delete(
    '/api/v1/properties/:name',
    {
      config: { tenantPermission: 'events:write' },
      schema: {
        params: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: { name: { type: 'string', pattern: PROPERTY_NAME_PATTERN } },
        },
      },
    },
    async (req) => {
      const { name } = req.params as { name: string };
      const r = await config.removeProperty(name);
      req.auditAs = { action: 'property.remove', target: name };
      return r;
    },
  );
}
