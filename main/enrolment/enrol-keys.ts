/**
 * Enrolment keys as an admin sees them: listed with their status, and revoked before anyone uses them.
 * A key is voided the same way when the agent name it was made for is removed (`hosts|engines remove`)
 * or its tenant is offboarded, so a bundle still lying around enrols nothing. Making and consuming keys
 * is enrolment.ts; both sides change keys under its lock, so a key revoked here is never consumed halfway.
 */
import { ConflictError, NotFoundError } from '#common/errors.js';
import type { AuditLog } from '../access/audit.js';
import type { Enrolment } from './enrolment.js';
import type { EnrolKeyRecord, Registry } from '../registry.js';

export const ENROL_KEY_STATUSES = ['unused', 'used', 'expired', 'revoked'] as const;
export type EnrolKeyStatus = (typeof ENROL_KEY_STATUSES)[number];

export interface EnrolKeyView {
  id: string;
  kind: 'host' | 'engine';
  name: string;
  tenant: string | null;
  group: string | null;
  createdAt: string;
  createdBy: string;
  expiresAt: string;
  status: EnrolKeyStatus;
  usedAt: string | null;
  usedBy: string | null;
  revokedAt: string | null;
  revokedBy: string | null;
}

/** Used and revoked are final; an unused key past its expiry is expired. */
export function keyStatus(r: EnrolKeyRecord, now = Date.now()): EnrolKeyStatus {
  if (r.usedAt) return 'used';
  if (r.revokedAt) return 'revoked';
  return Date.parse(r.expiresAt) <= now ? 'expired' : 'unused';
}

export function keyView(r: EnrolKeyRecord, now = Date.now()): EnrolKeyView {
  return {
    id: r.id,
    kind: r.kind,
    name: r.name,
    tenant: r.tenant ?? null,
    group: r.group ?? null,
    createdAt: r.createdAt,
    createdBy: r.createdBy,
    expiresAt: r.expiresAt,
    status: keyStatus(r, now),
    usedAt: r.usedAt ?? null,
    usedBy: r.usedBy ?? null,
    revokedAt: r.revokedAt ?? null,
    revokedBy: r.revokedBy ?? null,
  };
}

/** Every key (never its secret, which main does not hold), newest first; only those of `status` if given. */
export async function listKeys(registry: Registry, status?: EnrolKeyStatus): Promise<EnrolKeyView[]> {
  const now = Date.now();
  const all = (await registry.enrolKeys.values().all()).map((r) => keyView(r, now));
  return all.filter((v) => !status || v.status === status).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/**
 * The batch operations that void every unused key `which` selects, for the caller to write in the same
 * batch as what voids them (an agent's or a tenant's removal). Run it under Enrolment.exclusive.
 */
export async function voidKeyOps(
  registry: Registry,
  which: (r: EnrolKeyRecord) => boolean,
  by: string,
): Promise<{ ops: unknown[]; ids: string[] }> {
  const at = new Date().toISOString();
  const voided = (await registry.enrolKeys.values().all()).filter((r) => keyStatus(r) === 'unused' && which(r));
  return {
    ops: voided.map((r) => ({
      type: 'put',
      sublevel: registry.enrolKeys,
      key: r.id,
      value: { ...r, revokedAt: at, revokedBy: by },
    })),
    ids: voided.map((r) => r.id),
  };
}

/**
 * Revokes a key before use: it enrols nothing from then on (ERR_ENROL_KEY_REVOKED). Synced to disk before
 * the answer. A used key is refused (remove its agent instead); revoking a revoked key changes nothing, audits
 * nothing, and answers the key as it is with `alreadyRevoked` (so the CLI does not claim a revoke).
 */
export async function revokeKey(
  registry: Registry,
  enrolment: Enrolment,
  audit: AuditLog,
  id: string,
  actor: string,
  remote?: string,
): Promise<EnrolKeyView & { alreadyRevoked: boolean }> {
  const { rec, changed } = await enrolment.exclusive(async () => {
    const r = await registry.enrolKeys.get(id);
    if (!r)
      throw new NotFoundError(
        'ERR_ENROL_KEY_NOT_FOUND',
        `no enrolment key "${id}"; list them with 'palisade installer list'`,
        { field: 'id' },
      );
    if (r.usedAt)
      throw new ConflictError(
        'ERR_ENROL_KEY_USED',
        `enrolment key ${id} was used at ${r.usedAt} (agent ${r.usedBy ?? '?'}); remove the ${r.kind} instead ('palisade ${r.kind}s remove ${r.name}')`,
        { field: 'id' },
      );
    if (r.revokedAt) return { rec: r, changed: false };
    const revoked: EnrolKeyRecord = { ...r, revokedAt: new Date().toISOString(), revokedBy: actor };
    await registry.db.batch([{ type: 'put', sublevel: registry.enrolKeys, key: id, value: revoked }] as never, {
      sync: true,
    });
    return { rec: revoked, changed: true };
  });
  if (changed)
    await audit.record({
      actor,
      action: 'enrol-key.revoke',
      target: `${rec.kind}:${rec.name}`,
      outcome: 'ok',
      remote,
      detail: { keyId: id },
    });
  return { ...keyView(rec), alreadyRevoked: !changed };
}
