/**
 * Automation rules on a real LevelDB in a temp dir, with the real runner: a rule's start is recorded in the batch that
 * stores the incident, so a process that dies right after that batch (here: the hook's `committed` never runs) loses
 * nothing — the start-up sweep starts it, exactly once. And at most MAX_RULE_RUNS_PER_INCIDENT rules start runs on one
 * incident; the timeline says which did not. A rule's last firing says how it went (a run started, or failed to start:
 * why), in the API and in `rules list`'s text.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { ContentStore } from '../../agent/tenant/content-store.js';
import { IncidentTimeline } from '../../agent/tenant/incident-timeline.js';
import { TenantStore } from '../../agent/tenant/store.js';
import { AutomationRules, MAX_RULE_RUNS_PER_INCIDENT } from '../../agent/tenant/playbooks/automation-rules.js';
import { PlaybookRunner } from '../../agent/tenant/playbooks/playbook-runner.js';
import { RunStore } from '../../agent/tenant/playbooks/run-store.js';
import { lastFired as lastFiredText } from '../../admin/rules.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const MARK = JSON.stringify({
  name: 'mark',
  start: 'mark',
  tasks: { mark: { type: 'set-field', field: 'labels.marked', value: 'yes' } },
});
const rule = (name: string) =>
  JSON.stringify({ name, active: true, when: { event: 'incident.created', type: 'phish' }, run: { playbook: 'mark' } });

/** A tenant's stores and its rules over `dir`, as tenant-app.ts wires them. */
async function tenant(dir: string) {
  const store = new TenantStore(dir);
  await store.open();
  const content = new ContentStore(store.db);
  const runs = new RunStore(store.db);
  await runs.open();
  const timeline = new IncidentTimeline(store.db);
  const log = pino({ level: 'silent' });
  // A set-field playbook calls no integration, script or audit: those seams stay empty.
  const unused = {} as never;
  const deps = { runs, timeline, store, content, log, integrations: unused, instances: unused, catalog: unused };
  const runner = new PlaybookRunner({ ...deps, audit: unused });
  const rules = new AutomationRules({ db: store.db, content, runner, timeline, log });
  return { store, content, runs, timeline, runner, rules };
}

describe('automation rules', () => {
  it('a start recorded with its incident survives the process dying before it; the sweep starts it once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rules-'));
    dirs.push(dir);
    let t = await tenant(dir);
    await t.content.putShared('cnt_00000000000a', {
      type: 'playbook',
      name: 'mark',
      body: MARK,
      version: 1,
      labels: [],
    });
    for (let i = 0; i <= MAX_RULE_RUNS_PER_INCIDENT; i++)
      await t.content.putShared(`cnt_00000000010${i}`, {
        type: 'automation-rule',
        name: `r${i}`,
        body: rule(`r${i}`),
        version: 1,
        labels: [],
      });
    // The process dies right after the incident's batch: what would start the runs never runs.
    const rules = t.rules;
    t.store.onCreate = { ops: (c) => rules.ops(c), committed: () => undefined };
    const [inc] = await t.store.createIncidents([{ name: 'n', type: 'phish', severity: 1, details: '' }]);
    expect(await t.runs.list({ incident: inc.id }, 100)).toEqual([]);
    await t.store.close();

    t = await tenant(dir);
    await t.runner.resume();
    await t.rules.drain();
    await t.runner.idle();
    const runs = await t.runs.list({ incident: inc.id }, 100);
    expect(runs.map((r) => [r.rule?.name, r.status]).sort()).toEqual(
      Array.from({ length: MAX_RULE_RUNS_PER_INCIDENT }, (_, i) => [`r${i}`, 'succeeded']),
    );
    expect((await t.store.getIncident(inc.id)).labels).toEqual({ marked: 'yes' });
    const skipped = (await t.timeline.list(inc.id)).filter((e) => e.kind === 'rule.skipped');
    expect(skipped.map((e) => e.by)).toEqual([`rule r${MAX_RULE_RUNS_PER_INCIDENT}`]);

    await t.rules.drain(); // a second sweep finds nothing pending
    expect(await t.runs.list({ incident: inc.id }, 100)).toHaveLength(MAX_RULE_RUNS_PER_INCIDENT);
    const lastFired = (await t.rules.list()).find((r) => r.name === 'r0')?.lastFired;
    expect(lastFired).toMatchObject({ incident: inc.id, outcome: 'started' });
    const last = (await t.rules.list()).find((r) => r.name === `r${MAX_RULE_RUNS_PER_INCIDENT}`)?.lastFired;
    expect(last).toMatchObject({ incident: inc.id, outcome: 'skipped' });
    expect(last).not.toHaveProperty('run');
    await t.store.close();
  });

  it('a rule whose playbook fails to start shows that as its last firing, not the run before', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rules-'));
    dirs.push(dir);
    const t = await tenant(dir);
    const push = (id: string, type: 'playbook' | 'automation-rule', name: string, body: string) =>
      t.content.putShared(id, { type, name, body, version: 1, labels: [] });
    await push('cnt_00000000000a', 'playbook', 'mark', MARK);
    await push('cnt_000000000100', 'automation-rule', 'r0', rule('r0'));
    t.store.onCreate = t.rules;
    const incident = async () => {
      const [inc] = await t.store.createIncidents([{ name: 'n', type: 'phish', severity: 1, details: '' }]);
      await t.rules.drain();
      await t.runner.idle();
      return inc.id;
    };
    const first = await incident();
    const [run] = await t.runs.list({ incident: first }, 10);
    const fired = async () => (await t.rules.list()).find((r) => r.name === 'r0')?.lastFired;
    expect(await fired()).toMatchObject({ incident: first, outcome: 'started', run: run.id });

    await t.content.deleteShared('cnt_00000000000a'); // the playbook is gone: the next start fails
    const second = await incident();
    expect(await t.runs.list({ incident: second }, 10)).toEqual([]);
    const last = await fired();
    expect(last).toMatchObject({ incident: second, outcome: 'failed', error: { code: 'ERR_PLAYBOOK_NOT_FOUND' } });
    expect(last).not.toHaveProperty('run');
    expect(lastFiredText(last!)).toMatch(new RegExp(`^\\S+ incident ${second} failed: ERR_PLAYBOOK_NOT_FOUND$`));
    expect(lastFiredText({ at: 'T', incident: 'i', run: 'r' })).toBe('T incident i run r'); // a record from before
    await t.store.close();
  });
});
