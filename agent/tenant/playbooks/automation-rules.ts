/**
 * The tenant's automation rules (docs/playbooks.md#automation-rules): when an incident is created, every active rule
 * that matches it starts its playbook on it, through the PlaybookRunner. Incidents are created in one place
 * (TenantStore.createIncidents: the API, batch ingest and fetching all go through it), and this module hooks there.
 *
 * Durability, the one contested decision: a matching rule is recorded as *pending* (`rule-pending`, keyed by
 * incident and rule) in the very batch that stores the incident, and the run it starts is stored in the batch that
 * deletes the pending record. So after a kill -9 at any moment either the incident is not there, or the run is, or
 * the pending record is — and the start-up sweep (`drain()` when the tenant starts) starts what is pending. A
 * start-up scan of incidents instead would have to tell "no rule matched" from "the process died" per incident.
 *
 * Shared rules keep their active status on tenants: a local switch (`rule-switches`, by rule id) overrides the
 * body's `active` and lives apart from the content, so a new shared version of the rule leaves it as it was.
 * Not the rule format (common/automation-rule.ts), the matching (rule-matcher.ts) nor HTTP (rule-routes.ts).
 */
import type { Level } from 'level';
import type { Logger } from 'pino';
import { parseAutomationRule, type AutomationRule } from '#common/automation-rule.js';
import { BadParameterError, NotFoundError, isPalisadeError } from '#common/errors.js';
import type { TenantPermission } from '#common/roles.js';
import type { ContentStore, TenantContentItem } from '../content-store.js';
import type { BatchOp, IncidentTimeline } from '../incident-timeline.js';
import { TenantStore, type Incident, type IncidentCreationHook, type Sub } from '../store.js';
import { interpolate } from './playbook-values.js';
import type { PlaybookRunner } from './playbook-runner.js';
import { ruleMatches } from './rule-matcher.js';

/**
 * Rule-started runs per incident: a few rules per incident type is what an MSSP writes; more on one incident is most
 * often rules overlapping by mistake, and each run calls integrations with the tenant's credentials. Rules past the
 * bound (in content id order) do not run, and the incident's timeline says so.
 */
export const MAX_RULE_RUNS_PER_INCIDENT = 5;
/**
 * What a rule-started run may do: act as the tenant. A rule only starts a playbook the tenant holds, and writing a
 * local playbook or rule takes playbooks:write (content-routes.ts), so no one raises their own rights through one.
 */
const RULE_PERMISSIONS: ReadonlySet<TenantPermission> = new Set<TenantPermission>(['integrations:run']);

interface Pending {
  incident: string;
  rule: { id: string; name: string };
  playbook: string;
  inputs: Record<string, unknown>;
  /** Matched past MAX_RULE_RUNS_PER_INCIDENT: only the timeline hears of it. */
  skipped?: boolean;
}
interface Switch {
  active: boolean;
  by: string;
  at: string;
}
/**
 * A rule's last firing and how it went: `started` with the run, `failed` with why (the playbook could not start:
 * missing, ambiguous, inputs that do not fit), or `skipped` (matched past MAX_RULE_RUNS_PER_INCIDENT). A record
 * from before the outcome was kept (a run id only) reads as `started`.
 */
export interface Fired {
  at: string;
  incident: string;
  outcome: 'started' | 'failed' | 'skipped';
  run?: string;
  error?: { code: string; message: string };
}
export interface RuleView {
  id: string;
  name: string;
  source: 'shared' | 'local';
  version: number;
  /** What applies: the local switch when there is one, else the body's `active`. */
  active: boolean;
  switched?: Switch;
  playbook?: string;
  lastFired?: Fired;
  /** A local rule whose body does not check (never published): it never fires. */
  error?: string;
}
interface Loaded {
  item: TenantContentItem;
  rule?: AutomationRule;
  error?: string;
}

export interface RuleDeps {
  db: Level<string, unknown>;
  content: ContentStore;
  runner: PlaybookRunner;
  timeline: IncidentTimeline;
  log: Logger;
}

const sub = <V>(db: Level<string, unknown>, name: string) =>
  db.sublevel<string, V>(name, { valueEncoding: 'json' }) as unknown as Sub<V>;

