/**
 * Who may write and run what a playbook run executes, end to end (main, host h1, tenant pa holding a shared playbook
 * that calls an integration): a customer read-write user may not write a local script or playbook (403); no local
 * playbook may take a shared one's name (409), and one shared later under a local one's name takes it (the local one
 * stays reachable by id); a starter without integrations:run may not run a playbook that calls
 * integrations (403) but may run one that does not; a run and its sub-playbooks start at most 50 sub-playbook runs;
 * `playbooks run --timeout` must be positive seconds (exit 2). A run whose outputs are more than main's relay carries
 * stays readable through main (its largest outputs left out and named, each readable alone), and a manual task's data
 * over a task output's 256 KiB is refused before anything changes.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Deployment } from '../harness/deployment.js';
import { runCli, until, type CliResult } from '../harness/processes.js';
import type { ErrorBody } from '../harness/api-shapes.js';

/** Calls an integration through a connection the tenant does not have: these tests never get as far as calling. */
const TRIAGE = JSON.stringify({
  name: 'triage',
  start: 'lookup',
  tasks: {
    lookup: { type: 'integration', integration: 'http', connection: 'svc', command: 'get', args: { path: '/' } },
  },
});

let d: Deployment;
/** A local content item's body for `POST /tenants/T/api/content`. */
const item = (type: string, name: string, body: unknown) => ({ type, name, body: JSON.stringify(body) });
let sharedId: string;

const cli = (args: string[]): Promise<CliResult> => runCli(args, d.env, 60_000);
const ok = async (args: string[]): Promise<CliResult> => {
  const r = await cli(args);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
  return r;
};

interface Run {
  id: string;
  status: string;
  playbook: { id: string };
  tasks: { id: string; status: string }[];
}
const showRun = async (tenant: string, id: string) =>
  (await ok(['playbooks', 'show-run', id, '--tenant', tenant, '--json'])).json as Run;
/** The run once it has stopped running (so a failure shows its error, not a timeout). */
const ended = (tenant: string, id: string, timeoutMs?: number) =>
  until(
    `run ${id} in ${tenant} no longer running`,
    async () => {
      const r = await showRun(tenant, id);
      return r.status !== 'running' && r.status !== 'waiting' ? r : undefined;
    },
    timeoutMs,
  );

async function incident(tenant: string, name: string): Promise<string> {
  const r = await d.api<{ id: string }>('POST', `/tenants/${tenant}/api/incidents`, {
    name,
    type: 'phish',
    severity: 2,
  });
  expect(r.status, r.raw).toBe(201);
  return r.body.id;
}

/** A playbook authored on main, published and shared to every tenant (label `all`), once pa holds it. */
async function share(name: string, body: string): Promise<string> {
  const args = ['content', 'create', '--type', 'playbook', '--name', name, '--labels', 'all', '--body', body, '--json'];
  const { id } = (await ok(args)).json as { id: string };
  await ok(['content', 'publish', id]);
  await ok(['content', 'share', id]);
  await until(`${name} shared to pa`, async () => {
    const r = await d.api<{ id: string }[]>('GET', '/tenants/pa/api/content?type=playbook');
    return r.status === 200 && r.body.some((i) => i.id === id);
  });
  return id;
}

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'h1');
  await d.startAgent('h1');
  await d.createTenant('pa', 'h1');
  sharedId = await share('triage', TRIAGE);
}, 240_000);
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('playbooks run --timeout', () => {
  it('--timeout that is no positive number of seconds exits 2 naming it, and starts nothing', async () => {
    const inc = await incident('pa', 'bad timeout');
    for (const t of ['abc', '-1', '0']) {
      const r = await cli([
        'playbooks',
        'run',
        'triage',
        '--tenant',
        'pa',
        '--incident',
        inc,
        '--wait',
        '--timeout',
        t,
      ]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`--timeout: "${t}" is not a positive number of seconds`);
    }
    const runs = await ok(['playbooks', 'runs', '--tenant', 'pa', '--incident', inc, '--json']);
    expect(runs.json).toEqual([]);
  });
});

