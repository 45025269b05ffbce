/**
 * A playbook written in the list form (DESIGN §7, common/playbook-list-form.ts) runs in the tenant's runner on a real
 * LevelDB in a temp dir: the integration task's answer is read by the next condition as `${context.t1…}` (its
 * output kept under its id), `then` and `else` lead where they say, and the task nothing leads to never runs.
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
import { RunStore } from '../../agent/tenant/playbooks/run-store.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const BODY = JSON.stringify({
  start: 't1',
  tasks: [
    { id: 't1', kind: 'integration', instance: 'web', command: 'request', args: { path: '/x' }, next: ['t2'] },
    { id: 't2', kind: 'condition', if: '${context.t1.status} == 200', then: ['t3'], else: ['t4'] },
    { id: 't3', kind: 'set-field', field: 'severity', value: 4 },
    { id: 't4', kind: 'set-field', field: 'labels.lookup', value: 'failed' },
    { id: 't5', kind: 'manual', prompt: 'never asked' },
  ],
});

describe('a list-form playbook', () => {
  it('runs: then on a 200, else otherwise, and the task nothing leads to never runs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'list-form-run-'));
    dirs.push(dir);
    const store = new TenantStore(dir);
    await store.open();
    const content = new ContentStore(store.db);
    const runs = new RunStore(store.db);
    await runs.open();
    let status = 200;
    const integrations = { run: async () => ({ result: { status, body: {} }, durationMs: 1 }) };
    const unused = {} as never;
    const runner = new PlaybookRunner({
      runs,
      timeline: new IncidentTimeline(store.db),
      store,
      content,
      log: pino({ level: 'silent' }),
      integrations: integrations as never,
      instances: unused,
      catalog: unused,
      audit: new AuditStore(store.db),
    });
    await content.createLocal({ type: 'playbook', name: 'design', body: BODY, labels: [] }, 'u');
    const states = async (id: string) =>
      Object.entries((await runs.get(id)).tasks).map(([task, s]) => `${task} ${s.status}`);
    try {
      const [ok, notFound] = await store.createIncidents([
        { name: 'a', type: 'phish', severity: 1, details: '' },
        { name: 'b', type: 'phish', severity: 1, details: '' },
      ]);
      const first = await runner.start('design', ok.id, {}, 'u', new Set(['integrations:run']));
      await runner.idle();
      expect(await runs.get(first.id)).toMatchObject({ status: 'succeeded', context: { t1: { status: 200 } } });
      expect(await states(first.id)).toEqual(['t1 done', 't2 done', 't3 done']);
      expect(await store.getIncident(ok.id)).toMatchObject({ severity: 4 });

      status = 404;
      const second = await runner.start('design', notFound.id, {}, 'u', new Set(['integrations:run']));
      await runner.idle();
      expect((await runs.get(second.id)).status).toBe('succeeded');
      expect(await states(second.id)).toEqual(['t1 done', 't2 done', 't4 done']);
      expect(await store.getIncident(notFound.id)).toMatchObject({ severity: 1, labels: { lookup: 'failed' } });
    } finally {
      await runner.close();
      await store.close();
    }
  });
});
