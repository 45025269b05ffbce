/**
 * The tenant's playbook run API (docs/playbooks.md#rest): start a run of a playbook this tenant holds (shared or
 * local, by content id or name) on an incident, list and show runs, complete a manual or interrupted task, retry
 * an interrupted or failed one; and an incident's timeline. Starting, completing and retrying are audited with
 * the run and the task; and testing a draft main sends, which stores nothing (playbook-test.ts). Not the runner
 * (playbook-runner.ts).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AccessDeniedError, NotFoundError, TooLargeError } from '#common/errors.js';
import type { IncidentTimeline } from '../incident-timeline.js';
import type { TenantStore } from '../store.js';
import type { PlaybookRunner, RunnerDeps } from './playbook-runner.js';
import { testPlaybook, type TestIncident, type TestedItem } from './playbook-test.js';
import type { SiteStore } from '../sites/site-store.js';
import { NAME_PATTERN } from '#common/names.js';
import type { PlaybookRun, RunState, RunStore } from './run-store.js';
import { runView, shownStatus } from './run-view.js';
import { MAX_TASK_OUTPUT_BYTES } from './task-steps.js';

/**
 * The longest `GET …/runs/:run?wait=MS` (or a start's `POST …/runs?wait=MS`) holds its answer until the run stops
 * being driven: under main's relay deadline for a tenant's answer (30 s), so a waiting client gets the run's state
 * rather than a relay timeout.
 */
export const MAX_WAIT_MS = 20_000;
/**
 * Reads held at once: past this a read is answered at once, so held reads take at most a quarter of the sockets the
 * host's relay keeps to a tenant (64, agent/host/tenant-relay.ts) and never queue other requests behind them.
 */
export const MAX_HELD_READS = 16;

const by = (req: FastifyRequest) => req.caller?.name || req.caller?.id || '';
const RUN = { type: 'string', pattern: '^run_[0-9]{12}$' } as const;
const TASK = { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9_-]{0,63}$' } as const;
const INCIDENT = { type: 'string', pattern: '^[0-9]{1,12}$' } as const;
/** `?wait=MS`, a start's and a read's: digits only (400 naming `wait` otherwise); past MAX_WAIT_MS it is that. */
const waitQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    wait: {
      type: 'string',
      pattern: '^[0-9]{1,6}$',
      description: `Hold the answer until the run stops being driven, for at most this many ms (≤ ${MAX_WAIT_MS})`,
    },
  },
} as const;
const waitOf = (req: FastifyRequest) => Math.min(MAX_WAIT_MS, Number((req.query as { wait?: string }).wait ?? 0));
const runParams = { type: 'object', additionalProperties: false, required: ['run'], properties: { run: RUN } } as const;
const taskParams = {
  type: 'object',
  additionalProperties: false,
  required: ['run', 'task'],
  properties: { run: RUN, task: TASK },
} as const;

