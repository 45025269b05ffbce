/**
 * Routes for agent upgrades: the releases main holds (add, list), rings, starting an upgrade and its
 * progress, under /api/v1/agents; and the one route agents themselves call, GET /agent/v1/releases/:version,
 * which serves a release's archive to an enrolled agent (its client certificate, as on /agent/v1) and is
 * not part of the admin API. Not the rollout's logic (agents/upgrades.ts) or storage (agents/releases.ts).
 */
import { createReadStream } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import {
  DEFAULT_UPGRADE_DEADLINE_MS,
  MAX_UPGRADE_DEADLINE_MS,
  MIN_UPGRADE_DEADLINE_MS,
} from '#common/agent-release.js';
import { parseDuration } from '#common/duration.js';
import { AccessDeniedError, BadParameterError, UnauthenticatedError } from '#common/errors.js';
import { peerAgent } from '../agents/peer-agent.js';
import type { MainServices } from '../services.js';
import { errorResponses } from './schemas.js';

/** An agent release carries its own Node.js runtime (~30 MiB packed) and the agent: 512 MiB is ample. */
export const MAX_RELEASE_BYTES = 512 * 1024 * 1024;
const tags = ['agents'];

const releaseView = {
  type: 'object',
  required: ['version', 'size', 'sha256', 'signature', 'addedAt'],
  properties: {
    version: { type: 'string' },
    node: { type: 'string', nullable: true, description: 'The Node.js runtime the release carries' },
    size: { type: 'integer' },
    sha256: { type: 'string', description: 'SHA-256 of the archive, lower-case hex' },
    signature: { type: 'string', description: "main's ed25519 signature over version, SHA-256 and size (base64)" },
    addedAt: { type: 'string' },
    addedBy: { type: 'string' },
  },
} as const;

const upgradeView = {
  type: 'object',
  required: ['agent', 'kind', 'to', 'state'],
  properties: {
    agent: { type: 'string' },
    kind: { type: 'string', enum: ['host', 'engine'] },
    ring: { type: 'string', enum: ['canary', 'default'] },
    from: { type: 'string', nullable: true },
    to: { type: 'string' },
    version: { type: 'string', nullable: true, description: 'The version the agent reported last' },
    state: { type: 'string', enum: ['pending', 'upgraded', 'rolled-back', 'failed'] },
    reason: { type: 'string', nullable: true, description: 'Why it rolled back or failed' },
    commandId: { type: 'integer' },
    startedAt: { type: 'string' },
  },
} as const;

const names = { type: 'array', minItems: 1, maxItems: 1000, items: { type: 'string', minLength: 1, maxLength: 63 } };

