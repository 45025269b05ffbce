/**
 * Commands and answers in the sealed engine session (agent/tunnel/tunnel-session.ts) are never sent larger than
 * the way they travel allows (MAX_COMMAND_FRAME_BYTES): a command too large is refused to its caller before it is
 * sealed, an answer too large becomes a too-large error for the asker, and in both cases the session goes on
 * (a record the peer must refuse would end it, and every command and stream on it). Two sessions joined in memory,
 * each record checked against the limits the peer's reader and main's relay enforce. Pure: no I/O.
 */
import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { encodeTunnelFrame } from '#common/codec.js';
import { httpStatusOf } from '#common/error-codes.js';
import { SealingKey } from '../../agent/tunnel/tunnel-crypto.js';
import { MAX_DIRECT_RECORD } from '../../agent/tunnel/session-carrier.js';
import { MAX_COMMAND_FRAME_BYTES, TunnelSession } from '../../agent/tunnel/tunnel-session.js';

const KEY = Buffer.alloc(32, 7);
const key = () => new SealingKey(KEY, null);

/** A tenant (initiator) and an engine whose commands answer with `answer(args)`; every record's size is kept. */
function joined(answer: (args: unknown) => unknown) {
  const sizes: number[] = [];
  const records: Buffer[] = [];
  const tenant = new TunnelSession({
    keys: { send: key(), receive: key() },
    initiator: true,
    sendRecord: (r) => {
      sizes.push(r.length);
      records.push(Buffer.from(r));
      const body = Buffer.from(r.subarray(1));
      setImmediate(() => engine.onSealed(body));
    },
  });
  // Declared after the tenant: its records reach the engine only once both exist (setImmediate).
  const engine = new TunnelSession({
    keys: { send: key(), receive: key() },
    initiator: false,
    sendRecord: (r) => {
      sizes.push(r.length);
      const body = Buffer.from(r.subarray(1));
      setImmediate(() => tenant.onSealed(body));
    },
    onCommand: (_name, args) => Promise.resolve(answer(args)),
  });
  return { tenant, engine, sizes, records };
}

const failure = async (p: Promise<unknown>) => {
  const e = (await p.then(
    () => undefined,
    (err: unknown) => err,
  )) as (Error & { code: string; category: string }) | undefined;
  if (!e) throw new Error('expected a failure');
  return { code: e.code, status: httpStatusOf(e as Parameters<typeof httpStatusOf>[0]), message: e.message };
};

describe('commands in the sealed session stay within the frame limit', () => {
  it('a command too large is refused to its caller (413) and nothing is sent; the next command runs', async () => {
    const { tenant, sizes } = joined((args) => ({ echo: args }));
    const r = await failure(tenant.request('integration.run', { body: 'x'.repeat(MAX_COMMAND_FRAME_BYTES) }));
    expect(r).toMatchObject({ code: 'ERR_ENGINE_COMMAND_TOO_LARGE', status: 413 });
    expect(r.message).toContain("integration.run's args are");
    expect(sizes).toEqual([]);
    expect(await tenant.request('integration.run', { body: 'small' })).toEqual({ echo: { body: 'small' } });
    expect(tenant.isClosed).toBe(false);
  });

  it('an answer too large comes back as a 413 for the asker, not as a record its reader must refuse', async () => {
    // 400 000 control characters are 2.4 MB as JSON: the JSON escaping that made an http result too large.
    const { tenant, engine, sizes } = joined((args) =>
      (args as { big?: boolean }).big ? { body: '\u0001'.repeat(400_000) } : { ok: 1 },
    );
    const r = await failure(tenant.request('integration.run', { big: true }));
    expect(r).toMatchObject({ code: 'ERR_ENGINE_COMMAND_TOO_LARGE', status: 413 });
    expect(r.message).toContain('the answer to integration.run is');
    expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX_DIRECT_RECORD);
    expect(await tenant.request('integration.run', {})).toEqual({ ok: 1 });
    expect([tenant.isClosed, engine.isClosed]).toEqual([false, false]);
  });

  it('a command just under the limit goes through whole, its record within what a reader and main take', async () => {
    const { tenant, sizes, records } = joined((args) => ({ length: JSON.stringify(args).length }));
    const body = 'y'.repeat(MAX_COMMAND_FRAME_BYTES - 200);
    expect(await tenant.request('integration.run', { body })).toEqual({ length: body.length + 11 });
    expect(sizes[0]).toBeGreaterThan(MAX_COMMAND_FRAME_BYTES - 200);
    expect(sizes[0]).toBeLessThanOrEqual(MAX_DIRECT_RECORD);
    // Relayed, main wraps the record with the tenant's name (at most 63) and the engine's id: still one frame.
    expect(() => encodeTunnelFrame('t'.repeat(63), randomUUID(), records[0])).not.toThrow();
  });
});