/** A run as the API shows it (run-view.ts): everything but the playbook's text, which the content API shows. */
const view = runView;
/** A run in a list: its state, not its context. */
const summary = (r: RunState) => ({
  id: r.id,
  playbook: r.playbook,
  incident: r.incident,
  ...(r.site ? { site: r.site } : {}),
  status: shownStatus(r.status),
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
  s: {
    runner: PlaybookRunner;
    runs: RunStore;
    timeline: IncidentTimeline;
    store: TenantStore;
    deps: RunnerDeps;
    sites: Pick<SiteStore, 'checkActive'>;
  },
): void {
  let held = 0;
  /** Holds until run `id` stops being driven, for at most `wait` ms, if fewer than MAX_HELD_READS are held. */
  const settle = async (id: string, wait: number) => {
    if (wait <= 0 || held >= MAX_HELD_READS) return false;
    held++;
    await s.runner.settled(id, wait).finally(() => held--);
    return true;
  };
  app.post(
    '/api/v1/playbooks/:id/runs',
    {
      // The request's id and its audit line are stored in the batch that stores the run: no write of their own.
      config: { tenantPermission: 'playbooks:run', replayInBatch: true },
      schema: {
        params: {
          type: 'object',
          additionalProperties: false,
          required: ['id'],
          properties: { id: { type: 'string', minLength: 1, maxLength: 200 } },
        },
        querystring: waitQuery,
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
      const perms = req.permissions ?? new Set();
      const also = (r: PlaybookRun) => {
        req.auditAs = { action: 'playbook.run', target: ref, detail: { incident: b.incident, run: r.id } };
        return [...(req.replayOps ?? []), ...(req.auditOps?.(201) ?? [])];
      };
      const run = await s.runner.start(ref, b.incident, b.inputs ?? {}, by(req), perms, undefined, also);
      req.auditedInBatch = 201;
      // `?wait=`: one request for start and end (a client otherwise starts, then reads with `?wait=`).
      const shown = (await settle(run.id, waitOf(req))) ? await s.runs.state(run.id) : run;
      return reply.code(201).send(view(shown));
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
    {
      config: { tenantPermission: 'playbooks:read' },
      schema: {
        params: runParams,
        querystring: waitQuery,
      },
    },
    async (req) => {
      const id = (req.params as { run: string }).run;
      // A run not being driven (an unknown one too, which is then a 404) is read at once.
      await settle(id, waitOf(req));
      return view(await s.runs.state(id));
    },
  );

  // One task's whole output: what a run's answer left out to stay within the relay's limit (run-view.ts `cut`).
  app.get(
    '/api/v1/playbooks/runs/:run/tasks/:task',
    { config: { tenantPermission: 'playbooks:read' }, schema: { params: taskParams } },
    async (req) => {
      const p = req.params as { run: string; task: string };
      const run = await s.runs.state(p.run);
      const t = run.tasks[p.task];
      if (!t)
        throw new NotFoundError('ERR_PLAYBOOK_TASK_NOT_FOUND', `run ${p.run} has not started a task ${p.task}`, {
          field: 'task',
        });
      return { run: run.id, task: p.task, status: t.status, output: t.output ?? null };
    },
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
      const data = (req.body as { data?: unknown } | undefined)?.data ?? null;
      // The data becomes the task's output: bounded as an integration's answer is, before anything changes.
      const size = Buffer.byteLength(JSON.stringify(data));
      if (size > MAX_TASK_OUTPUT_BYTES)
        throw new TooLargeError(
          'ERR_PLAYBOOK_OUTPUT_TOO_LARGE',
          `data: ${size} bytes of JSON; a task's output is at most ${MAX_TASK_OUTPUT_BYTES}`,
          { field: 'data' },
        );
      return view(await s.runner.complete(p.run, p.task, data, by(req)));
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

  app.post(
    '/api/v1/playbooks/test',
    {
      config: { tenantPermission: 'playbooks:run' },
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['playbook'],
          properties: {
            playbook: {
              type: 'object',
              additionalProperties: false,
              required: ['id', 'name', 'version', 'body'],
              properties: {
                id: { type: 'string', minLength: 1, maxLength: 200 },
                name: { type: 'string', minLength: 1, maxLength: 200 },
                version: { type: 'integer', minimum: 1 },
                body: { type: 'string' },
              },
            },
            incident: {
              type: 'object',
              additionalProperties: false,
              properties: {
                name: { type: 'string', minLength: 1, maxLength: 200 },
                type: { type: 'string', minLength: 1, maxLength: 100 },
                severity: { type: 'integer', minimum: 0, maximum: 4 },
                details: { type: 'string', maxLength: 100_000 },
                labels: {
                  type: 'object',
                  maxProperties: 50,
                  additionalProperties: { type: 'string', maxLength: 1000 },
                },
              },
            },
            inputs: { type: 'object', maxProperties: 50 },
            // The site the test's incident is at (an active one): site-scoped connections then apply.
            site: { type: 'string', pattern: NAME_PATTERN },
          },
        },
      },
    },
    async (req) => {
      const b = req.body as {
        playbook: TestedItem;
        incident?: TestIncident;
        inputs?: Record<string, unknown>;
        site?: string;
      };
      req.auditAs = { action: 'playbook.test', target: b.playbook.id, detail: { version: b.playbook.version } };
      // Running a body given here is authoring as much as running: without this, `playbooks:run` alone would run
      // any playbook one can write, where a run may only start what the tenant holds.
      if (!req.permissions?.has('content:write'))
        throw new AccessDeniedError(
          'ERR_FORBIDDEN',
          'testing a playbook needs "content:write" besides "playbooks:run"',
        );
      if (b.site) await s.sites.checkActive(b.site, 'site');
      const given = { ...b, incident: { ...b.incident, ...(b.site ? { site: b.site } : {}) } };
      const r = await testPlaybook(s.deps, b.playbook, given, by(req), req.permissions ?? new Set());
      req.auditAs.detail = { version: b.playbook.version, status: r.status };
      return r;
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
