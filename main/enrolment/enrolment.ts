/**
 * Enrolment: one-time keys are issued by an admin (inside an installer bundle) and exchanged once by an
 * agent for a client certificate. Checks and the key's consumption happen under one lock and in one
 * atomic batch with the agent's registration, so two agents racing with one key cannot both win.
 */
import { randomBytes } from 'node:crypto';
import { AccessDeniedError, BadParameterError, ConflictError } from '#common/errors.js';
import { newSecret, parseSecret, secretMatches } from '#common/secrets.js';
import { signAgentCsr, type KeyAndCert } from '#common/pki.js';
import { checkName } from '#common/names.js';
import type { AgentRecord, AgentRing, EnrolKeyRecord, Registry } from '../registry.js';
import type { AuditLog } from '../access/audit.js';

export const ENROL_KEY_PREFIX = 'pek';

export interface NewEnrolKey {
  token: string;
  record: EnrolKeyRecord;
}

/** An enrolment attempt whose fields enrol-frame.ts has checked (shape only: this module checks the key). */
export interface EnrolRequest {
  token: string;
  csrPem: string;
  kind: 'host' | 'engine';
  name: string;
  remote?: string;
  boxPublicKey?: Uint8Array;
}

/** A promise-chain mutex: enrolments are rare, so serialising them all is simplest and obviously safe. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

export class Enrolment {
  private readonly lock = new Mutex();

  constructor(
    private readonly registry: Registry,
    private readonly ca: KeyAndCert,
    private readonly audit: AuditLog,
  ) {}

  async createKey(opts: {
    kind: 'host' | 'engine';
    name: string;
    ttlMs: number;
    createdBy: string;
    tenant?: string;
    tenantKey?: string;
    group?: string;
    ring?: AgentRing;
  }): Promise<NewEnrolKey> {
    checkName(opts.name);
    const existing = await this.registry.agentByName(opts.kind, opts.name);
    if (existing && !existing.revokedAt) {
      throw new ConflictError(
        'ERR_AGENT_EXISTS',
        `a ${opts.kind} named "${opts.name}" is already enrolled; remove it first or pick another name`,
        { field: 'name' },
      );
    }
    const s = newSecret(ENROL_KEY_PREFIX);
    const now = Date.now();
    const record: EnrolKeyRecord = {
      id: s.id,
      hash: s.hash,
      kind: opts.kind,
      name: opts.name,
      tenant: opts.tenant,
      tenantKey: opts.tenantKey,
      group: opts.group,
      ring: opts.ring,
      createdAt: new Date(now).toISOString(),
      createdBy: opts.createdBy,
      expiresAt: new Date(now + opts.ttlMs).toISOString(),
    };
    await this.registry.enrolKeys.put(s.id, record);
    await this.audit.record({
      actor: opts.createdBy,
      action: 'enrol-key.create',
      target: `${opts.kind}:${opts.name}`,
      outcome: 'ok',
      detail: { keyId: s.id, expiresAt: record.expiresAt },
    });
    return { token: s.token, record };
  }

  /** Runs `fn` while no enrolment is in progress: a key revoked or voided inside cannot be consumed meanwhile. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.run(fn);
  }

  enrol(req: EnrolRequest): Promise<{ agent: AgentRecord; certPem: string }> {
    return this.lock.run(async () => {
      try {
        return await this.enrolLocked(req);
      } catch (e) {
        const parsed = parseSecret(ENROL_KEY_PREFIX, req.token);
        await this.audit.record({
          actor: `enrol-key:${parsed?.id ?? 'malformed'}`,
          action: 'agent.enrol',
          target: `${req.kind}:${req.name}`,
          outcome: 'denied',
          remote: req.remote,
          detail: { code: (e as { code?: string }).code },
        });
        throw e;
      }
    });
  }

  private async enrolLocked(req: EnrolRequest): Promise<{ agent: AgentRecord; certPem: string }> {
    const parsed = parseSecret(ENROL_KEY_PREFIX, req.token);
    const rec = parsed ? await this.registry.enrolKeys.get(parsed.id) : undefined;
    if (!parsed || !rec || !secretMatches(parsed.secret, rec.hash)) {
      throw new AccessDeniedError(
        'ERR_ENROL_KEY_UNKNOWN',
        'the enrolment key is not known to main; ask the admin for a new installer bundle',
      );
    }
    if (rec.usedAt)
      throw new ConflictError(
        'ERR_ENROL_KEY_USED',
        `the enrolment key was already used at ${rec.usedAt}; ask the admin for a new installer bundle`,
      );
    if (rec.revokedAt)
      throw new AccessDeniedError(
        'ERR_ENROL_KEY_REVOKED',
        `the enrolment key was revoked at ${rec.revokedAt}; ask the admin for a new installer bundle`,
      );
    if (Date.parse(rec.expiresAt) <= Date.now())
      throw new AccessDeniedError(
        'ERR_ENROL_KEY_EXPIRED',
        `the enrolment key expired at ${rec.expiresAt}; ask the admin for a new installer bundle`,
      );
    if (rec.kind !== req.kind || rec.name !== req.name) {
      throw new BadParameterError(
        'ERR_ENROL_KEY_MISMATCH',
        `the enrolment key is for ${rec.kind} "${rec.name}", not ${req.kind} "${req.name}"`,
      );
    }
    const existing = await this.registry.agentByName(rec.kind, rec.name);
    if (existing && !existing.revokedAt)
      throw new ConflictError('ERR_AGENT_EXISTS', `a ${rec.kind} named "${rec.name}" is already enrolled`);
    // An engine joins the tenant the key was made for, by identity: not a later tenant that took its name.
    const tenant = rec.kind === 'engine' && rec.tenant ? await this.registry.tenants.get(rec.tenant) : undefined;
    if (rec.kind === 'engine' && (!tenant || !rec.tenantKey || tenant.publicKey !== rec.tenantKey)) {
      throw new AccessDeniedError(
        'ERR_ENROL_TENANT_GONE',
        `the tenant "${rec.tenant ?? ''}" this key was made for no longer exists (offboarded, or replaced by another of that name); ask the admin for a new installer bundle`,
      );
    }
    const id = `${rec.kind === 'host' ? 'hst' : 'eng'}_${randomBytes(8).toString('hex')}`;
    const issued = signAgentCsr(this.ca, req.csrPem, id, { serverAuth: rec.kind === 'engine' });
    const now = new Date().toISOString();
    const agent: AgentRecord = {
      id,
      name: rec.name,
      kind: rec.kind,
      tenant: rec.tenant,
      tenantKey: rec.tenantKey,
      group: rec.group,
      ring: rec.ring,
      certSerial: issued.serial,
      fingerprint: issued.fingerprint,
      enrolledAt: now,
      enrolledFrom: req.remote,
      ...(rec.kind === 'engine' && req.boxPublicKey
        ? { boxPublicKey: Buffer.from(req.boxPublicKey).toString('base64') }
        : {}),
    };
    // One atomic batch: the key is consumed exactly when the agent is registered, and on disk (synced)
    // before the agent hears so: a crash right after the answer must not give the key a second use.
    const ops = [
      {
        type: 'put' as const,
        sublevel: this.registry.enrolKeys,
        key: rec.id,
        value: { ...rec, usedAt: now, usedBy: id },
      },
      { type: 'put' as const, sublevel: this.registry.agents, key: id, value: agent },
      { type: 'put' as const, sublevel: this.registry.agentNames, key: `${rec.kind}:${rec.name}`, value: id },
      { type: 'put' as const, sublevel: this.registry.certSerials, key: issued.serial, value: id },
    ];
    await this.registry.db.batch(ops as never, { sync: true });
    await this.audit.record({
      actor: `enrol-key:${rec.id}`,
      action: 'agent.enrol',
      target: `${rec.kind}:${rec.name}`,
      outcome: 'ok',
      remote: req.remote,
      detail: { agentId: id, fingerprint: issued.fingerprint },
    });
    return { agent, certPem: issued.certPem };
  }
}
