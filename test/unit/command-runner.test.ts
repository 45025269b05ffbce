/** The agent's command runner: effectively-once execution over at-least-once delivery, on a real LevelDB. */
import { describe, expect, it } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeEnvelope, encodeEnvelope, parseJsonBytes, type Envelope, type EnvelopeInit } from '#common/codec.js';
import { silentLogger } from '#common/logging.js';
import { CommandRunner } from '../../agent/command-runner.js';

const cmd = (id: number, name: string, args: unknown = {}, deadlineMs = Date.now() + 60_000): Envelope =>
  decodeEnvelope(encodeEnvelope({ id, command: { name, args: Buffer.from(JSON.stringify(args)), deadlineMs } }));

async function runner(dir?: string, volatile?: Set<string>) {
  const path = dir ?? join(await mkdtemp(join(tmpdir(), 'runner-')), 'state');
  let calls = 0;
  const r = new CommandRunner(path, {
    count: async () => ({ n: ++calls }),
    boom: async () => { throw new Error('it broke'); },
    slow: async () => { await new Promise((res) => setTimeout(res, 50)); return { n: ++calls }; },
  }, silentLogger(), volatile);
  await r.open();
  return { r, path, calls: () => calls };
}

const value = (reply: EnvelopeInit) => parseJsonBytes(reply.result?.value as Uint8Array);

describe('command runner', () => {
  it('a duplicate delivery gets the stored result and does not run again', async () => {
    const { r, calls } = await runner();
    const a = await r.handle(cmd(1, 'count'));
    const b = await r.handle(cmd(1, 'count'));
    expect(value(a)).toEqual({ n: 1 });
    expect(value(b)).toEqual({ n: 1 });
    expect(b.replyTo).toBe(1);
    expect(calls()).toBe(1);
    await r.close();
  });

  it('a duplicate arriving while the first still runs waits for it', async () => {
    const { r, calls } = await runner();
    const [a, b] = await Promise.all([r.handle(cmd(2, 'slow')), r.handle(cmd(2, 'slow'))]);
    expect(value(a)).toEqual(value(b));
    expect(calls()).toBe(1);
    await r.close();
  });

  it('remembers across a restart of the agent', async () => {
    const first = await runner();
    await first.r.handle(cmd(3, 'count'));
    await first.r.close();
    const second = await runner(first.path);
    const again = await second.r.handle(cmd(3, 'count'));
    expect(value(again)).toEqual({ n: 1 });
    expect(second.calls()).toBe(0);
    await second.r.close();
  });

  it('refuses a command past its deadline without running it', async () => {
    const { r, calls } = await runner();
    const reply = await r.handle(cmd(4, 'count', {}, Date.now() - 1));
    expect(reply.result).toMatchObject({ ok: false, errorCode: 'ERR_COMMAND_EXPIRED' });
    expect(calls()).toBe(0);
    await r.close();
  });

  it('answers unknown commands and failing handlers with a typed error', async () => {
    const { r } = await runner();
    expect((await r.handle(cmd(5, 'nope'))).result).toMatchObject({ ok: false, errorCode: 'ERR_COMMAND_UNKNOWN' });
    expect((await r.handle(cmd(6, 'boom'))).result).toMatchObject({ ok: false, errorCode: 'ERR_COMMAND_FAILED', errorMessage: 'it broke' });
    expect((await r.handle(cmd(7, 'constructor'))).result).toMatchObject({ ok: false, errorCode: 'ERR_COMMAND_UNKNOWN' });
    await r.close();
  });

  it('volatile commands (RPCs main never re-sends) are not stored', async () => {
    const { r, calls } = await runner(undefined, new Set(['count']));
    await r.handle(cmd(8, 'count'));
    await r.handle(cmd(8, 'count'));
    expect(calls()).toBe(2);
    await r.close();
  });
});
