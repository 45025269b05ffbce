/**
 * Testing a playbook end to end with real processes (main, host h1, tenant ta) and the local HTTP fake of the
 * playbook tests. Version 1 of a playbook is published, shared and run once on a real incident (so the tenant has a
 * run and a timeline to compare); version 2 is left a draft. `playbooks test` runs version 2 in ta on an incident
 * from a file (one that is not JSON, or not an object, is exit 2 naming where): the fake is called with ta's
 * credential, the result shows v2's set-field on the test incident and stops at the manual task, and the tenant's
 * store is unchanged (incidents, runs, the timeline, the real incident).
 * The test is audited on main (`content.test`) and in the tenant (`playbook.test`), and its integration calls
 * (`integration.run`) name the test and its user, never a run; a failed test prints its error once; a customer
 * read-only user cannot test.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Deployment } from '../harness/deployment.js';
import { deployWithService, FakeService } from '../harness/playbook-service.js';
import { runCli, until, type CliResult } from '../harness/processes.js';

const playbook = (version: string) => `
name: probe
start: lookup
tasks:
  lookup:
    type: integration
    integration: http
    connection: svc
    command: get
    args: {path: "/lookup/\${incident.name}", query: {incident: "\${incident.id}"}}
    output: who
    next: mark
  mark: {type: set-field, field: labels.probed, value: ${version}, next: approve}
  approve: {type: manual, prompt: "act?", next: act}
  act:
    type: integration
    integration: http
    connection: svc
    command: request
    args: {method: POST, path: /act, query: {incident: "\${incident.id}"}}
`;

let d: Deployment;
let svc: FakeService;
let dir: string;
let id: string;
let real: string;
const token = `tok-ta-${randomBytes(12).toString('hex')}`;

const cli = (args: string[], stdin?: string): Promise<CliResult> => runCli(args, d.env, 60_000, stdin);
const ok = async (args: string[], stdin?: string): Promise<CliResult> => {
  const r = await cli(args, stdin);
  expect(r.code, `${args.join(' ')}: ${r.stdout}${r.stderr}`).toBe(0);
  return r;
};

interface TestResult {
  status: string;
  current: string | null;
  tasks: { id: string; status: string; result?: unknown; output?: unknown }[];
  incident: { id: string; name: string; labels?: Record<string, string> };
}

/** The one real run, on the real incident. */
async function realRun(): Promise<{ id: string }> {
  return (await d.api<{ id: string }[]>('GET', `/tenants/ta/api/playbooks/runs?incident=${real}`)).body[0];
}

