/**
 * Playbooks end to end with real processes (main, host h1, tenants pa and pb) and a local HTTP fake that records
 * every call with its bearer token and can hold a call until released. One playbook is authored on main, shared,
 * and run in both tenants through the CLI: its integration tasks name a connection (`svc`), so each tenant's call
 * carries that tenant's own token; its condition branches one way in pa and the other in pb; its manual task waits
 * until complete-task; a tenant's own playbook runs the shared one as a sub-playbook, and one calling itself fails on
 * that task; show-run of a run waiting on a sub-playbook's manual task names that task of the sub-playbook's run.
 * Kill -9 of the tenant process while a run waits on a manual task, while a read-only call is held by the fake,
 * and while a write call is held: after the host restarts the tenant, the fake's counts are exactly what
 * docs/playbooks.md#durability says (a finished task never again; the held read-only call once more; the held write
 * never again: the run is interrupted until an analyst completes the task, show-run naming both ways on). A
 * malformed playbook is refused at publish with 400 naming the task; a customer read-only user gets 403 on run. A
 * script task runs a shared script with the tenant's instance and the run's incident. A manual prompt reaches the
 * timeline without task outputs; integration tasks are audited. (Who may write and run what: playbook-access.test.ts.)
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { Deployment } from '../harness/deployment.js';
import { deployWithService, FakeService } from '../harness/playbook-service.js';
import { runCli, until, type CliResult } from '../harness/processes.js';
import type { ErrorBody } from '../harness/api-shapes.js';

const PLAYBOOK = `
name: triage
description: look the user up; a VIP is escalated and an analyst approves the action; others are labelled
inputs:
  user: {required: true}
start: lookup
tasks:
  lookup:
    type: integration
    integration: http
    connection: svc
    command: get
    args: {path: "/lookup/\${inputs.user}", query: {incident: "\${incident.id}"}}
    output: who
    next: vip
  vip:
    type: condition
    branches:
      - when: {left: "\${context.who.body.vip}", op: eq, right: true}
        next: escalate
    else: routine
  escalate: {type: set-field, field: severity, value: 4, next: approve}
  approve: {type: manual, prompt: "Lock the account of \${inputs.user} (vip: \${context.who.body.vip})?", output: approval, next: act}
  act:
    type: integration
    integration: http
    connection: svc
    command: request
    args: {method: POST, path: /act, query: {incident: "\${incident.id}"}, body: {approved: "\${context.approval}"}}
    next: close
  close: {type: set-field, field: status, value: closed}
  routine: {type: set-field, field: labels.triage, value: routine}
`;

let d: Deployment;
let svc: FakeService;
const tokens = { pa: `tok-pa-${randomBytes(12).toString('hex')}`, pb: `tok-pb-${randomBytes(12).toString('hex')}` };

const cli = (args: string[], stdin?: string): Promise<CliResult> => runCli(args, d.env, 60_000, stdin);
const ok = async (args: string[], stdin?: string): Promise<CliResult> => {
  const r = await cli(args, stdin);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
  return r;
};

interface Run {
  id: string;
  status: string;
  current: string | null;
  tasks: { id: string; status: string; result?: unknown; output?: unknown; childRun?: string; startedAt: string }[];
  context: Record<string, unknown>;
}
/** Run `r`'s task `id` (a run shows its tasks as a list in the order they started). */
const task = (r: Run, id: string) => r.tasks.find((t) => t.id === id);
const showRun = async (tenant: string, id: string) =>
  (await ok(['playbooks', 'show-run', id, '--tenant', tenant, '--json'])).json as Run;
const runUntil = (tenant: string, id: string, status: string) =>
  until(`run ${id} in ${tenant} ${status}`, async () => {
    const r = await showRun(tenant, id);
    return r.status === status ? r : undefined;
  });

