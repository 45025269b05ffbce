/**
 * Main's half of the write commands across tenants (common/write-commands.ts, docs/search.md#write-commands): the
 * `commands:write` check, which comes before anything else so a caller without it changes nothing anywhere; the
 * arguments, checked once here before any tenant is asked; then each chosen tenant at once, its outcome its own
 * (a tenant that is down is an error entry, the others still succeed); and one audit line on main naming the caller,
 * the command and the tenants. `users:sync`/`roles:sync` are relayed to the tenant as the caller (the tenant checks
 * the caller again); `list:share`/`playbook:publish` share a content item by name through content propagation.
 * Not here: the read-only commands (fanout.ts), the HTTP shape (http/routes-search.ts).
 */
import { Ajv, type ErrorObject } from 'ajv';
import { AccessDeniedError, BadParameterError, NotFoundError } from '#common/errors.js';
import { validationText } from '#common/http-errors.js';
import { repeatedName, WRITE_COMMAND_NAMES, WRITE_COMMANDS, type WriteCommandName } from '#common/write-commands.js';
import type { Principal } from '../access/api-keys.js';
import type { AuditLog } from '../access/audit.js';
import type { ContentLibrary } from '../content/library.js';
import type { ContentPropagation } from '../content/propagation.js';
import type { TenantService } from '../tenants/tenants.js';
import { callTenant, fanoutTimeout, selectTenants, type CommandRequest, type CommandResult } from './fanout.js';

/** The permission a write command needs besides the route's `commands:fanout`. */
export const WRITE_PERMISSION = 'commands:write';

/** A sync changes users and roles in many tenants: the read commands' 3 s would cut a busy tenant's batch short. */
export const DEFAULT_WRITE_TIMEOUT_MS = 15_000;

export interface WriteDeps {
  tenants: TenantService;
  audit: AuditLog;
  content: ContentLibrary;
  propagation: ContentPropagation;
}

const ajv = new Ajv({ allErrors: false, coerceTypes: false, strict: false });
const checkers = new Map(WRITE_COMMAND_NAMES.map((n) => [n, ajv.compile(WRITE_COMMANDS[n].args)]));

/** `args.users[2].roles` style, so the 400 names the field as a user would write it. */
function argsProblem(e: ErrorObject): { field: string; message: string } {
  const p = e.params as { missingProperty?: string; additionalProperty?: string };
  const at = `args${e.instancePath.replace(/\/(\d+)/g, '[$1]').replace(/\//g, '.')}`;
  if (p.missingProperty) return { field: `${at}.${p.missingProperty}`, message: 'is required' };
  if (p.additionalProperty) return { field: `${at}.${p.additionalProperty}`, message: 'is not a known field' };
  // An enum names what it allows (a role's permissions: the tenant permissions a customer role may hold).
  return { field: at, message: validationText(e) };
}

function checkArgs(name: WriteCommandName, args: Record<string, unknown>): void {
  const check = checkers.get(name)!;
  if (!check(args)) {
    const { field, message } = argsProblem(check.errors![0]);
    throw new BadParameterError('ERR_BAD_REQUEST', `${field} ${message}`, { field });
  }
  const list = (args.users ?? args.roles) as { name: string }[] | undefined;
  const again = list && repeatedName(list, `args.${args.users ? 'users' : 'roles'}`);
  if (again) throw new BadParameterError('ERR_BAD_REQUEST', `${again}: a name may be listed once`, { field: again });
}

/** Refuses a caller without `commands:write` (audited, as the route's own check is), before anything else. */
async function authoriseWrite(audit: AuditLog, principal: Principal, command: string, remote?: string): Promise<void> {
  if (principal.permissions.has(WRITE_PERMISSION)) return;
  await audit.record({
    actor: principal.user.id,
    action: 'auth.permission',
    target: `POST /api/v1/commands ${command}`,
    outcome: 'denied',
    remote,
    detail: { permission: WRITE_PERMISSION, keyId: principal.keyId },
  });
  throw new AccessDeniedError(
    'ERR_FORBIDDEN',
    `this key lacks the "${WRITE_PERMISSION}" permission, which write commands (${WRITE_COMMAND_NAMES.join(', ')}) need`,
  );
}

