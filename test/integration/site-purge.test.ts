/**
 * A site's data removed on a real LevelDB with the real runner (agent/tenant/sites/site-purge.ts): deactivating a site
 * while one of its runs is in the middle of an integration call waits for that call, then deletes the run, so the
 * runner's later writes (the task's done, the next task's set-field on the incident) never bring the run or the
 * incident back; the site's incidents, timelines and indicator links go, and another site's and site-less data stay.
 * A share then syncs the active sites and names the inactive one.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { TenantPermission } from '#common/roles.js';
import { ContentStore } from '../../agent/tenant/content-store.js';
import { IncidentTimeline } from '../../agent/tenant/incident-timeline.js';
import { TenantStore } from '../../agent/tenant/store.js';
import { AutomationRules } from '../../agent/tenant/playbooks/automation-rules.js';
import { PlaybookRunner } from '../../agent/tenant/playbooks/playbook-runner.js';
import { RunStore } from '../../agent/tenant/playbooks/run-store.js';
import { SiteStore } from '../../agent/tenant/sites/site-store.js';
import { SitePurge } from '../../agent/tenant/sites/site-purge.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

/** An integration call, then a set-field on the incident. */
const SLOW = JSON.stringify({
  name: 'slow',
  start: 'call',
  tasks: {
    call: { type: 'integration', instance: 'svc', command: 'get', next: 'mark' },
    mark: { type: 'set-field', field: 'labels.marked', value: 'yes' },
  },
});
const MAY: ReadonlySet<TenantPermission> = new Set<TenantPermission>(['integrations:run']);

/** The integration seam: each call waits until the test lets it answer. */
function gatedIntegrations() {
  const waiting: (() => void)[] = [];
  return {
    waiting,
    fake: {
      run: () =>
        new Promise((res) =>
          waiting.push(() => res({ integration: 'http', command: 'get', durationMs: 1, result: { ok: true } })),
        ),
    },
  };
}

async function tenant(dir: string) {
  const store = new TenantStore(dir);
  await store.open();
  const content = new ContentStore(store.db);
  const runs = new RunStore(store.db);
  await runs.open();
  const timeline = new IncidentTimeline(store.db);
  const log = pino({ level: 'silent' });
  const gate = gatedIntegrations();
  const runner = new PlaybookRunner({
    runs,
    timeline,
    store,
    content,
    log,
    integrations: gate.fake as never,
    instances: {} as never,
    catalog: {} as never,
    audit: { record: async () => undefined } as never,
  });
  const rules = new AutomationRules({ db: store.db, content, runner, timeline, log });
  const sites = new SiteStore(store.db);
  const purge = new SitePurge({ store, runs, runner, timeline, rules });
  return { store, content, runs, timeline, runner, sites, purge, gate };
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
}

describe('deactivating a site', () => {
  it("waits for a run's task under way, then removes the site's runs and incidents for good", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'site-purge-'));
    dirs.push(dir);
    const t = await tenant(dir);
    await t.content.putShared('cnt_00000000000a', {
      type: 'playbook',
      name: 'slow',
      body: SLOW,
      version: 1,
      labels: [],
    });
    await t.sites.create('paris');
    await t.sites.create('lyon');
    const [p, l, none] = await t.store.createIncidents([
      { name: 'p', type: 'phish', severity: 1, details: '', site: 'paris' },
      { name: 'l', type: 'phish', severity: 1, details: '', site: 'lyon' },
      { name: 'n', type: 'phish', severity: 1, details: '' },
    ]);
    await t.store.upsertIndicator('ip', '198.51.100.1', { incident: p.id });
    await t.store.upsertIndicator('ip', '198.51.100.1', { incident: l.id });
    const pr = await t.runner.start('slow', p.id, {}, 'analyst', MAY);
    const lr = await t.runner.start('slow', l.id, {}, 'analyst', MAY);
    expect(pr.site).toBe('paris');
    await until('both runs in their integration call', () => t.gate.waiting.length === 2);

    expect(await t.purge.count('paris')).toMatchObject({ incidents: 1, runs: 1, pendingRules: 0, indicatorLinks: 1 });
    await t.sites.deactivate('paris');
    let done = false;
    const purging = t.purge.purge('paris').finally(() => (done = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(done).toBe(false); // the paris run's call is under way: its run is deleted only after it
    for (const go of t.gate.waiting.splice(0)) go();
    const removed = await purging;
    await t.runner.idle();
    expect(removed).toMatchObject({ incidents: 1, runs: 1, pendingRules: 0, indicatorLinks: 1 });
    expect(removed.timelineEntries).toBeGreaterThanOrEqual(2);

    await expect(t.runs.get(pr.id)).rejects.toMatchObject({ code: 'ERR_PLAYBOOK_RUN_NOT_FOUND' });
    await expect(t.store.getIncident(p.id)).rejects.toMatchObject({ code: 'ERR_INCIDENT_NOT_FOUND' });
    expect(await t.timeline.list(p.id)).toEqual([]);
    expect(await t.runs.list({ incident: p.id }, 10)).toEqual([]);
    expect(await t.runs.unfinished()).toEqual([]);
    // lyon's run went on to its end, and its incident and the site-less one are as they were.
    expect((await t.runs.get(lr.id)).status).toBe('succeeded');
    expect((await t.store.getIncident(l.id)).labels).toEqual({ marked: 'yes' });
    expect(await t.store.getIncident(none.id)).toEqual(none);
    expect((await t.store.getIndicator('ip', '198.51.100.1')).incidents).toEqual([l.id]);
    await expect(t.sites.checkActive('paris', 'site')).rejects.toMatchObject({ code: 'ERR_SITE_INACTIVE' });

    // A share now syncs the active site and names the inactive one.
    expect(await t.sites.shared('cnt_00000000000a', 1)).toEqual({ synced: ['lyon'], inactive: ['paris'] });
    const sites = new Map((await t.sites.list()).map((s) => [s.name, s]));
    expect(sites.get('lyon')).toMatchObject({
      syncStatus: 'synced',
      lastSyncedItem: { id: 'cnt_00000000000a', version: 1 },
    });
    expect(sites.get('paris')).toMatchObject({ active: false, syncStatus: 'inactive', lastSynced: null });
    await t.runner.close();
    await t.store.close();
  });
});