export class AutomationRules implements IncidentCreationHook {
  private readonly pending: Sub<Pending>;
  private readonly switches: Sub<Switch>;
  private readonly fired: Sub<Fired>;
  /** Parsed bodies by item id, kept while the item's version and update time stay the same. */
  private readonly parsed = new Map<string, Loaded>();
  private chain: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly d: RuleDeps) {
    this.pending = sub<Pending>(d.db, 'rule-pending');
    this.switches = sub<Switch>(d.db, 'rule-switches');
    this.fired = sub<Fired>(d.db, 'rule-fired');
  }

  private async load(): Promise<Loaded[]> {
    const items = await this.d.content.list({ type: 'automation-rule' });
    return items.map((item) => {
      const had = this.parsed.get(item.id);
      if (had && had.item.version === item.version && had.item.updated === item.updated) return had;
      let l: Loaded;
      try {
        l = { item, rule: parseAutomationRule(item.body) };
      } catch (e) {
        l = { item, error: e instanceof Error ? e.message : String(e) };
      }
      this.parsed.set(item.id, l);
      return l;
    });
  }

  /** The rules that apply now: checked, and active by their local switch, else by their body. */
  private async active(): Promise<{ item: TenantContentItem; rule: AutomationRule }[]> {
    const loaded = (await this.load()).filter((l): l is Required<Omit<Loaded, 'error'>> => l.rule !== undefined);
    if (loaded.length === 0) return [];
    const switches = await this.switches.getMany(loaded.map((l) => l.item.id));
    return loaded.filter((l, i) => switches[i]?.active ?? l.rule.active);
  }

  /** The hook's first half: a pending record per matching rule, in the batch that stores the incidents. */
  async ops(created: Incident[]): Promise<BatchOp[]> {
    const rules = await this.active();
    const ops: BatchOp[] = [];
    for (const incident of created) {
      const view = incident as unknown as Record<string, unknown>;
      const matching = rules.filter((r) => ruleMatches(r.rule, view));
      matching.forEach(({ item, rule }, i) => {
        const scope = { incident: view, context: {}, inputs: {} };
        const value: Pending = {
          incident: incident.id,
          rule: { id: item.id, name: rule.name },
          playbook: rule.run.playbook,
          inputs: interpolate(rule.run.inputs ?? {}, scope) as Record<string, unknown>,
          ...(i >= MAX_RULE_RUNS_PER_INCIDENT ? { skipped: true } : {}),
        };
        ops.push({ type: 'put', sublevel: this.pending as Sub<unknown>, key: pendingKey(incident.id, item.id), value });
      });
    }
    return ops;
  }

  /** The hook's second half: the incidents are stored, so their pending rules start now. */
  committed(created: Incident[]): void {
    if (created.length > 0) void this.drain();
  }

  /** Starts every pending rule, one at a time (at tenant start, the sweep). Resolves when the queue is empty. */
  drain(): Promise<void> {
    this.chain = this.chain
      .then(() => this.startPending())
      .catch((e: unknown) => this.d.log.error({ err: e }, 'automation rules stopped by an unexpected error'));
    return this.chain;
  }

  private async startPending(): Promise<void> {
    for await (const [key, p] of this.pending.iterator()) {
      if (this.closed) return;
      await this.startOne(key, p);
    }
  }

  private async startOne(key: string, p: Pending): Promise<void> {
    const done: BatchOp = { type: 'del', sublevel: this.pending as Sub<unknown>, key };
    if (p.skipped) {
      const text = `rule ${p.rule.name} matched but did not run: at most ${MAX_RULE_RUNS_PER_INCIDENT} rules start playbooks on one incident`;
      return this.note(p, 'rule.skipped', text, [done, this.firedOp(p, { outcome: 'skipped' })]);
    }
    try {
      await this.d.runner.start(p.playbook, p.incident, p.inputs, '', RULE_PERMISSIONS, {
        ...p.rule,
        ops: (run) => [
          done,
          {
            type: 'put',
            sublevel: this.fired as Sub<unknown>,
            key: p.rule.id,
            value: { at: run.created, incident: p.incident, outcome: 'started', run: run.id } satisfies Fired,
          },
        ],
      });
    } catch (e) {
      // The playbook is missing, ambiguous or its inputs do not fit: nothing ran, and the rule will not retry.
      const why = isPalisadeError(e) ? `${e.message} (${e.code})` : String(e);
      this.d.log.warn(
        { rule: p.rule.id, incident: p.incident, err: e },
        'automation rule could not start its playbook',
      );
      const error = isPalisadeError(e)
        ? { code: e.code, message: e.message }
        : { code: 'ERR_INTERNAL', message: "an unexpected error; the tenant's log has it" };
      const text = `rule ${p.rule.name} could not start playbook ${p.playbook}: ${why}`;
      // Recorded as the rule's last firing too: else `rules list` shows the run before as if this one went well.
      await this.note(p, 'rule.failed', text, [done, this.firedOp(p, { outcome: 'failed', error })]);
    }
  }

  private firedOp(p: Pending, how: Pick<Fired, 'outcome' | 'error'>): BatchOp {
    const value: Fired = { at: new Date().toISOString(), incident: p.incident, ...how };
    return { type: 'put', sublevel: this.fired as Sub<unknown>, key: p.rule.id, value };
  }

  private async note(p: Pending, kind: string, text: string, more: BatchOp[]): Promise<void> {
    const data = { rule: p.rule.id, playbook: p.playbook };
    const entry = await this.d.timeline.entryOps(p.incident, { by: `rule ${p.rule.name}`, kind, text, data });
    await this.d.db.batch([...entry, ...more] as never);
  }

  /** Every rule this tenant holds, shared and local, with what applies to it. */
  async list(): Promise<RuleView[]> {
    const loaded = await this.load();
    const ids = loaded.map((l) => l.item.id);
    const [switches, fired] = await Promise.all([this.switches.getMany(ids), this.fired.getMany(ids)]);
    return loaded.map(({ item, rule, error }, i) => ({
      id: item.id,
      name: rule?.name ?? item.name,
      source: item.shared ? 'shared' : 'local',
      version: item.version,
      active: error === undefined && (switches[i]?.active ?? rule!.active),
      ...(switches[i] ? { switched: switches[i] } : {}),
      ...(rule ? { playbook: rule.run.playbook } : {}),
      ...(fired[i] ? { lastFired: { ...fired[i], outcome: fired[i].outcome ?? 'started' } } : {}),
      ...(error ? { error } : {}),
    }));
  }

  /** Switches rule `ref` (content id or name) on or off in this tenant, whatever its body or later versions say. */
  async setActive(ref: string, active: boolean, by: string): Promise<RuleView> {
    const rules = await this.list();
    const byId = rules.find((r) => r.id === ref);
    const named = byId ? [byId] : rules.filter((r) => r.name === ref);
    if (named.length === 0)
      throw new NotFoundError('ERR_RULE_NOT_FOUND', `no automation rule "${ref}" in this tenant`, { field: 'rule' });
    if (named.length > 1)
      throw new BadParameterError(
        'ERR_RULE_AMBIGUOUS',
        `rule: ${named.length} rules are named "${ref}" (${named.map((r) => r.id).join(', ')}); give the id`,
        { field: 'rule' },
      );
    const sw: Switch = { active, by, at: new Date().toISOString() };
    await this.switches.put(named[0].id, sw);
    return { ...named[0], active: named[0].error === undefined && active, switched: sw };
  }

  /** The ops that drop the rules still pending on `incident` (a site's data removed: it will not run them). */
  async pendingOps(incident: string): Promise<BatchOp[]> {
    const k = TenantStore.key(incident);
    const keys = await this.pending.keys({ gt: `${k}!`, lt: `${k}!~` }).all();
    return keys.map((key) => ({ type: 'del' as const, sublevel: this.pending as Sub<unknown>, key }));
  }

  /** Stops starting pending rules; what is left pending starts at the next start-up sweep. */
  async close(): Promise<void> {
    this.closed = true;
    await this.chain;
  }
}

const pendingKey = (incident: string, rule: string) => `${TenantStore.key(incident)}!${rule}`;
