/**
 * Admin operations on enrolled agents: views with live status, revocation. Revoking frees the name,
 * drops the live connection and fails the agent's queued commands; the certificate serial stays known
 * so the next connection with it is refused (and audited).
 */
import { NotFoundError, WS_CLOSE } from '#common/errors.js';
import type { AgentRecord } from './registry.js';
import type { MainServices } from './services.js';
import type { RelayStats } from './relay-limits.js';

export type AgentKindName = 'host' | 'engine';

export interface AgentView {
  name: string; id: string; kind: AgentKindName; status: 'online' | 'offline';
  lastSeen: string | null; connectedAt: string | null; enrolledAt: string; fingerprint: string;
  tenant: string | null; group: string | null; pendingCommands: number; sysinfo: Record<string, unknown> | null;
  /** Tunnel records main dropped from this agent since main started, and flood disconnects (relay-limits.ts). */
  relay: RelayStats;
}

export function agentView(s: MainServices, a: AgentRecord): AgentView {
  const live = s.gateway.status(a.id);
  return {
    name: a.name, id: a.id, kind: a.kind, status: live.online ? 'online' : 'offline',
    lastSeen: live.lastSeen ?? a.lastSeen ?? null, connectedAt: live.connectedAt ?? null,
    enrolledAt: a.enrolledAt, fingerprint: a.fingerprint, tenant: a.tenant ?? null, group: a.group ?? null,
    pendingCommands: s.outbox.pending(a.id), sysinfo: live.sysinfo ?? a.sysinfo ?? null, relay: s.relay.stats(a.id),
  };
}

export async function findAgent(s: MainServices, kind: AgentKindName, name: string): Promise<AgentRecord> {
  const a = await s.registry.agentByName(kind, name);
  if (!a || a.revokedAt) throw new NotFoundError('ERR_AGENT_NOT_FOUND', `no ${kind} named "${name}"; list them with 'palisade ${kind}s'`, { field: 'name' });
  return a;
}

export async function revokeAgent(s: MainServices, kind: AgentKindName, name: string, actor: string, remote?: string): Promise<AgentView> {
  const a = await findAgent(s, kind, name);
  const revoked: AgentRecord = { ...a, revokedAt: new Date().toISOString() };
  await s.registry.db.batch([
    { type: 'put', sublevel: s.registry.agents, key: a.id, value: revoked },
    { type: 'del', sublevel: s.registry.agentNames, key: `${kind}:${name}` },
  ] as never);
  s.gateway.disconnect(a.id, WS_CLOSE.revoked, 'ERR_AGENT_REVOKED', 'this agent was removed by an admin');
  const failed = await s.outbox.failAll(a.id, { code: 'ERR_AGENT_REVOKED', message: 'the agent was removed before it ran this command' });
  await s.audit.record({ actor, action: 'agent.revoke', target: `${kind}:${name}`, outcome: 'ok', remote, detail: { agentId: a.id, serial: a.certSerial, failedCommands: failed } });
  return { ...agentView(s, revoked), status: 'offline' };
}
