/**
 * The durable command outbox with real processes (at-least-once delivery, agents deduplicate):
 * commands queued for an offline agent survive SIGKILL of main and then run exactly once; after a graceful
 * main restart (exit 0, retry hint) the agent reconnects by itself; a command whose deadline passes while
 * its agent is offline expires and never runs. "Ran" is read from the agent's own log: one `command run`
 * line per real execution.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Deployment } from '../harness/deployment.js';
import { readLog, until } from '../harness/processes.js';

const AGENT = 'durable';

let d: Deployment;

interface CommandView {
  id: number;
  state: string;
  result: { pong?: boolean; agent?: string } | null;
  error: { code: string; message: string } | null;
  deadline: string;
}
interface HostView {
  name: string;
  status: string;
  pendingCommands: number;
}
interface LogLine {
  msg?: string;
  commandId?: number;
  code?: string;
  delayMs?: number;
}

beforeAll(async () => {
  d = await Deployment.create();
  await d.install('host', AGENT);
  await d.startAgent(AGENT);
});
afterAll(async () => {
  await d?.stop();
});
afterEach((ctx) => {
  if (ctx.task.result?.state === 'fail') console.error(d.logs());
});

async function agentLogLines(): Promise<LogLine[]> {
  return (await readLog(d.agentLog(AGENT)))
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as LogLine];
      } catch {
        return [];
      }
    });
}

/** Command ids the agent really executed, one entry per execution. */
async function executions(): Promise<number[]> {
  return (await agentLogLines()).filter((l) => l.msg === 'command run').map((l) => l.commandId!);
}

async function host(): Promise<HostView | undefined> {
  const r = await d.api<HostView[]>('GET', '/hosts');
  expect(r.status).toBe(200);
  return r.body.find((h) => h.name === AGENT);
}

async function command(id: number): Promise<CommandView> {
  const r = await d.api<CommandView>('GET', `/hosts/${AGENT}/commands/${id}`);
  expect(r.status).toBe(200);
  return r.body;
}

/** SIGTERM the agent (exit 0: its log is flushed) and wait until main shows it offline. */
async function stopAgent(): Promise<void> {
  expect(await d.agents.get(AGENT)!.proc!.stop('SIGTERM')).toBe(0);
  await until('agent offline on main', async () => (await host())?.status === 'offline');
}

describe('durable commands', () => {
  it('50 commands queued for an offline agent survive SIGKILL of main and run exactly once', async () => {
    const ping = await d.api<CommandView>('POST', `/hosts/${AGENT}/commands`, { command: 'ping' });
    expect(ping.status).toBe(200);
    expect(ping.body).toMatchObject({ state: 'done', result: { pong: true, agent: AGENT } });
    await stopAgent();

    const ids: number[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await d.api<CommandView>('POST', `/hosts/${AGENT}/commands`, { command: 'ping', wait: false });
      expect(r.status).toBe(202);
      expect(r.body.state).toBe('pending');
      ids.push(r.body.id);
    }
    expect(new Set(ids).size).toBe(50);
    expect((await host())?.pendingCommands).toBe(50);

    expect(await d.main!.stop('SIGKILL')).not.toBe(0);
    await d.startMain();
    // The queue is on disk, not in the killed process: still 50 pending before the agent is back.
    expect((await host())?.pendingCommands).toBe(50);
    await d.startAgent(AGENT);

    const done = await until(
      'all 50 commands done',
      async () => {
        const all = await Promise.all(ids.map(command));
        return all.every((c) => c.state !== 'pending') ? all : undefined;
      },
      60_000,
      250,
    );
    for (const c of done) {
      expect(c.state, `command ${c.id}`).toBe('done');
      expect(c.result?.pong, `command ${c.id}`).toBe(true);
    }
    expect((await host())?.pendingCommands).toBe(0);

    // Stop the agent so its log is complete (pino writes asynchronously), then count executions.
    await stopAgent();
    const ran = await executions();
    for (const id of ids)
      expect(
        ran.filter((x) => x === id),
        `executions of command ${id}`,
      ).toHaveLength(1);
    await d.startAgent(AGENT);
    await until('agent online again', async () => (await host())?.status === 'online');
  });

  it('after a graceful main restart (SIGTERM, exit 0) the agent reconnects by itself', async () => {
    expect((await host())?.status).toBe('online');
    const before = (await agentLogLines()).length;
    expect(await d.main!.stop('SIGTERM')).toBe(0);
    await d.startMain();
    await until('agent online after the restart', async () => (await host())?.status === 'online', 60_000, 250);
    const r = await d.api<CommandView>('POST', `/hosts/${AGENT}/commands`, { command: 'ping', timeoutMs: 30_000 });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ state: 'done', result: { pong: true } });
    // Main said "come back later" with a hint (1–6 s), and the agent waited that long rather than hammering.
    const after = await until('the shutdown hint in the agent log', async () => {
      const lines = (await agentLogLines()).slice(before);
      return lines.some((l) => l.msg === 'reconnecting after backoff') ? lines : undefined;
    });
    expect(after.find((l) => l.msg === 'main sent an error')?.code).toBe('ERR_SHUTTING_DOWN');
    const firstDelay = after.find((l) => l.msg === 'reconnecting after backoff')!.delayMs!;
    expect(firstDelay).toBeGreaterThanOrEqual(1000);
    expect(firstDelay).toBeLessThan(6000);
  });

  it('a command whose deadline passes while its agent is offline expires with ERR_COMMAND_EXPIRED and never runs', async () => {
    await stopAgent();
    const r = await d.api<CommandView>('POST', `/hosts/${AGENT}/commands`, {
      command: 'ping',
      wait: false,
      deadline: '1s',
    });
    expect(r.status).toBe(202);
    expect(r.body.state).toBe('pending');
    // The point of the test is time passing beyond the deadline; wait for the clock, not for an event.
    const bringBackAt = Date.parse(r.body.deadline) + 1000;
    await new Promise((res) => setTimeout(res, Math.max(0, bringBackAt - Date.now())));
    await d.startAgent(AGENT);
    const c = await until('the command leaves pending', async () => {
      const x = await command(r.body.id);
      return x.state !== 'pending' ? x : undefined;
    });
    expect(c.state).toBe('expired');
    expect(c.error?.code).toBe('ERR_COMMAND_EXPIRED');
    expect((await host())?.pendingCommands).toBe(0);
    await stopAgent();
    expect(await executions()).not.toContain(r.body.id);
  });

  it('a deadline that is not a usable duration is refused with 400 and queues nothing', async () => {
    for (const deadline of ['soon', '0s', '9999999999999999999d']) {
      const r = await d.api<{ error: { code: string } }>('POST', `/hosts/${AGENT}/commands`, {
        command: 'ping',
        wait: false,
        deadline,
      });
      expect(r.status, deadline).toBe(400);
      expect(r.body.error.code, deadline).toBe('ERR_BAD_DURATION');
    }
    expect((await host())?.pendingCommands).toBe(0);
  });
});