describe('who may write what a run executes', () => {
  const SETTER = {
    name: 'setter',
    start: 'mark',
    tasks: { mark: { type: 'set-field', field: 'labels.m', value: 'x' } },
  };

  it('a customer read-write user cannot create or change a local script or playbook (403), only other content', async () => {
    const rw = await d.createUser({ name: 'pa-rw', roles: ['read-write'] }, '/tenants/pa/api/users');
    const key = await d.createKey(rw.id, '/tenants/pa/api/apikeys');
    for (const [type, body] of [
      ['playbook', SETTER],
      ['script', 'return 1;'],
    ] as const) {
      const r = await d.api<ErrorBody>('POST', '/tenants/pa/api/content', item(type, `rw-${type}`, body), { key });
      expect(r.status, r.raw).toBe(403);
      expect(r.body.error.code).toBe('ERR_CONTENT_RUNNABLE_FORBIDDEN');
    }
    const admins = await d.api<{ id: string }>('POST', '/tenants/pa/api/content', item('playbook', 'admins', SETTER));
    expect(admins.status, admins.raw).toBe(201);
    const changed = await d.api<ErrorBody>('PUT', `/tenants/pa/api/content/${admins.body.id}`, { body: '{}' }, { key });
    expect(changed.status).toBe(403);
    const removed = await d.api<ErrorBody>('DELETE', `/tenants/pa/api/content/${admins.body.id}`, undefined, { key });
    expect(removed.status).toBe(403);
    const stored = await d.api<{ body: string }>('GET', `/tenants/pa/api/content/${admins.body.id}`);
    expect(JSON.parse(stored.body.body)).toEqual(SETTER);
  });

  it("a local playbook may not take a shared one's name, by create or by rename (409)", async () => {
    const taken = await d.api<ErrorBody>('POST', '/tenants/pa/api/content', item('playbook', 'triage', SETTER));
    expect(taken.status, taken.raw).toBe(409);
    expect(taken.body.error).toMatchObject({ code: 'ERR_CONTENT_NAME_TAKEN' });
    const mine = await d.api<{ id: string }>('POST', '/tenants/pa/api/content', item('playbook', 'mine', SETTER));
    expect(mine.status, mine.raw).toBe(201);
    const renamed = await d.api<ErrorBody>('PUT', `/tenants/pa/api/content/${mine.body.id}`, { name: 'triage' });
    expect(renamed.status).toBe(409);
    // The name finds the shared playbook alone: a run of "triage" is not refused as ambiguous.
    const inc = await incident('pa', 'still triage');
    const run = await d.api<Run>('POST', '/tenants/pa/api/playbooks/triage/runs', { incident: inc });
    expect(run.status, run.raw).toBe(201);
    expect(run.body.playbook.id).toBe(sharedId);
  });

  it("a playbook shared later under a local one's name takes the name; the local one stays reachable by id", async () => {
    const local = await d.api<{ id: string }>('POST', '/tenants/pa/api/content', item('playbook', 'late', SETTER));
    expect(local.status, local.raw).toBe(201);
    const shared = await share('late', JSON.stringify({ ...SETTER, name: 'late' }));
    const inc = await incident('pa', 'late');
    const byName = await d.api<Run>('POST', '/tenants/pa/api/playbooks/late/runs', { incident: inc });
    expect(byName.status, byName.raw).toBe(201);
    expect(byName.body.playbook.id).toBe(shared);
    const byId = await d.api<Run>('POST', `/tenants/pa/api/playbooks/${local.body.id}/runs`, { incident: inc });
    expect(byId.status, byId.raw).toBe(201);
    expect(byId.body.playbook.id).toBe(local.body.id);
  });

  it('a starter without integrations:run cannot run a playbook that calls integrations (403), but one that does not', async () => {
    const role = await d.api('POST', '/tenants/pa/api/roles', {
      name: 'runner',
      permissions: ['incidents:read', 'playbooks:read', 'playbooks:run'],
    });
    expect(role.status, role.raw).toBe(201);
    const u = await d.createUser({ name: 'pa-runner', roles: ['runner'] }, '/tenants/pa/api/users');
    const key = await d.createKey(u.id, '/tenants/pa/api/apikeys');
    const inc = await incident('pa', 'who may integrate');
    const body = { incident: inc, inputs: { user: 'bob' } };
    const refused = await d.api<ErrorBody>('POST', '/tenants/pa/api/playbooks/triage/runs', body, { key });
    expect(refused.status, refused.raw).toBe(403);
    expect(refused.body.error.code).toBe('ERR_PLAYBOOK_FORBIDDEN');
    expect((await ok(['playbooks', 'runs', '--tenant', 'pa', '--incident', inc, '--json'])).json).toEqual([]);
    expect((await d.api('POST', '/tenants/pa/api/content', item('playbook', 'setter', SETTER))).status).toBe(201);
    const path = '/tenants/pa/api/playbooks/setter/runs';
    const started = await d.api<{ id: string }>('POST', path, { incident: inc }, { key });
    expect(started.status, started.raw).toBe(201);
    expect(await ended('pa', started.body.id)).toMatchObject({ status: 'completed' });

    // Through a sub-playbook too: the wrapper calls no integration itself, so it starts, and the call below fails it.
    const wrapper = { name: 'wrapper', start: 'sub', tasks: { sub: { type: 'playbook', playbook: 'triage' } } };
    expect((await d.api('POST', '/tenants/pa/api/content', item('playbook', 'wrapper', wrapper))).status).toBe(201);
    const wrapped = await d.api<{ id: string }>(
      'POST',
      '/tenants/pa/api/playbooks/wrapper/runs',
      { incident: inc },
      { key },
    );
    expect(wrapped.status, wrapped.raw).toBe(201);
    const failed = (await ended('pa', wrapped.body.id)) as Run & { error?: { task: string; code: string } };
    expect(failed).toMatchObject({ status: 'failed', error: { task: 'sub', code: 'ERR_PLAYBOOK_FORBIDDEN' } });
  });

  it('a run and its sub-playbooks start at most 50 sub-playbook runs: the 51st task fails the run', async () => {
    const tasks: Record<string, unknown> = {};
    for (let i = 0; i <= 50; i++)
      tasks[`c${i}`] = { type: 'playbook', playbook: 'setter', ...(i < 50 ? { next: `c${i + 1}` } : {}) };
    const fan = item('playbook', 'fan', { name: 'fan', start: 'c0', tasks });
    expect((await d.api('POST', '/tenants/pa/api/content', fan)).status).toBe(201);
    const inc = await incident('pa', 'fan out');
    const run = (await ok(['playbooks', 'run', 'fan', '--tenant', 'pa', '--incident', inc, '--json'])).json as Run;
    const done = await ended('pa', run.id, 120_000);
    expect(done).toMatchObject({ status: 'failed', error: { task: 'c50', code: 'ERR_PLAYBOOK_BUDGET' } });
    expect(done.tasks.filter((t) => t.status === 'done')).toHaveLength(50);
  });
});