export function registerReleaseRoutes(app: FastifyInstance, s: MainServices): void {
  void app.register(async (scope) => {
    scope.addContentTypeParser(
      ['application/gzip', 'application/octet-stream'],
      { parseAs: 'buffer', bodyLimit: MAX_RELEASE_BYTES },
      (_req, body, done) => done(null, body),
    );
    scope.post(
      '/api/v1/agents/releases',
      {
        config: { permission: 'agents:write' },
        bodyLimit: MAX_RELEASE_BYTES,
        schema: {
          summary: 'Add an agent release (a .tar.gz of a release directory)',
          description:
            "The body is the archive (application/gzip). Its release.json names the version. Main signs the archive's SHA-256 with its signing key; agents check that signature before they swap the release in. The same bytes again answer 200; other bytes under a stored version answer 409.",
          operationId: 'addAgentRelease',
          tags,
          response: {
            200: { ...releaseView, description: 'Already held: the stored release' },
            201: { ...releaseView, description: 'Added' },
            ...errorResponses(409, 413),
          },
        },
      },
      async (req, reply) => {
        if (!Buffer.isBuffer(req.body))
          throw new BadParameterError('ERR_RELEASE_INVALID', 'send the archive as application/gzip');
        const { record, created } = await s.releases.add(req.body, req.principal!.user.id);
        if (created)
          await s.audit.record({
            actor: req.principal!.user.id,
            action: 'agent.release-add',
            target: `release:${record.version}`,
            outcome: 'ok',
            remote: req.ip,
            detail: { sha256: record.sha256, size: record.size },
          });
        return reply.code(created ? 201 : 200).send(record);
      },
    );
  });

  app.get(
    '/api/v1/agents/releases',
    {
      config: { permission: 'agents:read' },
      schema: {
        summary: 'List the agent releases main holds',
        description: 'Oldest first.',
        operationId: 'listAgentReleases',
        tags,
        response: { 200: { type: 'array', items: releaseView, description: 'Releases' }, ...errorResponses() },
      },
    },
    async () => s.releases.list(),
  );

  app.put(
    '/api/v1/agents/ring',
    {
      config: { permission: 'agents:write' },
      schema: {
        summary: "Set agents' upgrade ring",
        description: '`agents upgrade --ring canary` upgrades only canary agents; every agent starts in default.',
        operationId: 'setAgentRing',
        tags,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['agents', 'ring'],
          properties: {
            agents: { ...names, description: 'Host or engine names' },
            ring: { type: 'string', enum: ['canary', 'default'] },
          },
        },
        response: {
          200: {
            type: 'object',
            description: 'The agents now in the ring',
            properties: { ring: { type: 'string' }, agents: { type: 'array', items: { type: 'string' } } },
          },
          ...errorResponses(),
        },
      },
    },
    async (req) => {
      const b = req.body as { agents: string[]; ring: 'canary' | 'default' };
      const agents = await s.upgrades.setRing(b.agents, b.ring);
      await s.audit.record({
        actor: req.principal!.user.id,
        action: 'agent.ring',
        target: `ring:${b.ring}`,
        outcome: 'ok',
        remote: req.ip,
        detail: { agents },
      });
      return { ring: b.ring, agents };
    },
  );

  app.post(
    '/api/v1/agents/upgrade',
    {
      config: { permission: 'agents:write' },
      schema: {
        summary: 'Upgrade agents to a release',
        description:
          "Queues a durable agent.upgrade for each chosen agent: `hosts` names agents, else `ring` (canary: only canary agents; all: every agent). Each agent fetches the release, checks main's signature, swaps it in and restarts; if the new version is not connected and accepted within `deadline` it rolls back by itself. Follow it with GET /agents/upgrade.",
        operationId: 'upgradeAgents',
        tags,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['version'],
          properties: {
            version: { type: 'string', minLength: 1, maxLength: 64 },
            ring: { type: 'string', enum: ['canary', 'all'], description: 'Default: all' },
            hosts: { ...names, description: 'Agent names (hosts or engines) instead of a ring' },
            deadline: {
              type: 'string',
              maxLength: 20,
              description: 'How long a new version has to connect before it rolls back, e.g. 2m (default 2m, 10s-1h)',
            },
          },
        },
        response: {
          202: { type: 'array', items: upgradeView, description: 'The agents told to upgrade' },
          ...errorResponses(404, 503),
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { version: string; ring?: 'canary' | 'all'; hosts?: string[]; deadline?: string };
      const deadlineMs = b.deadline ? parseDuration(b.deadline, 'deadline') : DEFAULT_UPGRADE_DEADLINE_MS;
      if (deadlineMs < MIN_UPGRADE_DEADLINE_MS || deadlineMs > MAX_UPGRADE_DEADLINE_MS)
        throw new BadParameterError('ERR_BAD_DURATION', 'deadline: between 10s and 1h', { field: 'deadline' });
      const started = await s.upgrades.start({
        version: b.version,
        ring: b.ring,
        names: b.hosts,
        deadlineMs,
        actor: req.principal!.user.id,
        remote: req.ip,
      });
      return reply.code(202).send(started);
    },
  );

  app.get(
    '/api/v1/agents/upgrade',
    {
      config: { permission: 'agents:read' },
      schema: {
        summary: "Each agent's latest upgrade and how it went",
        description: 'pending, upgraded, rolled-back (with the reason the agent reported) or failed (before any swap).',
        operationId: 'listAgentUpgrades',
        tags,
        response: { 200: { type: 'array', items: upgradeView, description: 'One per agent' }, ...errorResponses() },
      },
    },
    async () => s.upgrades.status(),
  );

  // For agents only: the client certificate is the credential, as on the agent gateway.
  app.get(
    '/agent/v1/releases/:version',
    { config: { permission: 'public' }, schema: { hide: true } },
    async (req, reply) => {
      const { serial, agent } = await peerAgent(s.registry, req.raw.socket as TLSSocket);
      if (!serial)
        throw new UnauthenticatedError(
          'ERR_AGENT_CERT_REQUIRED',
          'a client certificate issued by this main is required',
        );
      if (!agent) throw new AccessDeniedError('ERR_AGENT_REVOKED', 'this agent certificate is revoked or unknown');
      const r = await s.releases.get((req.params as { version: string }).version);
      return reply
        .type('application/gzip')
        .header('content-length', r.size)
        .send(createReadStream(s.releases.archivePath(r.version)));
    },
  );
}
