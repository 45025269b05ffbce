/**
 * The agent's command runner (agent/command-runner.ts): effectively-once execution over main's
 * at-least-once delivery, on a real LevelDB in a temp dir. Frames go through the real codec, as they
 * arrive from main.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeEnvelope, encodeEnvelope, parseJsonBytes, type Envelope, type EnvelopeInit } from '#common/codec.js';
import { silentLogger } from '#common/logging.js';
import { CommandRunner, TypedResult } from '../../agent/command-runner.js';

const dirs: string[] = [];
const open: CommandRunner[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((r) => r.close()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const cmd = (id: number, name: string, args: unknown = {}, deadlineMs = Date.now() + 60_000): Envelope =>
  decodeEnvelope(encodeEnvelope({ id, command: { name, args: Buffer.from(JSON.stringify(args)), deadlineMs } }));

/** A runner whose handlers count their real executions; `count` answers a fresh number each run. */
async function runner(path?: string, volatile?: Set<string>) {
  let dir = path;
  if (!dir) {
    const tmp = await mkdtemp(join(tmpdir(), 'runner-'));
    dirs.push(tmp);
    dir = join(tmp, 'state');
  }
  let calls = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const r = new CommandRunner(
    dir,
    {
      count: async () => ({ n: ++calls }),
      echo: async (args) => {
        calls++;
        return args;
      },
      boom: async () => {
        calls++;
        throw new Error('it broke');
      },
      /** Runs until the test releases it: makes "a duplicate arrives while the first still runs" certain. */
      gated: async () => {
        const n = ++calls;
        await gate;
        return { n };
      },
      /** Answers as a relayed request does: a RelayReply in Result.relay, its body bytes. */
      typed: async () => {
        calls++;
        return new TypedResult({
          relay: { status: 201, contentType: 'application/json', body: Buffer.from([0, 0xff]) },
        });
      },
    },
    silentLogger(),
    volatile,
  );
  await r.open();
  open.push(r);
  return { r, path: dir, calls: () => calls, release };
}

const value = (reply: EnvelopeInit) => parseJsonBytes(reply.result?.value as Uint8Array);

describe('command runner', () => {
  it('the same command id delivered twice in sequence runs once; both replies carry the same result', async () => {
    const { r, calls } = await runner();
    const a = await r.handle(cmd(1, 'count'));
    const b = await r.handle(cmd(1, 'count'));
    expect(a.replyTo).toBe(1);
    expect(b.replyTo).toBe(1);
    expect(a.result?.ok).toBe(true);
    expect(value(a)).toEqual({ n: 1 });
    expect(value(b)).toEqual({ n: 1 });
    expect(calls()).toBe(1);
    expect(r.executions).toBe(1);
    // A different id is a different command and runs.
    expect(value(await r.handle(cmd(2, 'count')))).toEqual({ n: 2 });
  });

  it('the same command id delivered concurrently runs once; both replies carry the same result', async () => {
    const { r, calls, release } = await runner();
    const both = Promise.all([r.handle(cmd(3, 'gated')), r.handle(cmd(3, 'gated')), r.handle(cmd(3, 'gated'))]);
    release();
    const replies = await both;
    for (const reply of replies) {
      expect(reply.replyTo).toBe(3);
      expect(value(reply)).toEqual({ n: 1 });
    }
    expect(calls()).toBe(1);
    // …and a later re-delivery is answered from the store.
    expect(value(await r.handle(cmd(3, 'gated')))).toEqual({ n: 1 });
    expect(calls()).toBe(1);
  });

  it('remembers results across closing and reopening on the same directory', async () => {
    const first = await runner();
    expect(value(await first.r.handle(cmd(4, 'echo', { x: 'first' })))).toEqual({ x: 'first' });
    await first.r.close();
    await first.r.close(); // close is idempotent enough to be called twice by a shutdown path
    const second = await runner(first.path);
    const again = await second.r.handle(cmd(4, 'echo', { x: 'second' }));
    expect(again.replyTo).toBe(4);
    expect(value(again)).toEqual({ x: 'first' });
    expect(second.calls()).toBe(0);
    expect(second.r.executions).toBe(0);
  });

  it('answers a command past its deadline with ERR_COMMAND_EXPIRED without running it, also on re-delivery', async () => {
    const { r, calls } = await runner();
    const reply = await r.handle(cmd(5, 'count', {}, Date.now() - 1));
    expect(reply.replyTo).toBe(5);
    expect(reply.result).toMatchObject({ ok: false, errorCode: 'ERR_COMMAND_EXPIRED' });
    const again = await r.handle(cmd(5, 'count', {}, Date.now() + 60_000));
    expect(again.result).toMatchObject({ ok: false, errorCode: 'ERR_COMMAND_EXPIRED' });
    expect(calls()).toBe(0);
  });

  it('answers an unknown command name with ERR_COMMAND_UNKNOWN, including inherited object keys', async () => {
    const { r } = await runner();
    for (const [id, name] of [
      [6, 'nope'],
      [7, 'constructor'],
      [8, '__proto__'],
      [9, 'toString'],
      [10, ''],
    ] as const) {
      const reply = await r.handle(cmd(id, name));
      expect(reply.result, name).toMatchObject({ ok: false, errorCode: 'ERR_COMMAND_UNKNOWN' });
    }
    expect(r.executions).toBe(0);
  });

  it('answers a throwing handler with ok:false and its message', async () => {
    const { r, calls } = await runner();
    const reply = await r.handle(cmd(11, 'boom'));
    expect(reply.replyTo).toBe(11);
    expect(reply.result).toMatchObject({ ok: false, errorCode: 'ERR_COMMAND_FAILED', errorMessage: 'it broke' });
    // The failure is the command's result: a re-delivery gets it again rather than a second attempt.
    expect((await r.handle(cmd(11, 'boom'))).result).toMatchObject({ ok: false, errorMessage: 'it broke' });
    expect(calls()).toBe(1);
  });

  it('a volatile command may answer in a typed Result field (a RelayReply, bytes as they are); a durable one may not', async () => {
    const { r } = await runner(undefined, new Set(['typed']));
    const reply = decodeEnvelope(encodeEnvelope(await r.handle(cmd(13, 'typed'))));
    expect(reply.result?.ok).toBe(true);
    expect(reply.result?.value?.length ?? 0).toBe(0);
    expect(reply.result?.relay).toMatchObject({ status: 201, contentType: 'application/json' });
    expect([...reply.result!.relay!.body!]).toEqual([0, 0xff]);
    // Stored results are JSON: a durable command that answers so fails, stored as such.
    const { r: durable } = await runner();
    expect((await durable.handle(cmd(14, 'typed'))).result).toMatchObject({
      ok: false,
      errorCode: 'ERR_COMMAND_FAILED',
    });
    expect((await durable.handle(cmd(14, 'typed'))).result).toMatchObject({
      ok: false,
      errorCode: 'ERR_COMMAND_FAILED',
    });
  });

  it('volatile commands (RPCs main never re-sends) are not stored', async () => {
    const { r, calls } = await runner(undefined, new Set(['count']));
    await r.handle(cmd(12, 'count'));
    await r.handle(cmd(12, 'count'));
    expect(calls()).toBe(2);
  });
});
