/**
 * Agent upgrades as main runs them: choose agents (a ring, or names), put one durable `agent.upgrade` in
 * each one's outbox with main's signature over the release (releases.ts), and tell how each is going from
 * what the agents themselves report in their Hello: the version they run, and how their last upgrade
 * ended (agent/upgrade/launcher.ts). Main never decides an agent's fate: the agent's launcher commits or
 * rolls back on its own, so an upgrade that bricks an agent's connection still undoes itself.
 *
 * An agent's state for its latest upgrade: pending (queued, or swapped and restarting), upgraded (its Hello
 * names the version), rolled-back (its Hello reports this attempt failed, with why), failed (the command
 * failed before any swap: a refused signature, a fetch error, an agent run without the launcher).
 */
import { randomBytes } from 'node:crypto';
import type { Envelope } from '#common/codec.js';
import { BadParameterError } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import { isReleaseVersion, isUpgradeAttempt, type UpgradeArgs } from '#common/agent-release.js';
import type { AgentRecord, AgentRing, AgentUpgradeInfo, CommandRecord, Registry, UpgradeRecord } from '../registry.js';
import type { CommandOutbox } from './outbox.js';
import type { AuditLog } from '../access/audit.js';
import type { ReleaseStore } from './releases.js';

export type UpgradeState = 'pending' | 'upgraded' | 'rolled-back' | 'failed';

export interface UpgradeStatus {
  agent: string;
  kind: AgentRecord['kind'];
  ring: AgentRing;
  from: string | null;
  to: string;
  version: string | null;
  state: UpgradeState;
  reason: string | null;
  commandId: number;
  startedAt: string;
}

export interface UpgradeRequest {
  version: string;
  /** canary: only canary agents; all: every agent. Ignored when `names` picks agents. */
  ring?: 'canary' | 'all';
  /** Agent names (hosts or engines). */
  names?: string[];
  deadlineMs: number;
  actor: string;
  remote?: string;
}

type Hello = NonNullable<Envelope['hello']>;

export class AgentUpgrades {
  /** Every agent's upgrade info, read once at start: agent views read it on each listing. */
  private readonly info = new Map<string, AgentUpgradeInfo>();

  constructor(
    private readonly registry: Registry,
    private readonly outbox: CommandOutbox,
    private readonly releases: ReleaseStore,
    private readonly audit: AuditLog,
    private readonly log: Logger,
  ) {}

  async init(): Promise<void> {
    for await (const [id, v] of this.registry.agentUpgradeInfo.iterator()) this.info.set(id, v);
  }

  /** What an agent view shows: the version, ring (an admin's, else its bundle's) and last upgrade of one agent. */
  infoOf(a: AgentRecord): AgentUpgradeInfo {
    const info = this.info.get(a.id) ?? {};
    return { ...info, ring: info.ring ?? a.ring };
  }

  /** Changes one agent's info in memory at once (so two changes never race), then on disk. */
  private async update(agentId: string, patch: AgentUpgradeInfo): Promise<void> {
    const next = { ...this.info.get(agentId), ...patch };
    this.info.set(agentId, next);
    await this.registry.agentUpgradeInfo.put(agentId, next);
  }

  /** Queues the upgrade for each chosen agent; an agent that already runs the version gets it too (a no-op). */
  async start(r: UpgradeRequest): Promise<UpgradeStatus[]> {
    const release = await this.releases.get(r.version);
    const agents = await this.choose(r);
    const attempt = randomBytes(8).toString('hex');
    const started: UpgradeStatus[] = [];
    for (const a of agents) {
      const args: UpgradeArgs = {
        version: release.version,
        sha256: release.sha256,
        size: release.size,
        signature: release.signature,
        attempt,
        deadlineMs: r.deadlineMs,
      };
      // The outbox's own deadline outlives the agent's: fetching, swapping and the launcher's trial.
      const cmd = await this.outbox.enqueue(a, {
        name: 'agent.upgrade',
        args,
        createdBy: r.actor,
        deadlineMs: r.deadlineMs + 3_600_000,
      });
      const rec: UpgradeRecord = {
        agentId: a.id,
        attempt,
        from: this.infoOf(a).version ?? null,
        to: release.version,
        commandId: cmd.id,
        startedAt: cmd.createdAt,
        startedBy: r.actor,
      };
      await this.registry.upgrades.put(a.id, rec);
      started.push(statusOf(a, this.infoOf(a), rec, cmd));
    }
    await this.audit.record({
      actor: r.actor,
      action: 'agent.upgrade',
      target: `release:${release.version}`,
      outcome: 'ok',
      remote: r.remote,
      detail: { attempt, ring: r.ring ?? null, agents: agents.map((a) => `${a.kind}:${a.name}`) },
    });
    return started;
  }

  /** The latest upgrade of every agent that had one, as each agent last reported. */
  async status(): Promise<UpgradeStatus[]> {
    const out: UpgradeStatus[] = [];
    for (const rec of await this.registry.upgrades.values().all()) {
      const a = await this.registry.agents.get(rec.agentId);
      if (!a || a.revokedAt) continue;
      const cmd = await this.outbox.get(rec.commandId).catch(() => undefined);
      out.push(statusOf(a, this.infoOf(a), rec, cmd));
    }
    return out.sort((x, y) => x.agent.localeCompare(y.agent));
  }

