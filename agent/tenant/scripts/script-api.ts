/**
 * The real `palisade` API of a script run in a tenant, for one caller: integration commands through the tenant's
 * IntegrationRunner (each audited as `integration.run` with the caller and the script), the run's incident read and
 * patched in the tenant's store, and a context that lives in memory for this run only. A script acts with its
 * caller's permissions, never more: an integration call needs `integrations:run`, reading the incident
 * `incidents:read`, changing it `incidents:write`. Not the sandbox (script-sandbox.ts), nor the route
 * (script-routes.ts).
 */
import { Ajv } from 'ajv';
import { AccessDeniedError, BadParameterError, NotFoundError, TooLargeError, isPalisadeError } from '#common/errors.js';
import type { CallerIdentity } from '#common/signed-request.js';
import type { TenantPermission } from '#common/roles.js';
import type { AuditStore } from '../audit-store.js';
import type { ContentStore, TenantContentItem } from '../content-store.js';
import { INCIDENT_PATCH_SCHEMA } from '../incident-routes.js';
import { auditableArgs, type IntegrationRunner } from '../integration-runner.js';
import { auditActor } from '../signature-guard.js';
import type { Incident, IncidentRecords } from '../store.js';
import type { ScriptApi } from './script-sandbox.js';

const checkPatch = new Ajv({ allErrors: false }).compile(INCIDENT_PATCH_SCHEMA);
/** Context paths: dotted names, as a playbook's run context will use them. */
const PATH_RE = /^[A-Za-z_$][\w$-]*(\.[A-Za-z_$][\w$-]*){0,15}$/;
/**
 * A run's context in all, as JSON: it lives in the tenant's own heap (each set is a copy out of the isolate), so
 * a script must not grow it without bound. A context handed in bigger than this may only shrink.
 */
export const SCRIPT_CONTEXT_MAX = 1024 * 1024;

export interface ScriptRunFor {
  caller: CallerIdentity;
  permissions: ReadonlySet<TenantPermission>;
  /** The content item run, named in each audit line of its integration calls. */
  script: string;
  incident?: string;
}

export interface ScriptServices {
  store: IncidentRecords;
  runner: IntegrationRunner;
  audit: Pick<AuditStore, 'record'>;
}

/**
 * The api, the context it fills, and how many integration calls it made. `context` is what the script starts with
 * (a playbook run's context, copied: what the script sets stays its own, and its result is the task's output).
 */
export function scriptApi(s: ScriptServices, run: ScriptRunFor, from: Record<string, unknown> = {}) {
  const context: Record<string, unknown> = structuredClone(from);
  let contextSize = JSON.stringify(context).length;
  const counts = { integrationCalls: 0 };
  const need = (p: TenantPermission, what: string) => {
    if (!run.permissions.has(p))
      throw new AccessDeniedError('ERR_FORBIDDEN', `${what} needs "${p}", which ${auditActor(run.caller)} lacks`);
  };
  const incidentId = (): string => {
    if (!run.incident)
      throw new BadParameterError('ERR_BAD_REQUEST', 'this run has no incident: give one to run the script on', {
        field: 'incident',
      });
    return run.incident;
  };
  const api: ScriptApi = {
    async integration(instance, command, args) {
      need('integrations:run', 'palisade.integration');
      counts.integrationCalls++;
      return (await auditedRun(s, run, instance, command, args)).result;
    },
    incident: {
      async get() {
        need('incidents:read', 'palisade.incident.get');
        return s.store.getIncident(incidentId());
      },
      async update(patch) {
        need('incidents:write', 'palisade.incident.update');
        return updateIncident(s.store, incidentId(), patch);
      },
    },
    context: {
      get: (path) => {
        const at = walk(context, path, false);
        return at && Object.hasOwn(at, last(path)) ? at[last(path)] : undefined;
      },
      set: (path, value) => {
        const at = walk(context, path, true)!;
        const name = last(path);
        const had = Object.hasOwn(at, name);
        const before = at[name];
        at[name] = value;
        const size = JSON.stringify(context).length;
        if (size > SCRIPT_CONTEXT_MAX && size > contextSize) {
          if (had) at[name] = before;
          else Reflect.deleteProperty(at, name);
          throw new TooLargeError(
            'ERR_SCRIPT_CONTEXT_TOO_LARGE',
            `context.set ${JSON.stringify(path)}: the context would be ${size} characters of JSON, over ${SCRIPT_CONTEXT_MAX}`,
          );
        }
        contextSize = size;
      },
    },
  };
  return { api, context, counts };
}

