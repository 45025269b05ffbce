/** Routes for hosts and engines: list, show, remove (revoke), and commands to one agent. */
import type { FastifyInstance } from 'fastify';
import { BadParameterError } from '#common/errors.js';
import { parseDuration } from '#common/duration.js';
import { DEFAULT_COMMAND_DEADLINE_MS } from '../config.js';
import { agentView, findAgent, revokeAgent, type AgentKindName } from '../agents/agent-admin.js';
import type { CommandRecord } from '../registry.js';
import type { MainServices } from '../services.js';
import { agentView as agentViewSchema, commandView, errorResponses, nameParam } from './schemas.js';
import { USER_AGENT_COMMANDS } from '#common/host-commands.js';

/** Built-in commands each kind runs for an admin (common/host-commands.ts). */
export const AGENT_COMMANDS: Readonly<Record<AgentKindName, readonly string[]>> = Object.freeze({
  host: USER_AGENT_COMMANDS,
  engine: USER_AGENT_COMMANDS,
});
/** How long POST …/commands waits for the result before answering 202 with the pending command. */
const DEFAULT_WAIT_MS = 30_000;

export function commandRecordView(r: CommandRecord) {
  return {
    id: r.id,
    agent: r.agentName,
    command: r.name,
    args: r.args,
    state: r.state,
    createdAt: r.createdAt,
    createdBy: r.createdBy,
    deadline: r.deadline,
    completedAt: r.completedAt ?? null,
    result: r.result ?? null,
    error: r.error ?? null,
  };
}

export function registerAgentRoutes(app: FastifyInstance, s: MainServices): void {
  for (const kind of ['host', 'engine'] as const) registerKind(app, s, kind);
}

