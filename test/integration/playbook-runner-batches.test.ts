/**
 * The runner's writes on a real LevelDB in a temp dir (agent/tenant/playbooks/playbook-runner.ts, the durability
 * rule): a run of pure tasks writes a batch per set-field (a condition's `done` rides with the next one, the last
 * task's `done` ends the run), and what it stores and puts on the timeline is still every step, in order; a set-field
 * refused on a closed incident fails the run with the condition before it stored; a local edit of the playbook is
 * what the next run uses (parsed playbooks are kept by version); an integration task's audit line is written in the
 * batch of its `done` (with the pure task after it), and `settled` (what `GET …/runs/:run?wait=` waits on) holds until
 * the run stops being driven; a tenant closing between an integration task and the pure one after it writes the
 * first's `done`.
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
import type { BatchOp } from '../../agent/tenant/incident-timeline.js';
import { scriptSlots } from '../../agent/tenant/scripts/script-admission.js';

const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

const when = (left: string, right: unknown) => ({ left, op: 'eq', right });
const PURE = (label: string) =>
  JSON.stringify({
    name: 'pure',
    start: 'sev',
    tasks: {
      sev: { type: 'condition', branches: [{ when: when('${incident.severity}', 1), next: 'mark' }], else: 'close' },
      mark: { type: 'set-field', field: 'labels.seen', value: label, next: 'again' },
      again: { type: 'condition', branches: [{ when: when('${incident.labels.seen}', label), next: 'close' }] },
      close: { type: 'set-field', field: 'status', value: 'closed' },
    },
  });

async function tenant() {
  const dir = await mkdtemp(join(tmpdir(), 'runner-batches-'));
  dirs.push(dir);
  const store = new TenantStore(dir);
  await store.open();
  const content = new ContentStore(store.db);
  const runs = new RunStore(store.db);
  await runs.open();
  const batches: BatchOp[][] = [];
  const write = runs.write.bind(runs);
  runs.write = (ops: BatchOp[]) => {
    batches.push(ops);
    return write(ops);
  };
  const timeline = new IncidentTimeline(store.db);
  // Pure tasks call no integration, script or audit: those seams stay empty.
  const unused = {} as never;
  const deps = {
    runs,
    timeline,
    store,
    content,
    log: pino({ level: 'silent' }),
    integrations: unused,
    instances: unused,
    catalog: unused,
    audit: unused,
  };
  const runner = new PlaybookRunner(deps);
  const incident = async (severity: number) =>
    (await store.createIncidents([{ name: 'n', type: 'phish', severity, details: '' }]))[0];
  return { store, content, runs, timeline, runner, batches, incident, deps };
}

type Tenant = Awaited<ReturnType<typeof tenant>>;

/** A runner with an audit log whose integration calls answer `{ok: true}`, once `answer()` is called if `held`. */
function callingRunner(t: Tenant, held: boolean) {
  const audit = new AuditStore(t.store.db);
  let answer = () => {};
  const answered = held ? new Promise<void>((r) => (answer = r)) : Promise.resolve();
  const integrations = {
    run: async () => {
      await answered;
      return { result: { ok: true }, durationMs: 1 };
    },
  };
  return {
    audit,
    answer: () => answer(),
    runner: new PlaybookRunner({ ...t.deps, integrations: integrations as never, audit }),
  };
}

/** Local playbook `name`: integration task `id` (fields `call`), then a set-field closing the incident. */
async function callThenClose(t: Tenant, name: string, id: string, call: Record<string, unknown>): Promise<void> {
  const close = { type: 'set-field', field: 'status', value: 'closed' };
  const body = JSON.stringify({
    name,
    start: id,
    tasks: { [id]: { type: 'integration', ...call, next: 'close' }, close },
  });
  await t.content.createLocal({ type: 'playbook', name, body, labels: [] }, 'u');
}