/** What a test must leave as it was: the tenant's incidents, runs, and the real incident with its timeline. */
async function tenantState() {
  const incidents = await d.api<unknown[]>('GET', '/tenants/ta/api/incidents?limit=1000');
  const runs = await d.api<unknown[]>('GET', '/tenants/ta/api/playbooks/runs?limit=1000');
  const timeline = await d.api<unknown[]>('GET', `/tenants/ta/api/incidents/${real}/timeline`);
  const incident = await d.api<unknown>('GET', `/tenants/ta/api/incidents/${real}`);
  return { incidents: incidents.body, runs: runs.body, timeline: timeline.body, incident: incident.body };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'palisade-pbtest-'));
  svc = new FakeService();
  await svc.start();
  d = await deployWithService(svc, { ta: token });
  const create = ['content', 'create', '--type', 'playbook', '--name', 'probe', '--labels', 'all'];
  id = ((await ok([...create, '--body', playbook('v1'), '--json'])).json as { id: string }).id;
  await ok(['content', 'publish', id]);
  await ok(['content', 'share', id]);
  await until('probe shared to ta', async () => {
    const r = await d.api<{ id: string }[]>('GET', '/tenants/ta/api/content?type=playbook');
    return r.status === 200 && r.body.some((i) => i.id === id);
  });
  real = (await d.api<{ id: string }>('POST', '/tenants/ta/api/incidents', { name: 'bob', type: 'phish', severity: 2 }))
    .body.id;
  const run = await d.api<{ id: string }>('POST', `/tenants/ta/api/playbooks/${id}/runs`, { incident: real });
  expect(run.status, run.raw).toBe(201);
  await until('the real run waits', async () => {
    const r = await d.api<{ status: string }>('GET', `/tenants/ta/api/playbooks/runs/${run.body.id}`);
    return r.body.status === 'waiting';
  });
  await ok(['content', 'update', id, '--body', playbook('v2')]); // a draft: never published
}, 240_000);
afterAll(async () => {
  await d?.stop();
  await svc?.close();
  rmSync(dir, { recursive: true, force: true });
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

describe('playbooks test', () => {
  it("runs the latest draft with the tenant's connection and changes nothing in the tenant", async () => {
    const before = await tenantState();
    expect(before.runs).toHaveLength(1);
    expect(before.timeline.length).toBeGreaterThan(0);
    const file = join(dir, 'incident.json');
    writeFileSync(file, JSON.stringify({ name: 'alice', type: 'phish', severity: 3 }));

    const r = (await ok(['playbooks', 'test', id, '--tenant', 'ta', '--incident-file', file, '--json']))
      .json as TestResult;
    expect(r).toMatchObject({ status: 'waiting', current: 'approve' });
    // Tasks as a run shows them: a list in the order they started, `result` being the output (kept as `output`).
    const task = (t: string) => r.tasks.find((x) => x.id === t);
    expect(r.tasks.map((t) => t.id)).toEqual(['lookup', 'mark', 'approve']);
    expect(task('lookup')).toMatchObject({ status: 'done', result: { body: { vip: true } }, output: { body: {} } });
    expect(task('mark')).toMatchObject({ status: 'done', result: { 'labels.probed': 'v2' } });
    expect(r.incident).toMatchObject({ name: 'alice', labels: { probed: 'v2' } });
    expect(svc.calls('/lookup/alice', r.incident.id).map((c) => c.authorization)).toEqual([`Bearer ${token}`]);
    expect(svc.calls('/act', r.incident.id)).toHaveLength(0);

    expect(await tenantState()).toEqual(before);
    const text = await ok(['playbooks', 'test', id, '--tenant', 'ta']);
    expect(text.stdout).toContain(`test of ${id} in ta: waiting at approve (nothing was stored)`);
    expect(await tenantState()).toEqual(before);
  });

  it('an --incident-file that cannot be read is exit 2 with one line, before anything is sent', async () => {
    const before = svc.seen.length;
    const missing = join(dir, 'missing.json');
    const r = await cli(['playbooks', 'test', id, '--tenant', 'ta', '--incident-file', missing]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`--incident-file ${missing}: ENOENT`);
    expect(r.stderr).toContain('ERR_CLI_BAD_FILE');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const json = await cli(['playbooks', 'test', id, '--tenant', 'ta', '--incident-file', missing, '--json']);
    expect(json.code).toBe(2);
    expect((json.json as { error: { code: string; field?: string } }).error).toMatchObject({
      code: 'ERR_CLI_BAD_FILE',
    });
    expect(svc.seen.length).toBe(before);
  });

  it('an --incident-file that is not JSON, or not an object, is exit 2 naming the file and where', async () => {
    const before = svc.seen.length;
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{"name": "alice",\n}');
    const r = await cli(['playbooks', 'test', id, '--tenant', 'ta', '--incident-file', file]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(`--incident-file ${file}: is not JSON: `);
    expect(r.stderr).toContain('(line 2 column 1)');
    expect(r.stderr).toContain('(ERR_CLI_BAD_FILE)');
    writeFileSync(file, '[{"name": "alice"}]');
    const list = await cli(['playbooks', 'test', id, '--tenant', 'ta', '--incident-file', file]);
    expect(list.code).toBe(2);
    expect(list.stderr).toContain(`--incident-file ${file}: must be a JSON object (name, type`);
    expect(list.stderr).toContain('not an array (ERR_CLI_BAD_FILE)');
    expect(svc.seen.length).toBe(before);
  });

  it('a failed test exits 1 and prints its error once', async () => {
    const body = playbook('v1').replace('connection: svc', 'connection: nosuch');
    const create = ['content', 'create', '--type', 'playbook', '--name', 'probe-broken', '--body', body, '--json'];
    const broken = ((await ok(create)).json as { id: string }).id;
    const json = await cli(['playbooks', 'test', broken, '--tenant', 'ta', '--json']);
    expect(json.code, json.stdout + json.stderr).toBe(1);
    const { error } = json.json as { error: { task: string; code: string; message: string } };
    expect(error.task).toBe('lookup');
    const text = await cli(['playbooks', 'test', broken, '--tenant', 'ta']);
    expect(text.code).toBe(1);
    expect(text.stdout.split(`${error.message} (${error.code})`)).toHaveLength(2);
    expect(text.stdout).toContain(`failed in lookup: ${error.message} (${error.code})\n  lookup: failed\n`);
  });

  it('the real run waiting on its manual task shows a next: hint that names the tenant', async () => {
    const { id: run } = await realRun();
    const shown = await ok(['playbooks', 'show-run', run, '--tenant', 'ta']);
    expect(shown.stdout).toContain(`next: palisade playbooks complete-task ${run} approve --tenant ta\n`);
  });

  it('takes the playbook by name as `run` does; a bad run id is exit 2 with one line saying what they look like', async () => {
    const byName = (await ok(['playbooks', 'test', 'probe', '--tenant', 'ta', '--json'])).json as TestResult;
    expect(byName).toMatchObject({ status: 'waiting', current: 'approve' });
    const none = await cli(['playbooks', 'test', 'no-such-playbook', '--tenant', 'ta']);
    expect(none.code, none.stderr).toBe(2);
    expect(none.stderr).toContain('no playbook item named "no-such-playbook"');
    const bad = await cli(['playbooks', 'show-run', 'nosuch', '--tenant', 'ta']);
    expect(bad.code, bad.stderr).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain(
      "(they look like run_000000000012); list them with 'palisade playbooks runs --tenant ta'",
    );
  });

  it('is audited on main and in the tenant', async () => {
    const main = await d.api<{ action: string; target: string; detail?: Record<string, unknown> }[]>(
      'GET',
      '/audit?action=content.test&limit=10',
    );
    expect(main.body[0]).toMatchObject({ target: id, detail: { tenant: 'ta', version: 2, status: 'waiting' } });
    const tenant = await d.api<{ action: string; target: string }[]>(
      'GET',
      '/tenants/ta/api/audit?action=playbook.test&limit=10',
    );
    expect(tenant.body.map((e) => e.target)).toContain(id);
    // The tests' integration calls name the test and its user; only the real run's call names a run.
    const calls = await d.api<{ actor: string; target: string }[]>(
      'GET',
      '/tenants/ta/api/audit?action=integration.run&limit=50',
    );
    const [byRuns, byTests] = [/^playbook run run_/, /^playbook test by \S/].map((re) =>
      calls.body.filter((e) => re.test(e.actor)),
    );
    expect(byRuns.map((e) => e.actor)).toEqual([`playbook run ${(await realRun()).id}`]);
    expect(byTests.length).toBeGreaterThanOrEqual(3);
    expect(byRuns.length + byTests.length).toBe(calls.body.length);
  });

  it('a customer read-only user can neither test nor start a run', async () => {
    const ro = await d.createUser({ name: 'ta-ro', roles: ['read-only'] }, '/tenants/ta/api/users');
    const key = await d.createKey(ro.id, '/tenants/ta/api/apikeys');
    const before = svc.seen.length;
    const test = await d.api('POST', `/content/${id}/test`, { tenant: 'ta' }, { key });
    expect(test.status).toBe(403);
    const direct = await d.api(
      'POST',
      '/tenants/ta/api/playbooks/test',
      { playbook: { id, name: 'probe', version: 2, body: playbook('v2') } },
      { key },
    );
    expect(direct.status).toBe(403);
    const run = await d.api('POST', `/tenants/ta/api/playbooks/${id}/runs`, { incident: real }, { key });
    expect(run.status).toBe(403);
    expect(svc.seen.length).toBe(before);
  });
});
