/**
 * Durable commands with real processes: commands queued for an offline agent survive a SIGKILL of main
 * and run exactly once when the agent returns; graceful restarts bring agents back on their own;
 * commands past their deadline expire instead of running late.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { Deployment } from '../harness/deployment.js';
import { until } from '../harness/processes.js';

let d: Deployment;
interface Cmd { id: number; state: string; result: { pong?: boolean } | null; error: { code: string } | null }

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', 'ob');
  await d.startAgent('ob');
});
afterAll(async () => { await d?.stop(); });
afterEach((ctx) => { if (ctx.task.result?.state === 'fail') console.error(d.logs()); });

/** Ids of commands the agent really executed, from its log (one "command run" line per execution). */
async function executions(): Promise<number[]> {
  const text = await readFile(d.agentLog('ob'), 'utf8');
  return text.split('\n').filter((l) => l.includes('"msg":"command run"')).map((l) => (JSON.parse(l) as { commandId: number }).commandId);
}

describe('durable commands', () => {
  it('50 commands queued for an offline agent survive SIGKILL of main and run exactly once', async () => {
    expect((await d.cli(['hosts', 'ping', 'ob', '--json'])).code).toBe(0);
    expect(await d.agents.get('ob')!.proc!.stop()).toBe(0);
    await until('agent offline', async () => (await d.api<{ status: string }>('GET', '/hosts/ob')).body.status === 'offline');
    const ids: number[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await d.api<Cmd>('POST', '/hosts/ob/commands', { command: 'ping', wait: false });
      expect(r.status).toBe(202);
      expect(r.body.state).toBe('pending');
      ids.push(r.body.id);
    }
    expect((await d.api<{ pendingCommands: number }>('GET', '/hosts/ob')).body.pendingCommands).toBe(50);
    await d.main!.stop('SIGKILL');
    await d.startMain();
    await d.startAgent('ob');
    const done = await until('all 50 done', async () => {
      const all = await Promise.all(ids.map((id) => d.api<Cmd>('GET', `/hosts/ob/commands/${id}`)));
      return all.every((r) => r.body.state === 'done') ? all.map((r) => r.body) : undefined;
    }, 60_000, 250);
    for (const c of done) expect(c.result?.pong).toBe(true);
    const ran = await executions();
    for (const id of ids) expect(ran.filter((x) => x === id), `command ${id}`).toHaveLength(1);
    expect((await d.api<{ pendingCommands: number }>('GET', '/hosts/ob')).body.pendingCommands).toBe(0);
  });

  it('after a graceful main restart (exit 0) the agent comes back by itself', async () => {
    expect(await d.main!.stop('SIGTERM')).toBe(0);
    await d.startMain();
    await until('agent online again', async () => (await d.api<{ status: string }>('GET', '/hosts/ob')).body.status === 'online', 60_000, 250);
    const r = await d.cli(['hosts', 'ping', 'ob', '--json']);
    expect(r.json).toMatchObject({ state: 'done' });
  });

  it('a command whose deadline passes while the agent is offline expires and never runs', async () => {
    await d.agents.get('ob')!.proc!.stop();
    await until('agent offline', async () => (await d.api<{ status: string }>('GET', '/hosts/ob')).body.status === 'offline');
    const r = await d.api<Cmd>('POST', '/hosts/ob/commands', { command: 'ping', wait: false, deadline: '1s' });
    expect(r.status).toBe(202);
    await new Promise((res) => setTimeout(res, 1500)); // let the deadline pass: the point of the test
    await d.startAgent('ob');
    const c = await until('expired', async () => { const x = (await d.api<Cmd>('GET', `/hosts/ob/commands/${r.body.id}`)).body; return x.state !== 'pending' ? x : undefined; }, 30_000);
    expect(c.state).toBe('expired');
    expect(c.error?.code).toBe('ERR_COMMAND_EXPIRED');
    expect(await executions()).not.toContain(r.body.id);
  });

  it('a command for an unknown host is a 404 and queues nothing', async () => {
    const r = await d.api<{ error: { code: string } }>('POST', '/hosts/nobody/commands', { command: 'ping' });
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('ERR_AGENT_NOT_FOUND');
  });
});