describe('the runner writes', () => {
  it('a batch per set-field for a run of pure tasks, and still every step, in order', async () => {
    const t = await tenant();
    const item = await t.content.createLocal({ type: 'playbook', name: 'pure', body: PURE('v1'), labels: [] }, 'u');
    const inc = await t.incident(1);
    const run = await t.runner.start('pure', inc.id, {}, 'u', new Set());
    await t.runner.idle();
    // The start; mark (with sev's done); close (with again's done, and the run's end).
    expect(t.batches).toHaveLength(3);
    const stored = await t.runs.get(run.id);
    expect(stored.status).toBe('succeeded');
    expect(Object.entries(stored.tasks).map(([id, s]) => [id, s.status])).toEqual([
      ['sev', 'done'],
      ['mark', 'done'],
      ['again', 'done'],
      ['close', 'done'],
    ]);
    expect(await t.store.getIncident(inc.id)).toMatchObject({ status: 'closed', labels: { seen: 'v1' } });
    const kinds = (await t.timeline.list(inc.id)).map((e) => `${e.kind} ${e.data?.task ?? ''}`.trim());
    expect(kinds).toEqual([
      'run.started',
      'task.done sev',
      'task.done mark',
      'task.done again',
      'task.done close',
      'run.succeeded',
    ]);

    // An edit is a new version: the next run uses it, not the playbook parsed for the first.
    await t.content.updateLocal(item.id, { body: PURE('v2') });
    const inc2 = await t.incident(1);
    await t.runner.start(item.id, inc2.id, {}, 'u', new Set());
    await t.runner.idle();
    expect(await t.store.getIncident(inc2.id)).toMatchObject({ labels: { seen: 'v2' } });
  });

  it("an integration task's audit line in the batch of its done; settled holds until the run stops", async () => {
    const t = await tenant();
    const { audit, answer, runner } = callingRunner(t, true);
    await callThenClose(t, 'call', 'lookup', { instance: 'web', command: 'get', args: { path: '/${incident.id}' } });
    const inc = await t.incident(1);
    const run = await runner.start('call', inc.id, {}, 'u', new Set(['integrations:run']));
    // Held by the call: settled answers at its deadline with the run still running.
    await runner.settled(run.id, 50);
    expect((await t.runs.get(run.id)).status).toBe('running');
    const settled = runner.settled(run.id, 10_000);
    answer();
    await settled;
    expect((await t.runs.get(run.id)).status).toBe('succeeded');
    await runner.settled(run.id, 10_000); // at rest: at once
    // The start; then lookup's done with its audit line, written with close's done, which ends the run.
    expect(t.batches).toHaveLength(2);
    expect(
      t.batches[1].map((op) => op.type === 'put' && (op.value as { action?: string }).action).filter(Boolean),
    ).toEqual(['integration.run']);
    const kinds = (await t.timeline.list(inc.id)).map((e) => `${e.kind} ${e.data?.task ?? ''}`.trim());
    expect(kinds).toEqual(['run.started', 'task.done lookup', 'task.done close', 'run.succeeded']);
    expect(await audit.list(10, 'integration.run')).toEqual([
      expect.objectContaining({ actor: `playbook run ${run.id}`, target: 'web', outcome: 'ok' }),
    ]);
  });

  it("a tenant closing after an integration task's call writes its done, though the pure task after it waits", async () => {
    const t = await tenant();
    const { audit, answer, runner } = callingRunner(t, true);
    await callThenClose(t, 'act', 'block', { instance: 'fw', command: 'block', args: { ip: '10.0.0.1' } });
    const inc = await t.incident(1);
    const run = await runner.start('act', inc.id, {}, 'u', new Set(['integrations:run']));
    await runner.settled(run.id, 50); // the call is under way
    const closing = runner.close();
    answer();
    await closing;
    // Found `running` at the next start, block would be interrupted for an analyst although it ended: it is done.
    const stored = await t.runs.get(run.id);
    expect(stored).toMatchObject({ status: 'running', current: 'close', tasks: { block: { status: 'done' } } });
    expect(stored.tasks.close).toBeUndefined();
    expect(await audit.list(10, 'integration.run')).toEqual([expect.objectContaining({ target: 'fw', outcome: 'ok' })]);
    expect((await t.store.getIncident(inc.id)).status).not.toBe('closed');
  });

  it("a failed write of the batch carrying an integration task's done keeps its lines for the failure's batch", async () => {
    const t = await tenant();
    const { audit, runner } = callingRunner(t, false);
    const write = t.runs.write.bind(t.runs);
    let n = 0;
    t.runs.write = (ops: BatchOp[]) => (++n === 2 ? Promise.reject(new Error('disk full')) : write(ops));
    await callThenClose(t, 'act', 'block', { instance: 'fw', command: 'block', args: { ip: '10.0.0.1' } });
    const inc = await t.incident(1);
    const run = await runner.start('act', inc.id, {}, 'u', new Set(['integrations:run']));
    await runner.idle();
    const stored = await t.runs.get(run.id);
    expect(stored).toMatchObject({
      status: 'failed',
      tasks: { block: { status: 'done' }, close: { status: 'failed' } },
    });
    const kinds = (await t.timeline.list(inc.id)).map((e) => `${e.kind} ${e.data?.task ?? ''}`.trim());
    expect(kinds).toEqual(['run.started', 'task.done block', 'run.failed']);
    expect(await audit.list(10, 'integration.run')).toHaveLength(1);
  });

  it('a set-field refused on a closed incident fails the run with the condition before it stored', async () => {
    const t = await tenant();
    await t.content.createLocal({ type: 'playbook', name: 'pure', body: PURE('v1'), labels: [] }, 'u');
    const inc = await t.incident(1);
    await t.store.putIncident({ ...inc, status: 'closed', closed: new Date().toISOString() });
    const run = await t.runner.start('pure', inc.id, {}, 'u', new Set());
    await t.runner.idle();
    const stored = await t.runs.get(run.id);
    expect(stored).toMatchObject({ status: 'failed', error: { task: 'mark', code: 'ERR_INCIDENT_CLOSED' } });
    expect(stored.tasks.sev.status).toBe('done');
    const kinds = (await t.timeline.list(inc.id)).map((e) => `${e.kind} ${e.data?.task ?? ''}`.trim());
    expect(kinds).toEqual(['run.started', 'task.done sev', 'run.failed']);
  });

  // The runner's lookahead (sandbox-lookahead.ts): an isolate for the script that follows an integration task is made
  // while the call waits, holding a sandbox slot; the script uses it, and a run that stops first gives it back.
  /** A runner of `t` whose integration calls wait for `answer()`, then answer `{vip: true}` or fail. */
  const held = (t: Tenant, outcome: 'ok' | 'fail') => {
    let answer = () => {};
    const answered = new Promise<void>((r) => (answer = r));
    const run = async () => {
      await answered;
      if (outcome === 'fail') throw new Error('the firewall is down');
      return { result: { vip: true }, durationMs: 1 };
    };
    const integrations = { run } as never;
    return {
      answer: () => answer(),
      runner: new PlaybookRunner({ ...t.deps, integrations, audit: new AuditStore(t.store.db) }),
    };
  };
  const lookupThenScript = (between: Record<string, unknown>) =>
    JSON.stringify({
      name: 'enrich',
      start: 'lookup',
      tasks: {
        lookup: { type: 'integration', instance: 'fw', command: 'get', output: 'who', next: Object.keys(between)[0] },
        ...between,
        verdict: { type: 'script', script: 'judge', input: { vip: '${context.who.vip}' }, output: 'verdict' },
      },
    });
  const untilSlots = (n: number) => expect.poll(() => scriptSlots().running, { timeout: 5000 }).toBe(n);

  it("makes the script's isolate while the integration task before it waits, and the script runs in it", async () => {
    const t = await tenant();
    const body = 'return { verdict: input.vip ? "escalate" : "routine" };';
    await t.content.createLocal({ type: 'script', name: 'judge', body, labels: [] }, 'u');
    const vip = { type: 'condition', branches: [{ when: when('${context.who.vip}', true), next: 'verdict' }] };
    const playbook = lookupThenScript({ vip });
    await t.content.createLocal({ type: 'playbook', name: 'enrich', body: playbook, labels: [] }, 'u');
    const call = held(t, 'ok');
    const runner = call.runner;
    const run = await runner.start('enrich', (await t.incident(1)).id, {}, 'u', new Set(['integrations:run']));
    await untilSlots(1); // made ahead, while `lookup` is held
    call.answer();
    await runner.idle();
    expect(await t.runs.get(run.id)).toMatchObject({
      status: 'succeeded',
      context: { verdict: { verdict: 'escalate' } },
    });
    await untilSlots(0);
  });

  it('gives the isolate made ahead back when the integration task fails, and makes none past another call', async () => {
    const t = await tenant();
    const body = lookupThenScript({ vip: { type: 'set-field', field: 'severity', value: 3, next: 'verdict' } });
    await t.content.createLocal({ type: 'playbook', name: 'enrich', body, labels: [] }, 'u');
    const failing = held(t, 'fail');
    const runner = failing.runner;
    const run = await runner.start('enrich', (await t.incident(1)).id, {}, 'u', new Set(['integrations:run']));
    await untilSlots(1);
    failing.answer();
    await runner.idle();
    expect(await t.runs.get(run.id)).toMatchObject({ status: 'failed', error: { task: 'lookup' } });
    await untilSlots(0);

    // Another integration task before the script: the isolate would be held through that call too, so none is made.
    const twoCalls = lookupThenScript({
      again: { type: 'integration', instance: 'fw', command: 'get', next: 'verdict' },
    });
    await t.content.createLocal({ type: 'playbook', name: 'twice', body: twoCalls, labels: [] }, 'u');
    const second = held(t, 'fail');
    const runner2 = second.runner;
    await runner2.start('twice', (await t.incident(1)).id, {}, 'u', new Set(['integrations:run']));
    await new Promise((r) => setTimeout(r, 200));
    expect(scriptSlots().running).toBe(0);
    second.answer();
    await runner2.idle();
  });
});