  /** Records what an agent's Hello says it runs; a rollback is logged and audited once, as main's report of it. */
  async onHello(agent: AgentRecord, hello: Hello | undefined): Promise<void> {
    if (!hello) return;
    const prev = this.infoOf(agent).lastUpgrade;
    const version = isReleaseVersion(hello.agentVersion) ? hello.agentVersion : undefined;
    let last = reportOf(hello.lastUpgrade) ?? prev;
    // A new version says so in the Hello its launcher commits on, before its launcher has written that down:
    // main's accepting this Hello is the commit, so main records it now.
    const started = await this.registry.upgrades.get(agent.id);
    if (started && version === started.to && started.from !== started.to && last?.attempt !== started.attempt)
      last = { attempt: started.attempt, version: started.to, ok: true, at: new Date().toISOString() };
    await this.update(agent.id, { version, lastUpgrade: last });
    if (!last || last.ok || (last.attempt === prev?.attempt && last.at === prev.at)) return;
    this.log.warn(
      { agent: agent.name, kind: agent.kind, version: last.version, reason: last.reason },
      'agent upgrade rolled back',
    );
    await this.audit.record({
      actor: `agent:${agent.id}`,
      action: 'agent.upgrade-rollback',
      target: `${agent.kind}:${agent.name}`,
      outcome: 'failed',
      detail: { version: last.version, attempt: last.attempt, reason: last.reason ?? null },
    });
  }

  /** Sets the ring of the named agents (hosts or engines); returns their names. */
  async setRing(names: string[], ring: AgentRing): Promise<string[]> {
    const agents = await this.byNames(names);
    for (const a of agents) await this.update(a.id, { ring });
    return agents.map((a) => a.name);
  }

  private async choose(r: UpgradeRequest): Promise<AgentRecord[]> {
    if (r.names?.length) return this.byNames(r.names);
    const live = (await this.registry.listAgents()).filter((a) => !a.revokedAt);
    const agents = r.ring === 'canary' ? live.filter((a) => this.infoOf(a).ring === 'canary') : live;
    if (!agents.length)
      throw new BadParameterError(
        'ERR_UPGRADE_NO_AGENTS',
        r.ring === 'canary'
          ? "no agent is in the canary ring; put some there with 'palisade agents ring NAME --ring canary'"
          : 'main has no agent to upgrade',
        { field: 'ring' },
      );
    return agents;
  }

  private async byNames(names: string[]): Promise<AgentRecord[]> {
    const live = (await this.registry.listAgents()).filter((a) => !a.revokedAt);
    return names.map((n) => {
      const found = live.filter((a) => a.name === n);
      if (found.length !== 1)
        throw new BadParameterError(
          'ERR_UPGRADE_NO_AGENTS',
          found.length
            ? `"${n}" names both a host and an engine; rename one`
            : `no host or engine named "${n}"; list them with 'palisade hosts' and 'palisade engines'`,
          { field: 'hosts' },
        );
      return found[0];
    });
  }
}

/** A reason longer than this is cut: it is an agent's word, shown in listings and the audit log. */
const MAX_REASON_CHARS = 500;

/** The Hello's upgrade report, checked and bounded (it is the agent's word), or undefined if it has none. */
function reportOf(u: Hello['lastUpgrade']): AgentUpgradeInfo['lastUpgrade'] {
  if (!u || !isUpgradeAttempt(u.attempt) || !isReleaseVersion(u.version)) return undefined;
  const at = Number(u.atMs ?? 0);
  return {
    attempt: u.attempt,
    version: u.version,
    ok: u.ok === true,
    ...(u.reason ? { reason: u.reason.slice(0, MAX_REASON_CHARS) } : {}),
    at: new Date(at > 0 && at < 8.64e15 ? at : Date.now()).toISOString(),
  };
}

function statusOf(
  a: AgentRecord,
  info: AgentUpgradeInfo,
  rec: UpgradeRecord,
  cmd: CommandRecord | undefined,
): UpgradeStatus {
  const last = info.lastUpgrade?.attempt === rec.attempt ? info.lastUpgrade : undefined;
  let state: UpgradeState = 'pending';
  let reason: string | null = null;
  if (info.version === rec.to) state = 'upgraded';
  else if (last && !last.ok) [state, reason] = ['rolled-back', last.reason ?? 'rolled back'];
  else if (cmd && (cmd.state === 'failed' || cmd.state === 'expired'))
    [state, reason] = ['failed', cmd.error ? `${cmd.error.code}: ${cmd.error.message}` : cmd.state];
  return {
    agent: a.name,
    kind: a.kind,
    ring: info.ring ?? 'default',
    from: rec.from,
    to: rec.to,
    version: info.version ?? null,
    state,
    reason,
    commandId: rec.commandId,
    startedAt: rec.startedAt,
  };
}
