/**
 * The tenant's gate: every request must carry main's signature for this tenant, fresh and unused, over
 * this exact method, path and body. The signed user's roles then decide what the route allows.
 * A local process that reaches 127.0.0.1:1850x directly has no signature and gets nothing, and a flood of
 * such requests costs a bounded number of audit rows and log lines, then a summary of what was refused.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { KeyObject } from 'node:crypto';
import {
  AUTH_HEADER,
  SIGNATURE_HEADER,
  checkBody,
  isSignatureRefusal,
  verifyClaim,
  type CallerIdentity,
  type RequestClaim,
} from '#common/signed-request.js';
import { AccessDeniedError, UnauthenticatedError } from '#common/errors.js';
import type { TenantPermission } from '#common/roles.js';
import type { AccessStore } from './access-store.js';
import type { RoleStore } from './role-store.js';
import type { AuditStore, TenantAuditEntry } from './audit-store.js';
import type { Logger } from '#common/logging.js';
import type { PersistentReplayCache } from './replay-store.js';
import type { BatchOp } from './incident-timeline.js';
import { AddressRateLimit } from '#common/address-rate-limit.js';
import { RefusalSummary } from '#common/refusal-summary.js';

/**
 * Permission names are common/roles.ts's; the role tables (built-in, shared by main, tenant-only) are role-store.ts's.
 */
export type { TenantPermission };

declare module 'fastify' {
  interface FastifyContextConfig {
    tenantPermission?: TenantPermission;
    /**
     * The route's change is one batch, which writes `req.replayOps` (the request's id, for the replay cache) with
     * it, and may write `req.auditOps` (its audit line); the guard then stores nothing before the route runs
     * (replay-store.ts rememberOps), nor after it for a line written so.
     */
    replayInBatch?: boolean;
  }
  interface FastifyRequest {
    caller?: CallerIdentity;
    /** For a route with `replayInBatch`: the ops storing this request's id, for the batch of its change. */
    replayOps?: BatchOp[];
    /**
     * For a route with `replayInBatch`: the ops of this request's audit line as if answered `status` (its `auditAs`
     * as set when called), for that batch. A route that wrote them sets `auditedInBatch` to that status; the guard then
     * writes no line of its own if the answer has it (a different one, e.g. a failure after, gets its own line).
     */
    auditOps?: (status: number) => BatchOp[];
    auditedInBatch?: number;
    /** Main's claim, verified from the headers (onRequest); its body hash is checked once the body is read. */
    claim?: RequestClaim;
    /** What the caller may do here (its roles resolved), for routes that must not let it grant more. */
    permissions?: ReadonlySet<TenantPermission>;
    /**
     * Set by a route to name its change in the audit line (e.g. `role.create` of `tier1`) instead of method and path.
     * A failed request's line keeps it too, so a route sets it once what it says is true (an integration run
     * sets it in both outcomes, with the outcome in its detail).
     */
    auditAs?: { action: string; target: string; detail?: Record<string, unknown> };
  }
}

/**
 * Requests without a valid signature of main (unsigned, forged, replayed) each get an audit row and a log
 * line up to a burst of 20, then one a minute; the rest are counted and written as one summary row and
 * line per 10 s. A sustained flood thus writes ~7 rows a minute instead of one per request, whose store
 * growth (not the refusal, which is cheap) is what a local process could otherwise use to fill the disk.
 */
const UNSIGNED_AUDIT = { burst: 20, refillMs: 60_000, maxAddresses: 256 } as const;
const UNSIGNED_SUMMARY_MS = 10_000;

type GuardedRequest = FastifyRequest & { claimed?: CallerIdentity; errorCode?: string; unsignedSuppressed?: boolean };

