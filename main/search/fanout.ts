/**
 * Fan-out to tenants for the bird's-eye view (docs/search.md): which tenants a request covers, one relayed
 * call per tenant with its own deadline, all at once, and each tenant's failure turned into an entry
 * instead of failing the whole answer. Also the cross-tenant commands: the tenant commands of
 * common/tenant-commands.ts, and `integration:INST.COMMAND`, a read-only command of each tenant's own instance.
 * Nothing a tenant answers is written on main: replies live in memory for the one request, so an integration
 * command's are capped, each tenant's (MAX_INTEGRATION_REPLY_BYTES) and all of them (MAX_INTEGRATION_ANSWER_BYTES).
 * Not here: merging and paging search results (incidents.ts, indicators.ts), HTTP shapes (http/routes-search.ts).
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { BadParameterError, NotFoundError, isPalisadeError } from '#common/errors.js';
import { validationText } from '#common/http-errors.js';
import { checkName } from '#common/names.js';
import { describedPattern } from '#common/pattern-text.js';
import { TENANT_COMMANDS, tenantCommandPath, type TenantCommandName } from '#common/tenant-commands.js';
import { callerIdentity, mayReach, type Principal } from '../access/api-keys.js';
import type { TenantService, TenantView } from '../tenants/tenants.js';
import type { AuditLog } from '../access/audit.js';

/** Per-tenant deadline: a slow tenant costs the whole answer this much at most, and is then reported. */
export const DEFAULT_FANOUT_TIMEOUT_MS = 3_000;
export const MAX_FANOUT_TIMEOUT_MS = 30_000;
export const MIN_FANOUT_TIMEOUT_MS = 100;

export interface TenantSelector {
  tenants?: readonly string[];
  labels?: readonly string[];
}
export interface TenantError {
  tenant: string;
  code: string;
  message: string;
}
/** `bytes`: the size of the tenant's JSON answer, as it came. */
export type TenantReply = { tenant: string; ok: true; value: unknown; bytes: number } | ({ ok: false } & TenantError);

/**
 * The tenants among `requested` that this caller may reach. The one place the bird's-eye view asks
 * RBAC: a main user limited to some tenants (Principal.scope) sees only those, everywhere in search and
 * commands, including tenants named in a cursor.
 */
export function reachableTenants(principal: Principal, requested: readonly TenantView[]): TenantView[] {
  return requested.filter((t) => mayReach(principal, t.name));
}

/** Where a named tenant out of the caller's reach is written down: main's audit log, and which verb was asked. */
export interface ReachAudit {
  log: AuditLog;
  via: string;
}

/**
 * Writes an `auth.tenant` denied line, as the relay does, for each name that exists but is out of the
 * caller's reach: the caller gets the same 404 as for a missing tenant, the audit log gets the crossing.
 * A name that exists nowhere is a typo, not a crossing, and is not written. The lines are written
 * without waiting, so the 404 takes as long whether a named tenant exists or not. At most one line per
 * existing tenant, so a long list of names cannot flood the log.
 */
export function auditOutOfReach(
  service: TenantService,
  principal: Principal,
  names: readonly string[],
  audit: ReachAudit,
): void {
  const denied = [...new Set(names)].filter((n) => !mayReach(principal, n) && service.peek(n) !== undefined).sort();
  for (const name of denied) {
    audit.log.recordLater({
      actor: principal.user.id,
      action: 'auth.tenant',
      target: `${audit.via} tenant:${name}`,
      outcome: 'denied',
      remote: principal.from,
      detail: { keyId: principal.keyId },
    });
  }
}

/**
 * The tenants a request covers, by name order: those named, or those carrying any of the labels, or
 * (neither given) all the caller may reach. A named tenant that does not exist or is out of the
 * caller's reach is the same 404, so the answer does not reveal which tenants exist; with `audit`, the
 * out-of-reach ones are audited (only unit tests' fakes leave it out).
 */
export async function selectTenants(
  service: TenantService,
  principal: Principal,
  sel: TenantSelector,
  audit?: ReachAudit,
): Promise<TenantView[]> {
  if (sel.tenants && sel.labels)
    throw new BadParameterError('ERR_SELECTOR_CONFLICT', 'tenants: give tenants or labels, not both', {
      field: 'tenants',
    });
  const reachable = reachableTenants(principal, await service.list()).sort((a, b) => (a.name < b.name ? -1 : 1));
  if (sel.tenants) {
    const byName = new Map(reachable.map((t) => [t.name, t]));
    const names = [...new Set(sel.tenants.map((n) => checkName(n, 'tenants')))];
    const missing = names.find((n) => !byName.has(n));
    if (missing) {
      if (audit)
        auditOutOfReach(
          service,
          principal,
          names.filter((n) => !byName.has(n)),
          audit,
        );
      throw new NotFoundError(
        'ERR_TENANT_NOT_FOUND',
        `tenants: no tenant named "${missing}"; list them with 'palisade tenants'`,
        { field: 'tenants' },
      );
    }
    return names.sort().map((n) => byName.get(n)!);
  }
  if (sel.labels) {
    const wanted = new Set(sel.labels.map((l) => checkName(l, 'labels')));
    return reachable.filter((t) => t.labels.some((l) => wanted.has(l)));
  }
  return reachable;
}

