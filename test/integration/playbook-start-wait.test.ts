/**
 * `POST /api/v1/playbooks/:id/runs?wait=MS` on a real tenant (real LevelDB and tenant app, requests signed as main
 * signs them): the start's answer is held until the run stops being driven, so it carries the run as it ended (or
 * waits on an analyst); without `?wait=` the answer is the run just stored, as before (a first task that may act shown
 * `running`, any other with no state yet); a bad `wait` is a 400 naming it, and starts nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { openEventTenant, type EventTenant } from '../harness/event-tenant.js';

interface Run {
  id: string;
  status: string;
  current: string | null;
  tasks: { id: string; status: string; startedAt: string }[];
  context: Record<string, unknown>;
}
interface Audit {
  action: string;
  target?: string;
  outcome: string;
  status?: number;
  actor: string;
  detail?: Record<string, unknown>;
}
interface ErrorBody {
  error: { code: string; message: string };
}

const FIVE = `name: five
inputs:
  vip: {default: false}
start: check
tasks:
  check:
    type: condition
    branches: [{when: {left: "\${inputs.vip}", op: eq, right: true}, next: escalate}]
    else: label
  escalate: {type: set-field, field: severity, value: 4, next: close}
  label: {type: set-field, field: labels.triage, value: routine, next: close}
  close: {type: set-field, field: status, value: closed}
`;
const ASK = 'name: ask\nstart: ask\ntasks:\n  ask: {type: manual, prompt: "ok?"}\n';
/** Its first task may act: the batch storing the run marks it running (docs/playbooks.md#durability). */
const ACTS = 'name: acts\nstart: call\ntasks:\n  call: {type: integration, instance: nosuch, command: get}\n';
const outer = (sub: string) =>
  `name: outer-${sub}\nstart: sub\ntasks:\n  sub: {type: playbook, playbook: ${sub}, next: close}\n` +
  '  close: {type: set-field, field: status, value: closed}\n';

let t: EventTenant;
const incident = async (): Promise<string> => {
  const r = await t.call<{ id: string }>('POST', '/api/v1/incidents', { name: 'wait', type: 'phish', severity: 2 });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.id;
};

beforeAll(async () => {
  t = await openEventTenant('pbwait');
  for (const [name, body] of [
    ['five', FIVE],
    ['ask', ASK],
    ['outer-five', outer('five')],
    ['outer-ask', outer('ask')],
    ['acts', ACTS],
  ]) {
    const r = await t.call('POST', '/api/v1/content', { type: 'playbook', name, body });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
  }
});

afterAll(async () => {
  await t?.close();
  if (t) await rm(t.dir, { recursive: true, force: true });
});

describe('POST …/playbooks/:id/runs?wait=', () => {
  it('answers 201 with the run ended, its tasks done and the incident changed', async () => {
    const id = await incident();
    const r = await t.call<Run>('POST', '/api/v1/playbooks/five/runs?wait=5000', { incident: id });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body.status).toBe('completed');
    expect(r.body.current).toBeNull();
    // A list in the order the tasks started (the condition's branch `label` is written after `escalate`).
    expect(r.body.tasks.map((s) => s.id)).toEqual(['check', 'label', 'close']);
    expect(r.body.tasks.every((s) => s.status === 'done')).toBe(true);
    const inc = await t.call<{ status: string; labels: Record<string, string> }>('GET', `/api/v1/incidents/${id}`);
    expect(inc.body.status).toBe('closed');
    expect(inc.body.labels.triage).toBe('routine');
    // What the answer says is what is stored.
    const read = await t.call<Run>('GET', `/api/v1/playbooks/runs/${r.body.id}`);
    expect(read.body).toEqual(r.body);
    // One audit line for the start (written in the batch that stored the run), naming the run.
    const audit = await t.call<Audit[]>('GET', '/api/v1/audit?action=playbook.run&limit=1000');
    const lines = audit.body.filter((a) => a.detail?.run === r.body.id);
    expect(lines).toEqual([
      expect.objectContaining({
        action: 'playbook.run',
        target: 'five',
        outcome: 'ok',
        status: 201,
        actor: 'admin (via main)',
      }),
    ]);
    expect(lines[0].detail).toEqual({ incident: id, run: r.body.id });
  });

  it('answers a run that waits on an analyst as waiting', async () => {
    const r = await t.call<Run>('POST', '/api/v1/playbooks/ask/runs?wait=5000', { incident: await incident() });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(r.body).toMatchObject({ status: 'waiting', current: 'ask' });
  });

  it("follows a run waiting on its sub-playbook's run until the run above goes on or that one waits", async () => {
    const done = await t.call<Run>('POST', '/api/v1/playbooks/outer-five/runs?wait=5000', {
      incident: await incident(),
    });
    expect(done.status, JSON.stringify(done.body)).toBe(201);
    expect(done.body).toMatchObject({
      status: 'completed',
      tasks: [
        { id: 'sub', status: 'done' },
        { id: 'close', status: 'done' },
      ],
    });
    const asks = await t.call<Run>('POST', '/api/v1/playbooks/outer-ask/runs?wait=5000', {
      incident: await incident(),
    });
    expect(asks.body).toMatchObject({ status: 'waiting', current: 'sub', tasks: [{ id: 'sub', status: 'waiting' }] });
  });

  it('without ?wait= (or ?wait=0) answers the run just stored, still running, a first acting task marked', async () => {
    for (const q of ['', '?wait=0']) {
      const r = await t.call<Run>('POST', `/api/v1/playbooks/five/runs${q}`, { incident: await incident() });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      expect(r.body).toMatchObject({ status: 'running', current: 'check', tasks: expect.any(Array) });
      // A first condition has no state yet; a first task that may act is marked running in the start's batch.
      expect(r.body.tasks).toEqual([]);
      const acts = await t.call<Run>('POST', `/api/v1/playbooks/acts/runs${q}`, { incident: await incident() });
      expect(acts.body).toMatchObject({
        status: 'running',
        current: 'call',
        tasks: [{ id: 'call', status: 'running' }],
      });
    }
  });

  it('refuses a bad wait with 400 naming `wait`, and starts nothing', async () => {
    const id = await incident();
    // (`wait=` with no value is no wait at all: an empty query value is absent, docs/rest.md.)
    for (const bad of ['abc', '-1', '1.5', '1234567', '1e3']) {
      const r = await t.call<ErrorBody>('POST', `/api/v1/playbooks/five/runs?wait=${bad}`, { incident: id });
      expect(r.status, `wait=${bad}: ${JSON.stringify(r.body)}`).toBe(400);
      expect(r.body.error.code).toBe('ERR_BAD_REQUEST');
      expect(r.body.error.message).toMatch(/\bwait\b/);
    }
    // Refused requests are audited as failed, each with a line of its own (written after the answer: waited for).
    let refused = 0;
    for (let i = 0; i < 50 && refused < 5; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 20));
      const audit = await t.call<Audit[]>('GET', '/api/v1/audit?limit=20');
      refused = audit.body.filter((a) => a.status === 400 && a.target?.includes('wait=')).length;
    }
    expect(refused).toBe(5);
    const runs = await t.call<Run[]>('GET', `/api/v1/playbooks/runs?incident=${id}`);
    expect(runs.body).toEqual([]);
    const timeline = await t.call<unknown[]>('GET', `/api/v1/incidents/${id}/timeline`);
    expect(timeline.body).toEqual([]);
  });
});
