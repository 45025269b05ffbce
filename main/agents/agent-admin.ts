/**
 * Admin operations on enrolled agents: views with live status, revocation. Revoking frees the name,
 * voids any unused enrolment key made for it, drops the live connection and fails the agent's queued
 * commands; the certificate serial stays known so the next connection with it is refused (and audited).
 * An engine's revocation also reaches its tenant's sessions (engine-revocations.ts). Offboarding a tenant
 * revokes its engines and voids its unused engine keys the same way.
 */
import { NotFoundError, WS_CLOSE } from '#common/errors.js';
import type { AgentRecord } from '../registry.js';
import type { MainServices } from '../services.js';
import type { RelayStats } from '../tunnels/relay-limits.js';
import { voidKeyOps } from '../enrolment/enrol-keys.js';

export type AgentKindName = 'host' | 'engine';

export interface AgentView {
  name: string;
  id: string;
  kind: AgentKindName;
  status: 'online' | 'offline';
  lastSeen: string | null;
  connectedAt: string | null;
  enrolledAt: string;
  fingerprint: string;
  tenant: string | null;
  group: string | null;
  pendingCommands: number;
  sysinfo: Record<string, unknown> | null;
  /** Tunnel records main dropped from this agent since main started, and flood disconnects (relay-limits.ts). */
  relay: RelayStats;
  /** The release it runs (its last Hello), its upgrade ring, and how its last upgrade ended (upgrades.ts). */
  version: string | null;
  ring: 'canary' | 'default';
  lastUpgrade: { version: string; ok: boolean; reason: string | null; at: string } | null;
}

export function agentView(s: MainServices, a: AgentRecord): AgentView {
  const live = s.gateway.status(a.id);
  const u = s.upgrades.infoOf(a);
  return {
    name: a.name,
    id: a.id,
    kind: a.kind,
    status: live.online ? 'online' : 'offline',
    lastSeen: live.lastSeen ?? a.lastSeen ?? null,
    connectedAt: live.connectedAt ?? null,
    enrolledAt: a.enrolledAt,
    fingerprint: a.fingerprint,
    tenant: a.tenant ?? null,
    group: a.group ?? null,
    pendingCommands: s.outbox.pending(a.id),
    sysinfo: live.sysinfo ?? a.sysinfo ?? null,
    relay: s.relay.stats(a.id),
    version: u.version ?? null,
    ring: u.ring ?? 'default',
    lastUpgrade: u.lastUpgrade
      ? {
          version: u.lastUpgrade.version,
          ok: u.lastUpgrade.ok,
          reason: u.lastUpgrade.reason ?? null,
          at: u.lastUpgrade.at,
        }
      : null,
  };
}

export async function findAgent(s: MainServices, kind: AgentKindName, name: string): Promise<AgentRecord> {
  const a = await s.registry.agentByName(kind, name);
  if (!a || a.revokedAt)
    throw new NotFoundError('ERR_AGENT_NOT_FOUND', `no ${kind} named "${name}"; list them with 'palisade ${kind}s'`, {
      field: 'name',
    });
  return a;
}

export async function revokeAgent(
  s: MainServices,
  kind: AgentKindName,
  name: string,
  actor: string,
  remote?: string,
): Promise<AgentView> {
  // Under the enrolment lock: an unused key for the name cannot be consumed while it is being voided.
  const { revoked, voided } = await s.enrolment.exclusive(async () => {
    const a = await findAgent(s, kind, name);
    const keys = await voidKeyOps(s.registry, (r) => r.kind === kind && r.name === name, actor);
    const r: AgentRecord = { ...a, revokedAt: new Date().toISOString() };
    await writeRevocations(s, [r], keys.ops);
    return { revoked: r, voided: keys.ids };
  });
  const failed = await cutOff(s, [revoked]);
  await s.audit.record({
    actor,
    action: 'agent.revoke',
    target: `${kind}:${name}`,
    outcome: 'ok',
    remote,
    detail: { agentId: revoked.id, serial: revoked.certSerial, failedCommands: failed, voidedKeys: voided },
  });
  return { ...agentView(s, revoked), status: 'offline' };
}

/**
 * An agent's own deregistration (the agent.deregister event, from uninstall.sh): revoked as an admin's remove
 * would, with the agent as the actor. Main authenticated it by its certificate (the session's agent).
 */
export async function deregisterAgent(s: MainServices, agentId: string, remote?: string): Promise<void> {
  const a = await s.registry.agents.get(agentId);
  if (!a || a.revokedAt) return;
  await revokeAgent(s, a.kind, a.name, `agent:${agentId}`, remote);
}

/**
 * Offboarding's part for engines: revokes every engine enrolled for `tenant` and voids its unused engine
 * enrolment keys, so none of them reaches a later tenant of the same name. Says what it did, for the answer.
 */
export async function revokeTenantEngines(
  s: MainServices,
  tenant: string,
  actor: string,
  remote?: string,
): Promise<string[]> {
  const { engines, voided } = await s.enrolment.exclusive(async () => {
    const at = new Date().toISOString();
    const live = (await s.registry.listAgents('engine'))
      .filter((a) => a.tenant === tenant && !a.revokedAt)
      .map((a): AgentRecord => ({ ...a, revokedAt: at }));
    const keys = await voidKeyOps(s.registry, (r) => r.kind === 'engine' && r.tenant === tenant, actor);
    await writeRevocations(s, live, keys.ops);
    return { engines: live, voided: keys.ids };
  });
  await cutOff(s, engines);
  for (const e of engines) {
    await s.audit.record({
      actor,
      action: 'agent.revoke',
      target: `engine:${e.name}`,
      outcome: 'ok',
      remote,
      detail: { agentId: e.id, serial: e.certSerial, reason: `tenant ${tenant} removed` },
    });
  }
  if (voided.length)
    await s.audit.record({
      actor,
      action: 'enrol-key.revoke',
      target: `tenant:${tenant}`,
      outcome: 'ok',
      remote,
      detail: { keyIds: voided, reason: `tenant ${tenant} removed` },
    });
  return [
    ...engines.map((e) => `engine ${e.name} (certificate revoked, sessions ended)`),
    ...voided.map((id) => `unused engine enrolment key ${id} (voided)`),
  ];
}

/** The revoked records (their names freed) and voided keys in one batch, on disk before anyone is told. */
async function writeRevocations(s: MainServices, revoked: AgentRecord[], keyOps: unknown[]): Promise<void> {
  const ops = [
    ...revoked.flatMap((a) => [
      { type: 'put', sublevel: s.registry.agents, key: a.id, value: a },
      { type: 'del', sublevel: s.registry.agentNames, key: `${a.kind}:${a.name}` },
    ]),
    ...keyOps,
  ];
  if (ops.length) await s.registry.db.batch(ops as never, { sync: true });
}

/**
 * Ends what revoked agents still hold: their connections, queued commands and, for engines, tenant sessions. Returns
 * the failed command count.
 */
async function cutOff(s: MainServices, revoked: AgentRecord[]): Promise<number> {
  s.revocations.add(revoked);
  let failed = 0;
  for (const a of revoked) {
    s.gateway.disconnect(a.id, WS_CLOSE.revoked, 'ERR_AGENT_REVOKED', 'this agent was removed by an admin');
    failed += await s.outbox.failAll(a.id, {
      code: 'ERR_AGENT_REVOKED',
      message: 'the agent was removed before it ran this command',
    });
  }
  return failed;
}
