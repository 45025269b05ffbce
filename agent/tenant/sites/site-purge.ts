/**
 * Removing a site's data when it is deactivated (docs/sites.md#deactivating-a-site): the incidents that name the
 * site, their playbook runs, timelines and pending automation rules, and their ids in indicators (the indicators
 * stay: they are the tenant's, seen perhaps at other sites too). `count` says what `purge` would remove, for the
 * confirmation a caller must give first.
 *
 * The order makes a removal complete without stopping the tenant: the site is made inactive before anything is
 * removed (site-store.ts), so no new incident can name it; runs are stopped and deleted before their incidents
 * (playbook-runner.ts purge), so none writes after; and a pass is repeated while it still finds something (a run a
 * rule started between the scan and the removal). Incidents are found by a scan of the tenant's incidents: a
 * deactivation is rare, and an index per site would cost every incident's write.
 */
import type { SitePurgeCounts } from '#common/sites.js';
import { TenantStore, type Incident, type Indicator, type Sub } from '../store.js';
import type { BatchOp, IncidentTimeline } from '../incident-timeline.js';
import type { RunStore } from '../playbooks/run-store.js';
import type { PlaybookRunner } from '../playbooks/playbook-runner.js';
import type { AutomationRules } from '../playbooks/automation-rules.js';

export interface PurgeDeps {
  store: TenantStore;
  runs: RunStore;
  runner: PlaybookRunner;
  timeline: IncidentTimeline;
  rules: AutomationRules;
}

/** Passes at most: each one after the first only picks up what raced the one before. */
const MAX_PASSES = 3;
/** Deletes per batch: one batch stays small however much the site held. */
const BATCH = 500;

const zero = (): SitePurgeCounts => ({ incidents: 0, runs: 0, timelineEntries: 0, pendingRules: 0, indicatorLinks: 0 });

export class SitePurge {
  constructor(private readonly d: PurgeDeps) {}

  private async incidentsOf(site: string): Promise<Incident[]> {
    const out: Incident[] = [];
    for await (const i of this.d.store.incidents.values()) if (i.site === site) out.push(i);
    return out;
  }

  /** What `purge(site)` would remove now. */
  async count(site: string): Promise<SitePurgeCounts> {
    const c = zero();
    const ids = new Set<string>();
    for (const i of await this.incidentsOf(site)) {
      ids.add(i.id);
      c.incidents++;
      c.runs += (await this.d.runs.ofIncident(i.id)).length;
      c.timelineEntries += (await this.d.timeline.purgeOps(i.id)).length;
      c.pendingRules += (await this.d.rules.pendingOps(i.id)).length;
    }
    c.indicatorLinks = (await this.indicatorOps(ids)).links;
    return c;
  }

  /** Removes the site's data (the site must be inactive already, see the header); what it removed. */
  async purge(site: string): Promise<SitePurgeCounts> {
    const total = zero();
    for (let pass = 0; pass < MAX_PASSES; pass++) {
      const incidents = await this.incidentsOf(site);
      const c = await this.remove(incidents.map((i) => i.id));
      for (const k of Object.keys(total) as (keyof SitePurgeCounts)[]) total[k] += c[k];
      if (c.incidents === 0 && c.runs === 0) break;
    }
    return total;
  }

  private async remove(ids: string[]): Promise<SitePurgeCounts> {
    const c = zero();
    for (const id of ids) c.runs += await this.removeRuns(id);
    let ops: BatchOp[] = [];
    const flush = async () => {
      if (ops.length) await this.d.store.db.batch(ops as never);
      ops = [];
    };
    for (const id of ids) {
      const timeline = await this.d.timeline.purgeOps(id);
      const pending = await this.d.rules.pendingOps(id);
      c.timelineEntries += timeline.length;
      c.pendingRules += pending.length;
      c.incidents++;
      ops.push(
        { type: 'del', sublevel: this.d.store.incidents as Sub<unknown>, key: TenantStore.key(id) },
        ...timeline,
        ...pending,
      );
      if (ops.length >= BATCH) await flush();
    }
    const links = await this.indicatorOps(new Set(ids));
    c.indicatorLinks = links.links;
    ops.push(...links.ops);
    await flush();
    return c;
  }

  /**
   * Deletes the runs on `incident`, each once the change to it under way is stored: a run being driven stops after
   * its current task and is then deleted, so no later write of the runner brings it back.
   */
  private async removeRuns(incident: string): Promise<number> {
    let n = 0;
    for (const r of await this.d.runs.ofIncident(incident))
      await this.d.runner.stopThen(r.id, async () => {
        const fresh = await this.d.runs.state(r.id).catch(() => undefined);
        if (!fresh) return;
        await this.d.runs.write(this.d.runs.deleteOps(fresh));
        n++;
      });
    return n;
  }

  /** The indicators naming any of `ids`, rewritten without them. */
  private async indicatorOps(ids: ReadonlySet<string>): Promise<{ ops: BatchOp[]; links: number }> {
    const ops: BatchOp[] = [];
    let links = 0;
    if (ids.size === 0) return { ops, links };
    for await (const [key, i] of this.d.store.indicators.iterator()) {
      const kept = i.incidents.filter((x) => !ids.has(x));
      if (kept.length === i.incidents.length) continue;
      links += i.incidents.length - kept.length;
      const next: Indicator = { ...i, incidents: kept };
      ops.push({ type: 'put', sublevel: this.d.store.indicators as Sub<unknown>, key, value: next });
    }
    return { ops, links };
  }
}