/** Splits a `a,b` query value; an empty list is a mistake, not "everything". */
export function commaList(v: string | undefined, field: string): string[] | undefined {
  if (v === undefined) return undefined;
  const items = v
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  if (items.length === 0) throw new BadParameterError('ERR_BAD_REQUEST', `${field}: give at least one name`, { field });
  return items.map((x) => checkName(x, field));
}

export function fanoutTimeout(v: number | string | undefined): number {
  if (v === undefined) return DEFAULT_FANOUT_TIMEOUT_MS;
  const n = Number(v);
  if (!Number.isInteger(n) || n < MIN_FANOUT_TIMEOUT_MS || n > MAX_FANOUT_TIMEOUT_MS) {
    throw new BadParameterError(
      'ERR_BAD_REQUEST',
      `timeoutMs: must be a whole number of ms from ${MIN_FANOUT_TIMEOUT_MS} to ${MAX_FANOUT_TIMEOUT_MS}`,
      { field: 'timeoutMs' },
    );
  }
  return n;
}

/**
 * One relayed JSON call to a tenant, never throwing: a transport failure, a deadline, a tenant's 4xx/5xx
 * or an unparsable reply all become `{ok: false, code, message}` for that tenant; so does a successful answer
 * over `maxBytes`, with `tooLarge` saying what to do instead (it is dropped unread).
 */