/** The content item a share command names, by id or by its name among items of the command's type. */
async function contentItem(lib: ContentLibrary, command: WriteCommandName, ref: string): Promise<string> {
  const type = command === 'list:share' ? 'list' : 'playbook';
  const byName = (await lib.list({ type })).filter((i) => i.name === ref);
  if (byName.length > 1)
    throw new BadParameterError(
      'ERR_BAD_REQUEST',
      `args.id: ${byName.length} ${type}s are named "${ref}"; give its id`,
      {
        field: 'args.id',
      },
    );
  const item = byName[0] ?? (await lib.registry.content.get(ref));
  if (!item)
    throw new NotFoundError(
      'ERR_CONTENT_NOT_FOUND',
      `args.id: no ${type} "${ref}"; list them with 'palisade content list'`,
      {
        field: 'args.id',
      },
    );
  if (item.type !== type)
    throw new BadParameterError(
      'ERR_COMMAND_ITEM_TYPE',
      `args.id: "${ref}" is a ${item.type}; ${command} takes a ${type}`,
      {
        field: 'args.id',
      },
    );
  return item.id;
}

/** Runs one write command on every selected tenant; the answer lists each tenant's outcome, by tenant name. */
export async function runWriteCommand(
  d: WriteDeps,
  principal: Principal,
  req: CommandRequest & { command: WriteCommandName },
  remote?: string,
): Promise<{ results: CommandResult[] }> {
  await authoriseWrite(d.audit, principal, req.command, remote);
  const args = req.args ?? {};
  checkArgs(req.command, args);
  if (!req.tenants && !req.labels)
    throw new BadParameterError('ERR_BAD_REQUEST', 'tenants: give tenants or labels to choose where the command runs', {
      field: 'tenants',
    });
  const timeoutMs = fanoutTimeout(req.timeoutMs ?? DEFAULT_WRITE_TIMEOUT_MS);
  const item = WRITE_COMMANDS[req.command].path
    ? undefined
    : await contentItem(d.content, req.command, String(args.id));
  const targets = await selectTenants(d.tenants, principal, req, { log: d.audit, via: 'commands.write' });
  let results: CommandResult[];
  if (item === undefined) {
    const path = WRITE_COMMANDS[req.command].path!;
    results = await Promise.all(
      targets.map(async (t): Promise<CommandResult> => {
        const r = await callTenant(d.tenants, principal, t.name, { method: 'POST', path, body: args, timeoutMs });
        return r.ok
          ? { tenant: r.tenant, ok: true, result: r.value }
          : { tenant: r.tenant, ok: false, error: { code: r.code, message: r.message } };
      }),
    );
  } else {
    const names = targets.map((t) => t.name);
    const shared =
      names.length === 0
        ? { version: 0, outcomes: [] }
        : await d.propagation.shareTo(item, names, { id: principal.user.id, remote });
    results = [...shared.outcomes]
      .sort((a, b) => (a.tenant < b.tenant ? -1 : 1))
      .map((o): CommandResult =>
        o.failed === null
          ? { tenant: o.tenant, ok: true, result: { item, state: 'shared', version: shared.version } }
          : { tenant: o.tenant, ok: false, error: { code: 'ERR_SHARE_FAILED', message: o.failed } },
      );
  }
  const failed = results.filter((r) => !r.ok).length;
  // Who changed what where, and how it went per tenant; never the tenants' answers beyond their codes.
  await d.audit.record({
    actor: principal.user.id,
    action: 'commands.write',
    target: req.command,
    outcome: failed === 0 ? 'ok' : 'failed',
    remote,
    detail: {
      tenants: targets.map((t) => t.name),
      ...(item ? { item } : {}),
      ok: results.length - failed,
      failed: results.filter((r) => !r.ok).map((r) => ({ tenant: r.tenant, code: !r.ok ? r.error.code : '' })),
    },
  });
  return { results };
}