/** One integration command, audited as the integration route audits it, with the caller and the script. */
async function auditedRun(s: ScriptServices, run: ScriptRunFor, instance: string, command: string, args: unknown) {
  const started = performance.now();
  const line = (outcome: 'ok' | 'failed', extra: Record<string, unknown> = {}) =>
    s.audit
      .record({
        actor: auditActor(run.caller),
        action: 'integration.run',
        target: instance,
        outcome,
        from: run.caller.from,
        ...extra,
        detail: {
          command,
          args: auditableArgs(args),
          script: run.script,
          durationMs: Math.round(performance.now() - started),
        },
      })
      .catch(() => undefined); // the script's answer does not wait on, or fail for, its audit line
  try {
    // The run's incident's site picks a site-scoped connection, as for a playbook's integration task.
    const site = run.incident ? (await s.store.getIncident(run.incident).catch(() => undefined))?.site : undefined;
    const r = await s.runner.run(instance, command, args, { site });
    await line('ok');
    return r;
  } catch (e) {
    await line('failed', isPalisadeError(e) ? { code: e.code } : {});
    throw e;
  }
}

/** The PATCH route's rule: the fields of a new incident, and not on a closed one. */
async function updateIncident(store: IncidentRecords, id: string, patch: unknown): Promise<Incident> {
  if (!checkPatch(patch)) {
    const e = checkPatch.errors![0];
    const field = `patch${e.instancePath.replace(/\//g, '.')}`;
    throw new BadParameterError('ERR_BAD_REQUEST', `${field} ${e.message ?? 'is invalid'}`, { field });
  }
  const cur = await store.getIncident(id);
  if (cur.status === 'closed')
    throw new BadParameterError('ERR_INCIDENT_CLOSED', `incident ${cur.id} is closed; reopen is not supported`, {
      field: 'incident',
    });
  const next: Incident = { ...cur, ...(patch as Partial<Incident>), updated: new Date().toISOString() };
  await store.putIncident(next);
  return next;
}

function last(path: string): string {
  return path.slice(path.lastIndexOf('.') + 1);
}

/** The object that holds `path`'s last name; with `create`, the objects on the way are made. */
function walk(root: Record<string, unknown>, path: string, create: boolean): Record<string, unknown> | undefined {
  if (!PATH_RE.test(path) || /(^|\.)(__proto__|constructor|prototype)(\.|$)/.test(path))
    throw new BadParameterError('ERR_BAD_REQUEST', `context path ${JSON.stringify(path)}: dotted names`, {
      field: 'path',
    });
  let at = root;
  for (const name of path.split('.').slice(0, -1)) {
    const next = Object.hasOwn(at, name) ? at[name] : undefined;
    if (typeof next === 'object' && next !== null && !Array.isArray(next)) at = next as Record<string, unknown>;
    else if (!create) return undefined;
    else at = at[name] = {};
  }
  return at;
}

/** By id, else by name among the tenant's script items; a name two items share must be given as an id. */
export async function findScript(content: ContentStore, ref: string): Promise<TenantContentItem> {
  // By id with one read (a playbook's script task names its script by id once published), not a scan of every item.
  const byId = await content.get(ref).catch(() => undefined);
  if (byId?.type === 'script') return byId;
  const named = await content.named('script', ref); // a shared script first (content-store.ts)
  if (named.length > 1)
    throw new BadParameterError(
      'ERR_BAD_REQUEST',
      `script: ${named.length} scripts are named ${JSON.stringify(ref)} (${named.map((i) => i.id).join(', ')}); give an id`,
      { field: 'script' },
    );
  if (!named[0])
    throw new NotFoundError('ERR_SCRIPT_NOT_FOUND', `script: no script ${JSON.stringify(ref)} in this tenant`, {
      field: 'script',
    });
  return named[0];
}
