/**
 * A playbook test's runs and audit lines on a real LevelDB in a temp dir (agent/tenant/playbooks/playbook-test.ts): a
 * tenant holding a stored run (run_000000000001) tests a playbook whose integration task calls an instance and whose
 * sub-playbook calls it too. The test's runs have ids of their own (`test_…`, the sub-playbook task's `childRun`
 * included), and each call's `integration.run` line names the test and its user, never a stored run's id; the stored
 * run is as it was.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { AuditStore } from '../../agent/tenant/audit-store.js';
import { ContentStore } from '../../agent/tenant/content-store.js';
import { IncidentTimeline } from '../../agent/tenant/incident-timeline.js';
import { TenantStore } from '../../agent/tenant/store.js';
import { PlaybookRunner } from '../../agent/tenant/playbooks/playbook-runner.js';
import { testPlaybook } from '../../agent/tenant/playbooks/playbook-test.js';
import { RunStore } from '../../agent/tenant/playbooks/run-store.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const CALL = { type: 'integration', instance: 'svc', command: 'get' };
const WAITS = JSON.stringify({ name: 'waits', start: 'ask', tasks: { ask: { type: 'manual', prompt: 'ok?' } } });
const CHILD = JSON.stringify({ name: 'child', start: 'look', tasks: { look: CALL } });
const TESTED = JSON.stringify({
  name: 'tested',
  start: 'look',
  tasks: { look: { ...CALL, next: 'sub' }, sub: { type: 'playbook', playbook: 'child' } },
});

describe('a playbook test', () => {
  it('runs under ids no stored run has, and its calls are audited as the test by its user', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'playbook-test-runs-'));
    dirs.push(dir);
    const store = new TenantStore(dir);
    await store.open();
    const content = new ContentStore(store.db);
    const runs = new RunStore(store.db);
    await runs.open();
    const audit = new AuditStore(store.db);
    const calls: string[] = [];
    const integrations = {
      run: async (instance: string) => {
        calls.push(instance);
        return { result: { ok: true }, durationMs: 1, integration: 'http' };
      },
    };
    const deps = {
      runs,
      timeline: new IncidentTimeline(store.db),
      store,
      content,
      log: pino({ level: 'silent' }),
      integrations: integrations as never,
      instances: {} as never,
      catalog: {} as never,
      audit,
    };
    const runner = new PlaybookRunner(deps);
    await content.createLocal({ type: 'playbook', name: 'waits', body: WAITS, labels: [] }, 'u');
    await content.createLocal({ type: 'playbook', name: 'child', body: CHILD, labels: [] }, 'u');
    const [incident] = await store.createIncidents([{ name: 'n', type: 'phish', severity: 1, details: '' }]);
    const stored = await runner.start('waits', incident.id, {}, 'u', new Set());
    await runner.idle();
    expect(stored.id).toBe('run_000000000001');
    const before = await runs.get(stored.id);

    const item = { id: 'cnt_0123456789ab', name: 'tested', version: 1, body: TESTED };
    const r = await testPlaybook(deps, item, {}, 'alice', new Set(['integrations:run']));
    expect(r.status).toBe('completed');
    expect(calls).toEqual(['svc', 'svc']);
    const sub = r.tasks.find((t) => t.id === 'sub')!;
    expect(sub.childRun).toMatch(/^test_[0-9a-f]{12}_\d+$/);
    expect(r.subRuns.map((s) => s.id)).toEqual([sub.childRun]);

    const lines = await audit.list(10, 'integration.run');
    expect(lines.map((l) => [l.actor, l.target, l.outcome])).toEqual([
      ['playbook test by alice', 'svc', 'ok'],
      ['playbook test by alice', 'svc', 'ok'],
    ]);
    expect(JSON.stringify(lines)).not.toContain('run_');
    expect(await runs.get(stored.id)).toEqual(before);
    await runner.close();
    await store.close();
  });
});
