/**
 * The catalogue of host commands (common/host-commands.ts) ties main and the host together: the host
 * answers exactly the catalogued commands, what a user may run on a host is durable (it goes through the
 * outbox), the host's command runner as agent/agent.ts builds it stores the result of each durable
 * command and of no volatile one, and main sends exactly the volatile ones as RPCs (a durable one does
 * not compile there). The runner's LevelDB in a temp dir is the one I/O, as in command-runner.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeEnvelope, encodeEnvelope, type EnvelopeInit } from '#common/codec.js';
import { silentLogger } from '#common/logging.js';
import {
  HOST_COMMANDS,
  VOLATILE_HOST_COMMANDS,
  type HostCommand,
  type VolatileHostCommand,
} from '#common/host-commands.js';
import { CommandRunner, type CommandHandler } from '../../agent/command-runner.js';
import { HostRole } from '../../agent/host/host-role.js';
import { AGENT_COMMANDS } from '../../main/http/routes-agents.js';
import { RpcClient } from '../../main/agents/rpc.js';

const NAMES = Object.keys(HOST_COMMANDS) as HostCommand[];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe('host command catalogue', () => {
  it('a host answers exactly the catalogued commands: the host role its own, every agent ping, sysinfo and agent.upgrade', () => {
    const role = new HostRole('/nonexistent/tenants', '/nonexistent', silentLogger(), { tenantUsers: false });
    const everyAgent = ['ping', 'sysinfo', 'agent.upgrade'];
    expect([...Object.keys(role.handlers()), ...everyAgent].sort()).toEqual([...NAMES].sort());
  });

  it('what a user may run on a host goes through the outbox: durable', () => {
    for (const name of AGENT_COMMANDS.host) expect(HOST_COMMANDS[name as HostCommand], name).toBe('durable');
  });

  it("the host's runner stores the result of each durable command and of no volatile one", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'host-commands-'));
    dirs.push(dir);
    const runs = new Map<string, number>();
    const count: CommandHandler = async (_args, env) => {
      runs.set(env.command!.name!, (runs.get(env.command!.name!) ?? 0) + 1);
      return null;
    };
    const runner = new CommandRunner(
      join(dir, 'state'),
      Object.fromEntries(NAMES.map((n) => [n, count])),
      silentLogger(),
      VOLATILE_HOST_COMMANDS,
    );
    await runner.open();
    try {
      for (const [i, name] of NAMES.entries()) {
        // The same id twice: main re-sending after a reconnect (for a durable command, it does).
        const env = decodeEnvelope(
          encodeEnvelope({
            id: i + 1,
            tenant: 'acme',
            command: { name, args: Buffer.from('{}'), deadlineMs: Date.now() + 60_000 },
          }),
        );
        await runner.handle(env);
        await runner.handle(env);
      }
    } finally {
      await runner.close();
    }
    expect(Object.fromEntries(runs)).toEqual(
      Object.fromEntries(NAMES.map((n) => [n, HOST_COMMANDS[n] === 'durable' ? 1 : 2])),
    );
  });

  it('main sends exactly the volatile commands as RPCs, with ids of the RPC range', () => {
    const sent: EnvelopeInit[] = [];
    const rpc = new RpcClient((_agent, env) => {
      sent.push(env);
      return true;
    });
    const volatile = NAMES.filter((n): n is VolatileHostCommand => HOST_COMMANDS[n] === 'volatile');
    expect(new Set(volatile)).toEqual(VOLATILE_HOST_COMMANDS);
    for (const name of volatile) void rpc.call('hst_1', 'acme', name, {}, 60_000).catch(() => undefined);
    rpc.failAgent('hst_1');
    expect(sent.map((e) => e.command?.name)).toEqual(volatile);
    for (const e of sent) expect(RpcClient.owns(Number(e.id))).toBe(true);
    // @ts-expect-error a durable command is never an RPC: main puts it in the outbox
    const _durableAsRpc = () => rpc.call('hst_1', 'acme', 'tenant.create', {}, 1);
  });
});
