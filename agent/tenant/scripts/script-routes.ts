/**
 * A tenant's "try a script" route, `POST /api/v1/scripts/run {"script","input"?,"incident"?,"limits"?}` (through
 * main: `/api/v1/tenants/T/api/scripts/run`): runs a script item the tenant holds, shared or local, by id or name,
 * in the sandbox with the real API for its caller (script-api.ts), and answers its result, logs and context.
 * Audited as `script.run` whatever the outcome. Not the playbook runner, which calls runScript itself.
 */
import type { FastifyInstance } from 'fastify';
import type { ContentStore } from '../content-store.js';
import { findScript, scriptApi, type ScriptServices } from './script-api.js';
import { runScript, SCRIPT_LIMITS } from './script-sandbox.js';

/** Under the 30 s main's relay waits for a tenant's answer (main/tenants/tenants.ts), so a timeout is ours to tell. */
const ROUTE_TIMEOUT_MAX_MS = 25_000;

const RUN_BODY = {
  type: 'object',
  additionalProperties: false,
  required: ['script'],
  properties: {
    script: { type: 'string', minLength: 1, maxLength: 200 },
    input: {},
    incident: { type: 'string', pattern: '^[0-9]{1,12}$' },
    limits: {
      type: 'object',
      additionalProperties: false,
      properties: {
        timeoutMs: { type: 'integer', minimum: SCRIPT_LIMITS.timeoutMs.min, maximum: ROUTE_TIMEOUT_MAX_MS },
        memoryMb: { type: 'integer', minimum: SCRIPT_LIMITS.memoryMb.min, maximum: SCRIPT_LIMITS.memoryMb.max },
      },
    },
  },
} as const;

type RunBody = {
  script: string;
  input?: unknown;
  incident?: string;
  limits?: { timeoutMs?: number; memoryMb?: number };
};

export function registerScriptRoutes(app: FastifyInstance, s: ScriptServices & { content: ContentStore }): void {
  app.post(
    '/api/v1/scripts/run',
    { config: { tenantPermission: 'scripts:run' }, schema: { body: RUN_BODY } },
    async (req) => {
      const b = req.body as RunBody;
      const item = await findScript(s.content, b.script);
      const { api, context, counts } = scriptApi(s, {
        caller: req.caller!,
        permissions: req.permissions!,
        script: item.id,
        incident: b.incident,
      });
      const started = performance.now();
      const audit = () => {
        req.auditAs = {
          action: 'script.run',
          target: item.id,
          detail: {
            name: item.name,
            version: item.version,
            ...(b.incident ? { incident: b.incident } : {}),
            integrationCalls: counts.integrationCalls,
            durationMs: Math.round(performance.now() - started),
          },
        };
      };
      try {
        const r = await runScript({ source: item.body, input: b.input, api, limits: b.limits });
        return { script: { id: item.id, name: item.name, version: item.version }, ...r, context };
      } finally {
        audit();
      }
    },
  );
}