export async function callTenant(
  service: TenantService,
  principal: Principal,
  tenant: string,
  req: { method: 'GET' | 'POST'; path: string; body?: unknown; timeoutMs: number; maxBytes?: number },
  tooLarge = 'ask for less',
): Promise<TenantReply> {
  const fail = (code: string, message: string): TenantReply => ({ tenant, ok: false, code, message });
  let r: Awaited<ReturnType<TenantService['relay']>>;
  try {
    r = await service.relay(tenant, {
      method: req.method,
      path: req.path,
      body: req.body === undefined ? undefined : JSON.stringify(req.body),
      user: callerIdentity(principal),
      timeoutMs: req.timeoutMs,
    });
  } catch (e) {
    return isPalisadeError(e)
      ? fail(e.code, e.message)
      : fail('ERR_RELAY_FAILED', `relay to tenant "${tenant}" failed`);
  }
  if (req.maxBytes !== undefined && r.body.length > req.maxBytes && r.status >= 200 && r.status < 300)
    return fail(
      'ERR_FANOUT_REPLY_TOO_LARGE',
      `tenant "${tenant}" answered ${r.body.length} bytes of JSON, more than the ${req.maxBytes} a tenant's entry ` +
        `may hold: ${tooLarge}`,
    );
  let json: unknown;
  try {
    json = JSON.parse(r.body.toString('utf8'));
  } catch {
    return fail('ERR_TENANT_BAD_REPLY', `tenant "${tenant}" answered ${r.status} with a body that is not JSON`);
  }
  if (r.status >= 200 && r.status < 300) return { tenant, ok: true, value: json, bytes: r.body.length };
  const err = (json as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  return fail(
    typeof err?.code === 'string' ? err.code : `ERR_TENANT_HTTP_${r.status}`,
    typeof err?.message === 'string' ? err.message : `tenant "${tenant}" answered ${r.status}`,
  );
}

// ---- commands across tenants ----------------------------------------------------------------------

export interface CommandRequest extends TenantSelector {
  command: string;
  args?: Record<string, unknown>;
  timeoutMs?: number;
}
export type CommandResult =
  | { tenant: string; ok: true; result: unknown }
  | { tenant: string; ok: false; error: { code: string; message: string } };

const ajv = new Ajv({ allErrors: false, coerceTypes: false, strict: false });
const argCheckers = new Map<string, ValidateFunction>(
  Object.entries(TENANT_COMMANDS).map(([name, def]) => [name, ajv.compile(def.args)]),
);

function argsProblem(e: ErrorObject): string {
  const p = e.params as { missingProperty?: string; additionalProperty?: string };
  const at = `args${e.instancePath.replace(/\//g, '.')}`;
  if (p.missingProperty) return `${at}.${p.missingProperty} is required`;
  if (p.additionalProperty) return `${at}.${p.additionalProperty} is not a known field`;
  return `${at} ${validationText(e)}`;
}

/**
 * `integration:INST.COMMAND`: one command of the instance INST that each tenant holds for itself. Instance
 * names have no dots, so the first dot ends INST; the command's name is the tenant's to check.
 */
export const INTEGRATION_COMMAND_PATTERN = describedPattern(
  '^integration:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\\.[a-z][a-z0-9.-]{0,127}$',
  'integration:INSTANCE.COMMAND (an integration instance name, a dot, then a command name)',
);
const INTEGRATION_COMMAND = new RegExp(INTEGRATION_COMMAND_PATTERN);
/**
 * An integration command's deadline when the caller gives none: the http integration waits up to 20 s for
 * its service (agent/integrations/http/run.ts), so the search default (3 s) would cut ordinary calls short.
 */
export const DEFAULT_INTEGRATION_FANOUT_TIMEOUT_MS = 25_000;
/**
 * One tenant's answer to an integration command across tenants, as JSON: 64 KiB. A relayed answer may be near 1 MiB
 * (a result holds up to 512 KiB of JSON), and main holds every tenant's until the last is in; a command run on one
 * tenant alone (POST /tenants/T/api/integrations/I/run) has no cap but the result's.
 */
export const MAX_INTEGRATION_REPLY_BYTES = 64 * 1024;
/** All tenants' answers to one integration fan-out: 4 MiB, 64 tenants' full entries; beyond it, entries are errors. */
export const MAX_INTEGRATION_ANSWER_BYTES = 4 * 1024 * 1024;

/** Where and with what body each tenant runs the command; main checks the args only of its own commands. */
function tenantCall(req: CommandRequest): { path: string; body: unknown } {
  const args = req.args ?? {};
  if (INTEGRATION_COMMAND.test(req.command)) {
    const [instance, ...rest] = req.command.slice('integration:'.length).split('.');
    // `fanout: true` makes the tenant refuse a command its definition does not mark readOnly (only the
    // tenant holds the definition). Main sets it on every integration fan-out; a caller cannot leave it out.
    return { path: `/api/v1/integrations/${instance}/run`, body: { command: rest.join('.'), args, fanout: true } };
  }
  const check = argCheckers.get(req.command);
  if (!check)
    throw new BadParameterError(
      'ERR_COMMAND_UNKNOWN',
      `command: "${req.command}" is not one of ${[...argCheckers.keys()].join(', ')}, nor integration:INSTANCE.COMMAND`,
      { field: 'command' },
    );
  if (!check(args)) throw new BadParameterError('ERR_BAD_REQUEST', argsProblem(check.errors![0]), { field: 'args' });
  return { path: tenantCommandPath(req.command as TenantCommandName), body: args };
}

/** Runs one read-only command on every selected tenant at once; the answer lists each tenant's outcome. */
export async function runCommand(
  service: TenantService,
  audit: AuditLog,
  principal: Principal,
  req: CommandRequest,
  remote?: string,
): Promise<{ results: CommandResult[] }> {
  const { path, body } = tenantCall(req);
  if (!req.tenants && !req.labels)
    throw new BadParameterError('ERR_BAD_REQUEST', 'tenants: give tenants or labels to choose where the command runs', {
      field: 'tenants',
    });
  const integration = INTEGRATION_COMMAND.test(req.command);
  const timeoutMs = fanoutTimeout(req.timeoutMs ?? (integration ? DEFAULT_INTEGRATION_FANOUT_TIMEOUT_MS : undefined));
  const targets = await selectTenants(service, principal, req, { log: audit, via: 'commands.fanout' });
  const capped = integration ? integrationCaps(req.command) : undefined;
  const replies = await Promise.all(
    targets.map(async (t) => {
      const call = { method: 'POST' as const, path, body, timeoutMs, maxBytes: capped?.replyBytes };
      const r = await callTenant(service, principal, t.name, call, capped?.alone(t.name));
      return capped && r.ok ? capped.admit(r) : r;
    }),
  );
  const results: CommandResult[] = replies.map((r) =>
    r.ok
      ? { tenant: r.tenant, ok: true, result: r.value }
      : { tenant: r.tenant, ok: false, error: { code: r.code, message: r.message } },
  );
  const failed = results.filter((r) => !r.ok).length;
  // Who ran what where, and how it went; never the tenants' answers (they stay off main's disk).
  await audit.record({
    actor: principal.user.id,
    action: 'commands.fanout',
    target: req.command,
    outcome: failed === 0 ? 'ok' : 'failed',
    remote,
    detail: { tenants: targets.map((t) => t.name), ok: results.length - failed, failed },
  });
  return { results };
}

/**
 * An integration fan-out's caps: each tenant's entry (MAX_INTEGRATION_REPLY_BYTES), then all of them, counted as the
 * answers come in (MAX_INTEGRATION_ANSWER_BYTES), so that an answer past the cap is dropped at once, not held.
 */
function integrationCaps(command: string) {
  let room = MAX_INTEGRATION_ANSWER_BYTES;
  const [instance, ...rest] = command.slice('integration:'.length).split('.');
  return {
    replyBytes: MAX_INTEGRATION_REPLY_BYTES,
    alone: (tenant: string) =>
      `run it on that tenant alone ('palisade integrations run ${instance} ${rest.join('.')} --tenant ${tenant}'), ` +
      'or ask for less (a page, a filter)',
    admit(r: TenantReply & { ok: true }): TenantReply {
      if (r.bytes <= room) {
        room -= r.bytes;
        return r;
      }
      return {
        tenant: r.tenant,
        ok: false,
        code: 'ERR_FANOUT_ANSWER_FULL',
        message:
          `the answer already holds the ${MAX_INTEGRATION_ANSWER_BYTES} bytes of results a fan-out may, so ` +
          `tenant "${r.tenant}"'s ${r.bytes} were left out: select fewer tenants at a time`,
      };
    },
  };
}
