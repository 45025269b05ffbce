/**
 * The tenant's playbook run API (docs/playbooks.md#rest): start a run of a playbook this tenant holds (shared or
 * local, by content id or name) on an incident, list and show runs, complete a manual or interrupted task, retry
 * an interrupted or failed one; and an incident's timeline. Starting, completing and retrying are audited with
 * the run and the task. Not the runner (playbook-runner.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { IncidentTimeline } from '../incident-timeline.js';
import type { TenantStore } from '../store.js';
import type { PlaybookRunner } from './playbook-runner.js';
import type { PlaybookRun, RunStore } from './run-store.js';

const by = (req: FastifyRequest) => req.caller?.name || req.caller?.id || '';
const RUN = { type: 'string', pattern: '^run_[0-9]{12}$' } as const;
const TASK = { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9_-]{0,63}$' } as const;
const INCIDENT = { type: 'string', pattern: '^[0-9]{1,12}$' } as const;
const runParams = { type: 'object', additionalProperties: false, required: ['run'], properties: { run: RUN } } as const;
const taskParams = {
  type: 'object',
  additionalProperties: false,
  required: ['run', 'task'],
  properties: { run: RUN, task: TASK },
} as const;

/** A run as the API shows it: everything but the playbook's text, which the content API shows. */
const view = ({ definition: _definition, ...r }: PlaybookRun) => r;
/** A run in a list: its state, not its context. */
const summary = (r: PlaybookRun) => ({
  id: r.id,
  playbook: r.playbook,
  incident: r.incident,
  status: r.status,
  current: r.current,
  startedBy: r.startedBy,
  created: r.created,
  updated: r.updated,
  ...(r.ended ? { ended: r.ended } : {}),
  ...(r.error ? { error: r.error } : {}),
  ...(r.parent ? { parent: r.parent } : {}),
});

export function registerPlaybookRoutes(
  app: FastifyInstance,
  s: { runner: PlaybookRunner; runs: RunStore; timeline: IncidentTimeline; store: TenantStore },
): void {
  app.post(
    '/api/v1/playbooks/:id/runs',
    {
      config: { tenantPermission: 'playbooks:run' },
      schema: {
        params: {
          type: 'object',
          additionalProperties: false,
          required: ['id'],
          properties: { id: { type: 'string', minLength: 1, maxLength: 200 } },
        },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['incident'],
          properties: { incident: INCIDENT, inputs: { type: 'object', maxProperties: 50 } },
        },
      },
    },
    async (req, reply) => {
      const b = req.body as { incident: string; inputs?: Record<string, unknown> };
      const ref = (req.params as { id: string }).id;
      req.auditAs = { action: 'playbook.run', target: ref, detail: { incident: b.incident } };
      const run = await s.runner.start(ref, b.incident, b.inputs ?? {}, by(req), req.permissions ?? new Set());
      req.auditAs.detail = { incident: b.incident, run: run.id };
      return reply.code(201).send(view(run));
    },
  );

  app.get(
    '/api/v1/playbooks/runs',
    {
      config: { tenantPermission: 'playbooks:read' },
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { incident: INCIDENT, limit: { type: 'string', pattern: '^[0-9]{1,4}$' } },
        },
      },
    },
    async (req) => {
      const q = req.query as { incident?: string; limit?: string };
      const limit = Math.min(1000, Math.max(1, Number(q.limit ?? 100)));
      return (await s.runs.list({ incident: q.incident }, limit)).map(summary);
    },
  );

  app.get(
    '/api/v1/playbooks/runs/:run',
    { config: { tenantPermission: 'playbooks:read' }, schema: { params: runParams } },
    async (req) => view(await s.runs.get((req.params as { run: string }).run)),
  );

  app.post(
    '/api/v1/playbooks/runs/:run/tasks/:task/complete',
    {
      config: { tenantPermission: 'playbooks:run' },
      schema: {
        params: taskParams,
        body: { type: 'object', additionalProperties: false, properties: { data: {} } },
      },
    },
    async (req) => {
      const p = req.params as { run: string; task: string };
      req.auditAs = { action: 'playbook.complete-task', target: p.run, detail: { task: p.task } };
      return view(
        await s.runner.complete(p.run, p.task, (req.body as { data?: unknown } | undefined)?.data ?? null, by(req)),
      );
    },
  );

  app.post(
    '/api/v1/playbooks/runs/:run/tasks/:task/retry',
    { config: { tenantPermission: 'playbooks:run' }, schema: { params: taskParams } },
    async (req) => {
      const p = req.params as { run: string; task: string };
      req.auditAs = { action: 'playbook.retry-task', target: p.run, detail: { task: p.task } };
      return view(await s.runner.retry(p.run, p.task, by(req)));
    },
  );

  app.get(
    '/api/v1/incidents/:id/timeline',
    {
      config: { tenantPermission: 'incidents:read' },
      schema: {
        params: { type: 'object', additionalProperties: false, required: ['id'], properties: { id: INCIDENT } },
      },
    },
    async (req) => {
      const id = (req.params as { id: string }).id;
      await s.store.getIncident(id);
      return s.timeline.list(id);
    },
  );
}