async function incident(tenant: string, name: string): Promise<string> {
  const r = await d.api<{ id: string }>('POST', `/tenants/${tenant}/api/incidents`, {
    name,
    type: 'phish',
    severity: 2,
  });
  expect(r.status, r.raw).toBe(201);
  return r.body.id;
}
async function start(tenant: string, inc: string, user: string, extra: string[] = []): Promise<Run> {
  const args = ['playbooks', 'run', 'triage', '--tenant', tenant, '--incident', inc];
  return (await ok([...args, '--inputs', JSON.stringify({ user }), ...extra, '--json'])).json as Run;
}

/** Kills the tenant's process (-9) and waits until its host has started it again. */
async function killTenant(tenant: string): Promise<void> {
  const before = await d.tenantRunning(tenant);
  process.kill(before.pid!, 'SIGKILL');
  await d.tenantRunning(tenant, { notPid: before.pid! });
}

beforeAll(async () => {
  svc = new FakeService();
  await svc.start();
  d = await deployWithService(svc, tokens);
  const create = ['content', 'create', '--type', 'playbook', '--name', 'triage', '--labels', 'all'];
  const item = (await ok([...create, '--body', PLAYBOOK, '--json'])).json as { id: string };
  await ok(['content', 'publish', item.id]);
  await ok(['content', 'share', item.id]);
  for (const t of ['pa', 'pb'])
    await until(`triage shared to ${t}`, async () => {
      const r = await d.api<{ id: string }[]>('GET', `/tenants/${t}/api/content?type=playbook`);
      return r.status === 200 && r.body.some((i) => i.id === item.id);
    });
}, 240_000);
afterAll(async () => {
  await d?.stop();
  await svc?.close();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('a shared playbook', () => {
  it("runs in two tenants, each call with that tenant's own credentials; the condition branches both ways", async () => {
    const [ia, ib] = [await incident('pa', 'alice phished'), await incident('pb', 'bob phished')];
    const a = await start('pa', ia, 'alice');
    const b = await start('pb', ib, 'bob', ['--wait']);
    expect(b.status).toBe('completed');
    expect(b.tasks.map((t) => t.id)).toEqual(['lookup', 'vip', 'routine']);
    const incB = await d.api<{ labels?: Record<string, string>; severity: number }>(
      'GET',
      `/tenants/pb/api/incidents/${ib}`,
    );
    expect(incB.body).toMatchObject({ labels: { triage: 'routine' }, severity: 2 });

    const waiting = await runUntil('pa', a.id, 'waiting');
    expect(waiting.current).toBe('approve');
    expect(task(waiting, 'vip')).toMatchObject({ status: 'done', result: { branch: 0 }, output: { branch: 0 } });
    const incA = await d.api<{ severity: number }>('GET', `/tenants/pa/api/incidents/${ia}`);
    expect(incA.body.severity).toBe(4);

    expect(svc.calls('/lookup/alice', ia).map((c) => c.authorization)).toEqual([`Bearer ${tokens.pa}`]);
    expect(svc.calls('/lookup/bob', ib).map((c) => c.authorization)).toEqual([`Bearer ${tokens.pb}`]);
  });

  it('a run is shown as DESIGN says: status completed, tasks a list in start order with result (REST, CLI)', async () => {
    const inc = await incident('pb', 'bob, the shape of a run');
    const run = await start('pb', inc, 'bob', ['--wait']);
    expect(run.status).toBe('completed');
    const rest = await d.api<Run & { playbook: { name: string } }>('GET', `/tenants/pb/api/playbooks/runs/${run.id}`);
    expect(rest.status, rest.raw).toBe(200);
    expect(rest.body).toMatchObject({ id: run.id, status: 'completed', current: null, playbook: { name: 'triage' } });
    expect(rest.body.tasks.map((t) => `${t.id} ${t.status}`)).toEqual(['lookup done', 'vip done', 'routine done']);
    const starts = rest.body.tasks.map((t) => t.startedAt);
    expect([...starts].sort()).toEqual(starts);
    // `result` is the task's output, which is kept too.
    expect(task(rest.body, 'lookup')?.result).toMatchObject({ status: 200, body: { vip: false, done: true } });
    for (const t of rest.body.tasks) expect(t.result).toEqual(t.output);
    expect(run.tasks).toEqual(rest.body.tasks);
    const list = await d.api<{ id: string; status: string }[]>('GET', `/tenants/pb/api/playbooks/runs?incident=${inc}`);
    expect(list.body).toEqual([expect.objectContaining({ id: run.id, status: 'completed' })]);

    const text = await ok(['playbooks', 'show-run', run.id, '--tenant', 'pb']);
    expect(text.stdout).toContain(`on incident ${inc}: completed\n  lookup: done\n  vip: done\n  routine: done\n`);
    const listed = await ok(['playbooks', 'runs', '--tenant', 'pb', '--incident', inc]);
    expect(listed.stdout).toMatch(new RegExp(`${run.id} +triage +${inc} +completed`));
  });

  it('a manual task waits until complete-task, whose data is its output; every step is on the timeline', async () => {
    const inc = await incident('pa', 'alice again');
    const run = await start('pa', inc, 'alice');
    await runUntil('pa', run.id, 'waiting');
    expect(svc.calls('/act', inc)).toHaveLength(0);
    const shown = await ok(['playbooks', 'show-run', run.id, '--tenant', 'pa']);
    expect(shown.stdout).toContain('approve asks: Lock the account of alice (vip: true)?');
    // The hint can be pasted as it is: it names the tenant.
    expect(shown.stdout).toContain(`next: palisade playbooks complete-task ${run.id} approve --tenant pa\n`);

    await ok(['playbooks', 'complete-task', run.id, 'approve', '--tenant', 'pa', '--data', '"yes"']);
    const done = await runUntil('pa', run.id, 'completed');
    expect(done.context.approval).toBe('yes');
    expect(svc.calls('/act', inc).map((c) => [c.authorization, JSON.parse(c.body)])).toEqual([
      [`Bearer ${tokens.pa}`, { approved: 'yes' }],
    ]);
    const i = await d.api<{ status: string }>('GET', `/tenants/pa/api/incidents/${inc}`);
    expect(i.body.status).toBe('closed');

    const timeline = await d.api<{ by: string; kind: string; text: string }[]>(
      'GET',
      `/tenants/pa/api/incidents/${inc}/timeline`,
    );
    expect(timeline.body.map((e) => e.kind)).toEqual([
      'run.started',
      ...['task.done', 'task.done', 'task.done', 'task.waiting', 'task.done', 'task.done', 'task.done'],
      'run.succeeded',
    ]);
    expect(timeline.body.find((e) => e.text.startsWith('approve:'))?.text).toMatch(/^approve: completed by /);
    // The prompt as written: the lookup's answer (an output) is for playbooks:read, not for incidents:read.
    expect(timeline.body.find((e) => e.kind === 'task.waiting')?.text).toBe(
      'approve waits for an analyst: Lock the account of ${inputs.user} (vip: ${context.who.body.vip})?',
    );
    expect(JSON.stringify(timeline.body)).not.toContain('vip: true');

    // Each integration task's call is audited as the same call from a script is, the run as its actor.
    const audit = await d.api<{ actor: string; action: string; target: string; outcome: string; detail?: object }[]>(
      'GET',
      '/tenants/pa/api/audit?limit=100',
    );
    const calls = audit.body.filter((e) => e.action === 'integration.run' && e.actor === `playbook run ${run.id}`);
    expect(calls.map((e) => [e.target, e.outcome, (e.detail as { command: string }).command])).toEqual(
      expect.arrayContaining([
        ['http/svc', 'ok', 'get'],
        ['http/svc', 'ok', 'request'],
      ]),
    );
    const runs = await ok(['playbooks', 'runs', '--tenant', 'pa', '--incident', inc, '--json']);
    expect((runs.json as { id: string }[]).map((r) => r.id)).toEqual([run.id]);
  });
});

describe('sub-playbooks', () => {
  const local = async (tenant: string, name: string, body: unknown) => {
    const r = await d.api<{ id: string }>('POST', `/tenants/${tenant}/api/content`, {
      type: 'playbook',
      name,
      body: JSON.stringify(body),
    });
    expect(r.status, r.raw).toBe(201);
    return r.body.id;
  };

  it("a tenant's own playbook runs the shared one as a sub-playbook and gets its context as output", async () => {
    await local('pb', 'wrapper', {
      name: 'wrapper',
      start: 'triage',
      tasks: {
        triage: { type: 'playbook', playbook: 'triage', inputs: { user: 'bob' }, output: 'sub', next: 'mark' },
        mark: { type: 'set-field', field: 'labels.looked-up', value: '${context.sub.who.body.vip}' },
      },
    });
    const inc = await incident('pb', 'wrapped');
    const run = (await ok(['playbooks', 'run', 'wrapper', '--tenant', 'pb', '--incident', inc, '--wait', '--json']))
      .json as Run;
    const done = run.status === 'completed' ? run : await runUntil('pb', run.id, 'completed');
    const child = await showRun('pb', task(done, 'triage')!.childRun!);
    expect(child).toMatchObject({ status: 'completed', parent: { run: run.id, task: 'triage' } });
    expect(done.context.sub).toEqual(child.context);
    const i = await d.api<{ labels: Record<string, string> }>('GET', `/tenants/pb/api/incidents/${inc}`);
    expect(i.body.labels).toMatchObject({ triage: 'routine', 'looked-up': 'false' });
  });

  it("show-run of a run waiting on a sub-playbook's manual task leads to that task of the sub-playbook's run", async () => {
    await local('pa', 'asks', { name: 'asks', start: 'm1', tasks: { m1: { type: 'manual', prompt: 'go on?' } } });
    const p1 = { type: 'playbook', playbook: 'asks' };
    await local('pa', 'asks-above', { name: 'asks-above', start: 'p1', tasks: { p1 } });
    const inc = await incident('pa', 'asks below');
    const run = (await ok(['playbooks', 'run', 'asks-above', '--tenant', 'pa', '--incident', inc, '--json']))
      .json as Run;
    const child = task(await runUntil('pa', run.id, 'waiting'), 'p1')!.childRun!;
    await runUntil('pa', child, 'waiting');
    const shown = await ok(['playbooks', 'show-run', run.id, '--tenant', 'pa']);
    expect(shown.stdout).toContain(
      `  p1 waits on sub-playbook run ${child} (asks): waiting at m1\n  m1 asks: go on?\n` +
        `  next: palisade playbooks complete-task ${child} m1 --tenant pa\n`,
    );
    expect(shown.stdout).not.toContain(`complete-task ${run.id}`);
    await ok(['playbooks', 'complete-task', child, 'm1', '--tenant', 'pa']);
    await runUntil('pa', run.id, 'completed');
  });

  it('a playbook that calls itself fails on that task, naming why', async () => {
    await local('pb', 'loop', {
      name: 'loop',
      start: 'again',
      tasks: { again: { type: 'playbook', playbook: 'loop' } },
    });
    const inc = await incident('pb', 'loops');
    const r = await cli(['playbooks', 'run', 'loop', '--tenant', 'pb', '--incident', inc, '--wait']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('failed in again: loop is already running above this task (ERR_PLAYBOOK_DEPTH)');

    // One level down, the sub-playbook's run fails the same way, and its failure fails the run above it.
    await local('pb', 'outer', {
      name: 'outer',
      start: 'inner',
      tasks: { inner: { type: 'playbook', playbook: 'loop' } },
    });
    const outer = await cli(['playbooks', 'run', 'outer', '--tenant', 'pb', '--incident', inc, '--wait', '--json']);
    expect(outer.code).toBe(1);
    const failed = outer.json as Run & { error: { task: string; code: string; message: string } };
    expect(failed.error).toMatchObject({ task: 'inner', code: 'ERR_PLAYBOOK_DEPTH' });
    expect(failed.error.message).toMatch(/^sub-playbook run run_\d+: loop is already running above this task$/);
  });
});

describe('script tasks', () => {
  const SCRIPT = [
    "const before = await palisade.context.get('who');",
    "const r = await palisade.integration('web', 'get', { path: '/lookup/' + input.user, query: { incident: input.incident } });",
    "await palisade.incident.update({ details: 'looked up by a script' });",
    "palisade.log('looked up', input.user);",
    'return { vip: r.body.vip, before: before ?? null };',
  ].join('\n');

  it("a script task runs a shared script with the tenant's instance and the run's incident; its result is the output", async () => {
    await ok(['integrations', 'create', 'web', '--tenant', 'pa', '--integration', 'http', '--connection', 'svc']);
    for (const [type, name, body] of [
      ['script', 'vip-check', SCRIPT],
      [
        'playbook',
        'scripted',
        JSON.stringify({
          name: 'scripted',
          start: 'check',
          tasks: {
            check: {
              type: 'script',
              script: 'vip-check',
              input: { user: '${incident.name}', incident: '${incident.id}' },
              output: 'checked',
              next: 'mark',
            },
            mark: { type: 'set-field', field: 'labels.vip', value: '${context.checked.vip}' },
          },
        }),
      ],
    ]) {
      const item = (
        await ok(['content', 'create', '--type', type, '--name', name, '--labels', 'all', '--body', body, '--json'])
      ).json as { id: string };
      await ok(['content', 'publish', item.id]);
      await ok(['content', 'share', item.id]);
      await until(`${name} shared to pa`, async () => {
        const r = await d.api<{ id: string }[]>('GET', `/tenants/pa/api/content?type=${type}`);
        return r.status === 200 && r.body.some((i) => i.id === item.id);
      });
    }
    const inc = await incident('pa', 'alice');
    const run = (await ok(['playbooks', 'run', 'scripted', '--tenant', 'pa', '--incident', inc, '--wait', '--json']))
      .json as Run;
    const done = run.status === 'completed' ? run : await runUntil('pa', run.id, 'completed');
    expect(task(done, 'check')).toMatchObject({ status: 'done', result: { vip: true, before: null } });
    expect(done.context.checked).toEqual({ vip: true, before: null });
    expect(svc.calls('/lookup/alice', inc).map((c) => c.authorization)).toEqual([`Bearer ${tokens.pa}`]);
    const i = await d.api<{ details: string; labels: Record<string, string> }>(
      'GET',
      `/tenants/pa/api/incidents/${inc}`,
    );
    expect(i.body).toMatchObject({ details: 'looked up by a script', labels: { vip: 'true' } });
    // The script's integration call is audited as the run's, naming the script.
    const audit = await d.api<{ actor: string; detail?: { script?: string } }[]>(
      'GET',
      '/tenants/pa/api/audit?action=integration.run&limit=20',
    );
    expect(audit.body.find((e) => e.actor === `playbook run ${run.id}`)?.detail?.script).toMatch(/^cnt_/);
  });
});

describe('durability: kill -9 of the tenant mid-run', () => {
  it('a run waiting on a manual task waits again after the restart, and finishes; no task ran twice', async () => {
    const inc = await incident('pa', 'alice, killed while waiting');
    const run = await start('pa', inc, 'alice');
    await runUntil('pa', run.id, 'waiting');
    await killTenant('pa');
    expect((await showRun('pa', run.id)).status).toBe('waiting');
    await ok(['playbooks', 'complete-task', run.id, 'approve', '--tenant', 'pa', '--data', 'true']);
    await runUntil('pa', run.id, 'completed');
    expect(svc.calls('/lookup/alice', inc)).toHaveLength(1);
    expect(svc.calls('/act', inc)).toHaveLength(1);
  });

  it('a read-only call held by the service runs once more after the restart; the run completes', async () => {
    const inc = await incident('pb', 'bob, killed during the lookup');
    svc.hold.add('/lookup/');
    const run = await start('pb', inc, 'bob');
    await until('the lookup is held', () => svc.calls('/lookup/bob', inc).length === 1);
    await killTenant('pb');
    await until('the lookup is called again', () => svc.calls('/lookup/bob', inc).length === 2);
    svc.release();
    const done = await runUntil('pb', run.id, 'completed');
    expect(done.tasks.map((t) => t.id)).toEqual(['lookup', 'vip', 'routine']);
    expect(svc.calls('/lookup/bob', inc)).toHaveLength(2);
    const timeline = await d.api<{ kind: string }[]>('GET', `/tenants/pb/api/incidents/${inc}/timeline`);
    expect(timeline.body.filter((e) => e.kind === 'task.rerun')).toHaveLength(1);
  });

  it('a write held by the service is never sent again: the run is interrupted until an analyst completes it', async () => {
    const inc = await incident('pa', 'alice, killed during the action');
    const run = await start('pa', inc, 'alice');
    await runUntil('pa', run.id, 'waiting');
    svc.hold.add('/act');
    await ok(['playbooks', 'complete-task', run.id, 'approve', '--tenant', 'pa', '--data', '"yes"']);
    await until('the action is held', () => svc.calls('/act', inc).length === 1);
    await killTenant('pa');
    svc.release();
    const stopped = await runUntil('pa', run.id, 'interrupted');
    expect(stopped).toMatchObject({ current: 'act' });
    expect(task(stopped, 'act')).toMatchObject({ status: 'interrupted' });
    const shown = await ok(['playbooks', 'show-run', run.id, '--tenant', 'pa']);
    expect(shown.stdout).toContain('act may have acted before the tenant stopped');
    // Either way on, pasteable as it is.
    expect(shown.stdout).toContain(
      `  next: palisade playbooks complete-task ${run.id} act --tenant pa\n` +
        `    or: palisade playbooks retry-task ${run.id} act --tenant pa\n`,
    );

    await ok(['playbooks', 'complete-task', run.id, 'act', '--tenant', 'pa', '--data', '{"status":200}']);
    await runUntil('pa', run.id, 'completed');
    expect(svc.calls('/act', inc)).toHaveLength(1);
    expect(svc.calls('/lookup/alice', inc)).toHaveLength(1);
  });
});

describe('refusals', () => {
  it('a malformed playbook is refused at publish with 400 naming the task', async () => {
    const bad = PLAYBOOK.replace('next: escalate', 'next: nowhere');
    const item = (await ok(['content', 'create', '--type', 'playbook', '--name', 'broken', '--body', bad, '--json']))
      .json as { id: string };
    const refused = await d.api<ErrorBody>('POST', `/content/${item.id}/publish`, {});
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({
      code: 'ERR_PLAYBOOK_INVALID',
      message: 'tasks.vip.branches[0].next: "nowhere" is not a task',
    });
    const viaCli = await cli(['content', 'publish', item.id]);
    expect(viaCli.code).toBe(2);
    expect(viaCli.stderr).toContain('tasks.vip.branches[0].next: "nowhere" is not a task (ERR_PLAYBOOK_INVALID)');
  });

  it('a customer read-only user cannot start a run (403); a customer admin can', async () => {
    const inc = await incident('pb', 'who may run');
    const ro = await d.createUser({ name: 'pb-ro', roles: ['read-only'] }, '/tenants/pb/api/users');
    const roKey = await d.createKey(ro.id, '/tenants/pb/api/apikeys');
    const body = { incident: inc, inputs: { user: 'bob' } };
    const refused = await d.api<ErrorBody>('POST', '/tenants/pb/api/playbooks/triage/runs', body, { key: roKey });
    expect(refused.status).toBe(403);
    expect((await d.api('GET', '/tenants/pb/api/playbooks/runs', undefined, { key: roKey })).status).toBe(403);
    const admin = await d.createUser({ name: 'pb-admin', roles: ['admin'] }, '/tenants/pb/api/users');
    const adminKey = await d.createKey(admin.id, '/tenants/pb/api/apikeys');
    const started = await d.api<{ id: string }>('POST', '/tenants/pb/api/playbooks/triage/runs', body, {
      key: adminKey,
    });
    expect(started.status, started.raw).toBe(201);
    await runUntil('pb', started.body.id, 'completed');
  });
});