export function installSignatureGuard(
  app: FastifyInstance,
  o: {
    tenant: string;
    mainKey: KeyObject;
    log: Logger;
    roles: RoleStore;
    replay: PersistentReplayCache;
    access?: AccessStore;
    audit?: AuditStore;
  },
): void {
  const unsignedAudit = new AddressRateLimit(UNSIGNED_AUDIT);
  const unsignedSummary = new RefusalSummary(UNSIGNED_SUMMARY_MS, (counts) => {
    o.log.warn({ counts }, 'refused unsigned or badly signed requests (not audited one by one)');
    void o.audit
      ?.record({ actor: 'unsigned', action: 'auth.unsigned', outcome: 'denied', detail: { suppressed: counts } })
      .catch((e: unknown) => o.log.warn({ err: String(e) }, 'audit write failed'));
  });
  app.addHook('onClose', async () => {
    unsignedSummary.flush();
  });
  // Every route declares the permission it needs: forgetting is a start-up failure, not an open route.
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/api/') && route.config?.tenantPermission === undefined)
      throw new Error(`tenant route ${String(route.method)} ${route.url} declares no permission`);
  });
  // The claim first, from the headers: an unsigned or badly signed request is refused before its body
  // is read or parsed (up to the body limit, for anyone who can reach the loopback port).
  app.addHook('onRequest', async (req) => {
    req.claim = verifyClaim(
      o.mainKey,
      { auth: header(req, AUTH_HEADER), signature: header(req, SIGNATURE_HEADER) },
      { tenant: o.tenant, method: req.method, path: req.url },
    );
  });
  app.addHook('preValidation', async (req) => {
    const claim = req.claim!;
    checkBody(claim, req.rawBody);
    if (req.routeOptions.config?.replayInBatch) {
      req.replayOps = o.replay.rememberOps(claim);
      const audit = o.audit;
      if (audit) req.auditOps = (status) => audit.entryOps(auditLine(req, status)) as BatchOp[];
    } else await o.replay.checkAndRemember(claim, req.method !== 'GET' && req.method !== 'HEAD');
    (req as GuardedRequest).claimed = claim.user; // for the audit line if resolving fails
    req.caller = await resolveCaller(claim.user, o);
    const need = req.routeOptions.config?.tenantPermission;
    const caller = req.caller;
    req.permissions = o.roles.permissionsOf(caller);
    if (need && !req.permissions.has(need)) {
      throw new AccessDeniedError(
        'ERR_FORBIDDEN',
        `user ${caller.name || caller.id} lacks "${need}" in tenant ${o.tenant}`,
      );
    }
  });
  app.addHook('onError', async (req, _reply, err) => {
    const code = (err as { code?: string }).code;
    (req as GuardedRequest).errorCode = code;
    if (!isSignatureRefusal(code)) return;
    if (unsignedAudit.take(req.ip))
      o.log.warn({ code, url: req.url.slice(0, 200), remote: req.ip }, 'refused unsigned or badly signed request');
    else {
      (req as GuardedRequest).unsignedSuppressed = true;
      unsignedSummary.count(code);
    }
  });
  // Audit every change and every refusal (reads that succeed are not changes). Never bodies: they may hold secrets.
  app.addHook('onResponse', async (req, reply) => {
    const denied = reply.statusCode === 401 || reply.statusCode === 403;
    if (
      !o.audit ||
      (req.method === 'GET' && !denied) ||
      reply.statusCode === 404 ||
      (req as GuardedRequest).unsignedSuppressed ||
      req.auditedInBatch === reply.statusCode
    )
      return;
    await o.audit
      .record(auditLine(req, reply.statusCode))
      .catch((e: unknown) => o.log.warn({ err: String(e) }, 'audit write failed'));
  });
}

/** The audit line of request `req` answered `status`: who (as resolved, else as claimed), what, the outcome. */
function auditLine(req: FastifyRequest, status: number): Omit<TenantAuditEntry, 'at'> {
  const claimed = (req as GuardedRequest).claimed;
  const c =
    req.caller ?? (claimed ? { ...claimed, name: claimed.key ? `key:${claimed.key.id}` : claimed.name } : undefined);
  const named = req.auditAs;
  return {
    actor: c ? auditActor(c) : 'unsigned',
    action: named?.action ?? `${req.method} ${req.routeOptions.url ?? req.url.slice(0, 200)}`,
    target: named?.target ?? req.url.slice(0, 200),
    ...(named?.detail ? { detail: named.detail } : {}),
    outcome: status === 401 || status === 403 ? 'denied' : status < 400 ? 'ok' : 'failed',
    from: c?.from ?? req.ip,
    status,
    code: (req as GuardedRequest).errorCode,
  };
}

/**
 * Ids of the tenant's own actors (a playbook run acting by itself): never a claim main signs, whose callers are main's
 * users and keys, so no request can take one on.
 */
export const TENANT_ACTOR_PREFIX = 'tenant:';

/** How an audit line names a caller: a key's user or the tenant's own actor by name, anyone else as through main. */
export function auditActor(c: CallerIdentity): string {
  return `${c.name || c.id}${c.key || c.id.startsWith(TENANT_ACTOR_PREFIX) ? '' : ' (via main)'}`;
}

/**
 * Main vouches for a main user (its roles travel in the claim); a customer user created on main must
 * belong to this tenant; a key created here is checked against our own store and brings its user's roles.
 */
async function resolveCaller(
  user: CallerIdentity,
  o: { tenant: string; access?: AccessStore; audit?: AuditStore; log: Logger },
): Promise<CallerIdentity> {
  if (user.key) {
    if (!o.access) throw new UnauthenticatedError('ERR_AUTH_INVALID_KEY', 'the API key is invalid or revoked');
    // Key use is audited at most once a minute per key (reads are not audited one by one).
    const keyUse = (keyId: string, u: { name: string }) =>
      void o.audit
        ?.record({ actor: u.name, action: 'auth.key', target: keyId, outcome: 'ok', from: user.from })
        .catch((e: unknown) => o.log.warn({ err: String(e) }, 'audit write failed'));
    const local = await o.access.authenticate(user.key, keyUse);
    return {
      id: local.id,
      name: local.name,
      roles: local.roles,
      ...(local.profile !== undefined ? { profile: local.profile } : {}),
      tenant: o.tenant,
      from: user.from,
      key: { id: user.key.id, sha256: '' },
    };
  }
  if (user.tenant !== undefined && user.tenant !== o.tenant)
    throw new AccessDeniedError('ERR_FORBIDDEN', `user ${user.name} belongs to another tenant`);
  return user;
}

function header(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}