function registerKind(app: FastifyInstance, s: MainServices, kind: AgentKindName): void {
  const base = `/api/v1/${kind}s`;
  const tags = ['agents'];
  const Kind = kind[0].toUpperCase() + kind.slice(1);

  app.get(
    base,
    {
      config: { permission: 'agents:read' },
      schema: {
        summary: `List ${kind}s with status`,
        description: `Every enrolled ${kind} (removed ones excluded) with online/offline status, last heartbeat, system info and queued commands.`,
        operationId: `list${Kind}s`,
        tags,
        response: {
          200: { type: 'array', items: agentViewSchema, description: `Enrolled ${kind}s` },
          ...errorResponses(),
        },
      },
    },
    async () => (await s.registry.listAgents(kind)).filter((a) => !a.revokedAt).map((a) => agentView(s, a)),
  );

  app.get(
    `${base}/:name`,
    {
      config: { permission: 'agents:read' },
      schema: {
        summary: `Show one ${kind}`,
        description: `One ${kind} by name, with live status and its latest system report.`,
        operationId: `get${Kind}`,
        tags,
        params: nameParam,
        response: { 200: { ...agentViewSchema, description: `The ${kind}` }, ...errorResponses(404) },
      },
    },
    async (req) => agentView(s, await findAgent(s, kind, (req.params as { name: string }).name)),
  );

  app.delete(
    `${base}/:name`,
    {
      config: { permission: 'agents:write' },
      schema: {
        summary: `Remove a ${kind}: revoke its certificate and drop its connection`,
        description: `Revokes the ${kind}'s client certificate (its next connection is refused and audited), closes its live connection, fails its queued commands and frees the name.`,
        operationId: `remove${Kind}`,
        tags,
        params: nameParam,
        response: { 200: { ...agentViewSchema, description: `The removed ${kind}` }, ...errorResponses(404) },
      },
    },
    async (req) => revokeAgent(s, kind, (req.params as { name: string }).name, req.principal!.user.id, req.ip),
  );

  app.post(
    `${base}/:name/commands`,
    {
      config: { permission: 'commands:run' },
      schema: {
        summary: `Run a command on a ${kind} (queued durably if it is offline)`,
        description:
          'The command is written to the outbox before it is sent and re-sent after reconnects until a result arrives; the agent runs each command id once. Waits up to timeoutMs for the result (200), else answers 202 with the pending command.',
        operationId: `run${Kind}Command`,
        tags: ['commands'],
        params: nameParam,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['command'],
          properties: {
            command: { type: 'string', enum: [...AGENT_COMMANDS[kind]], description: 'Command name' },
            args: { type: 'object', description: 'Command arguments' },
            wait: { type: 'boolean', description: 'Wait for the result (default true)' },
            timeoutMs: {
              type: 'integer',
              minimum: 0,
              maximum: 120_000,
              description: 'How long to wait for the result (default 30000)',
            },
            deadline: {
              type: 'string',
              maxLength: 20,
              description: 'Drop the command if not run within this long, e.g. 30m (default 1h)',
            },
          },
        },
        response: {
          200: { ...commandView, description: 'The command finished (done, failed or expired)' },
          202: { ...commandView, description: 'The command is queued or running; poll GET …/commands/:id' },
          ...errorResponses(404, 503),
        },
      },
    },
    async (req, reply) => {
      const body = req.body as {
        command: string;
        args?: unknown;
        wait?: boolean;
        timeoutMs?: number;
        deadline?: string;
      };
      const agent = await findAgent(s, kind, (req.params as { name: string }).name);
      const deadlineMs = body.deadline ? parseDuration(body.deadline, 'deadline') : DEFAULT_COMMAND_DEADLINE_MS;
      const rec = await s.outbox.enqueue(agent, {
        name: body.command as (typeof USER_AGENT_COMMANDS)[number], // the schema's enum checked it
        args: body.args ?? {},
        createdBy: req.principal!.user.id,
        deadlineMs,
      });
      await s.audit.record({
        actor: req.principal!.user.id,
        action: 'command.create',
        target: `${kind}:${agent.name}`,
        outcome: 'ok',
        remote: req.ip,
        detail: { commandId: rec.id, command: rec.name },
      });
      const done = await s.outbox.wait(rec.id, body.wait === false ? 0 : (body.timeoutMs ?? DEFAULT_WAIT_MS));
      return reply.code(done.state === 'pending' ? 202 : 200).send(commandRecordView(done));
    },
  );

  app.get(
    `${base}/:name/commands`,
    {
      config: { permission: 'commands:read' },
      schema: {
        summary: `List recent commands of a ${kind}`,
        description: 'Newest first, with state and result.',
        operationId: `list${Kind}Commands`,
        tags: ['commands'],
        params: nameParam,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'string', pattern: '^[0-9]{1,5}$' } },
        },
        response: { 200: { type: 'array', items: commandView, description: 'Newest first' }, ...errorResponses(404) },
      },
    },
    async (req) => {
      const agent = await findAgent(s, kind, (req.params as { name: string }).name);
      const limit = Math.min(1000, Number((req.query as { limit?: string }).limit ?? 100) || 100);
      return (await s.outbox.list(agent.id, limit)).map(commandRecordView);
    },
  );

  app.get(
    `${base}/:name/commands/:id`,
    {
      config: { permission: 'commands:read' },
      schema: {
        summary: `Get one command of a ${kind} with its result`,
        description: 'State is pending until the agent answers; then done, failed or expired.',
        operationId: `get${Kind}Command`,
        tags: ['commands'],
        params: {
          type: 'object',
          required: ['name', 'id'],
          additionalProperties: false,
          properties: {
            ...nameParam.properties,
            id: { type: 'string', pattern: '^[0-9]{1,15}$', description: 'Command id' },
          },
        },
        response: { 200: { ...commandView, description: 'The command' }, ...errorResponses(404) },
      },
    },
    async (req) => {
      const p = req.params as { name: string; id: string };
      const agent = await findAgent(s, kind, p.name);
      const rec = await s.outbox.get(Number(p.id));
      if (rec.agentId !== agent.id)
        throw new BadParameterError('ERR_COMMAND_OTHER_AGENT', `command ${p.id} was not sent to ${kind} "${p.name}"`, {
          field: 'id',
        });
      return commandRecordView(rec);
    },
  );
}