describe('a run with large outputs', () => {
  it('stays readable through main: the largest outputs are left out and named, each readable alone', async () => {
    const manual = (next?: string) => ({ type: 'manual', prompt: 'paste the report', ...(next ? { next } : {}) });
    const body = { name: 'reports', start: 'm1', tasks: { m1: { ...manual('m2'), output: 'r1' }, m2: manual() } };
    expect((await d.api('POST', '/tenants/pa/api/content', item('playbook', 'reports', body))).status).toBe(201);
    const inc = await incident('pa', 'big reports');
    const started = await d.api<{ id: string }>('POST', '/tenants/pa/api/playbooks/reports/runs', { incident: inc });
    expect(started.status, started.raw).toBe(201);
    const run = started.body.id;
    const path = `/tenants/pa/api/playbooks/runs/${run}`;
    await until('m1 waits', async () => (await showRun('pa', run)).status === 'waiting');

    // Data past a task output's bound: 413 naming `data`, and the task still waits.
    const tooBig = await d.api<ErrorBody>('POST', `${path}/tasks/m1/complete`, { data: 'x'.repeat(300_000) });
    expect(tooBig.status, tooBig.raw).toBe(413);
    expect(tooBig.body.error.code).toBe('ERR_PLAYBOOK_OUTPUT_TOO_LARGE');
    expect(tooBig.body.error.message).toMatch(/^data: 300002 bytes of JSON; a task's output is at most 262144/);
    expect((await showRun('pa', run)).tasks).toContainEqual(expect.objectContaining({ id: 'm1', status: 'waiting' }));

    // Two reports of 200 KB: output, result and context would carry ~1 MB, more than the relay takes from a tenant.
    expect((await d.api('POST', `${path}/tasks/m1/complete`, { data: 'a'.repeat(200_000) })).status).toBe(200);
    const answer = await d.api('POST', `${path}/tasks/m2/complete`, { data: 'b'.repeat(200_000) });
    expect(answer.status, answer.raw.slice(0, 300)).toBe(200);
    expect(await ended('pa', run)).toMatchObject({ status: 'completed' });
    const last = await d.api<Run & { cut?: { path: string; read?: string }[] }>('GET', path);
    expect(last.status, last.raw.slice(0, 300)).toBe(200);
    expect(last.body.cut?.map((c) => c.path)).toContain('tasks[m1].output');
    expect(last.raw.length).toBeLessThan(600_000);
    // Each output left out is read alone.
    const read = last.body.cut!.find((c) => c.path === 'tasks[m1].output')!.read!;
    expect(read).toBe(`/api/v1/playbooks/runs/${run}/tasks/m1`);
    const one = await d.api<{ output: string; status: string }>('GET', `${path}/tasks/m1`);
    expect(one.status, one.raw.slice(0, 300)).toBe(200);
    expect(one.body).toMatchObject({ status: 'done' });
    expect(one.body.output).toHaveLength(200_000);
  });
});
