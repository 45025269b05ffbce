/**
 * The host's per-engine bound on relayed records toward a tenant process (TunnelFeed) and the byte
 * accounting under it (PendingBytes), with a fake IPC channel whose sends complete when the test says.
 */
import { describe, expect, it } from 'vitest';
import { PendingBytes } from '#common/pending-bytes.js';
import { silentLogger } from '#common/logging.js';
import { RECORD_HANDSHAKE, RECORD_SEALED } from '../../agent/tunnel/tunnel-records.js';
import { CAP_BYTES, HOLD_BYTES, TunnelFeed, type FeedSignal } from '../../agent/host/tunnel-feed.js';
import type { TunnelRecord } from '../../agent/tenant-ipc.js';

const KiB = 1024,
  MiB = 1024 * KiB;

describe('PendingBytes', () => {
  it('counts what was handed over until each send completes, in order', () => {
    let calls = 0;
    const p = new PendingBytes(() => {
      calls++;
    });
    p.add(10);
    p.add(20);
    p.add(30);
    expect(p.bytes).toBe(60);
    p.done();
    expect(p.bytes).toBe(50);
    p.done();
    p.done();
    expect([p.bytes, calls]).toEqual([0, 3]);
  });

  it('stays exact over a long run that never empties (the consumed front is dropped now and then)', () => {
    const p = new PendingBytes();
    p.add(1);
    for (let i = 2; i <= 10_000; i++) {
      p.add(i);
      p.done();
    }
    expect(p.bytes).toBe(10_000);
    p.done();
    expect(p.bytes).toBe(0);
  });
});

/** A feed over a fake channel: sends wait in `inFlight` until complete(n) runs their callbacks. */
function feed() {
  const sent: TunnelRecord[] = [];
  const inFlight: (() => void)[] = [];
  const signals: [string, FeedSignal][] = [];
  const f = new TunnelFeed(
    (msg, done) => {
      sent.push(msg);
      inFlight.push(done);
    },
    (id, s) => signals.push([id, s]),
    silentLogger(),
  );
  const complete = (n = inFlight.length) => {
    for (const done of inFlight.splice(0, n)) done();
  };
  return { f, sent, signals, complete };
}

const msg = (engineId: string, type: number, bytes: number): TunnelRecord => {
  const record = new Uint8Array(bytes);
  if (bytes) record[0] = type;
  return { engineId, record };
};
const hello = (id: string) => msg(id, RECORD_HANDSHAKE, 200);
const data = (id: string, bytes = 256 * KiB) => msg(id, RECORD_SEALED, bytes);

describe('TunnelFeed', () => {
  it('asks main to hold an engine once its queue passes HOLD_BYTES, and to resume once it has drained to half', () => {
    const { f, sent, signals, complete } = feed();
    f.push(hello('e1'));
    const records = HOLD_BYTES / (256 * KiB);
    for (let i = 0; i < records - 1; i++) f.push(data('e1'));
    expect(signals).toEqual([]);
    f.push(data('e1'));
    expect(signals).toEqual([['e1', 'pause']]);
    f.push(data('e1')); // still forwarded while main stops reading: nothing is lost below the cap
    expect(sent).toHaveLength(records + 2);
    expect(signals).toHaveLength(1);
    complete(records / 2); // the hello and 7 records written: 10 records (2.5 MiB) still queued, above the resume mark
    expect(signals).toHaveLength(1);
    complete(3);
    expect(signals).toEqual([
      ['e1', 'pause'],
      ['e1', 'resume'],
    ]);
  });

  it("past CAP_BYTES drops the engine's records and ends its session at both ends; its next hello starts afresh", () => {
    const { f, sent, signals, complete } = feed();
    f.push(hello('e1'));
    for (let i = 0; i < CAP_BYTES / MiB - 1; i++) f.push(data('e1', MiB));
    const forwarded = sent.length;
    f.push(data('e1', MiB)); // with the hello's bytes still queued, this one passes the cap
    // The tenant gets an empty record (its session for e1 ends), main a close; the record itself is dropped.
    expect(sent).toHaveLength(forwarded + 1);
    expect(sent.at(-1)).toMatchObject({ engineId: 'e1', record: new Uint8Array(0) });
    expect(signals.map(([, s]) => s)).toEqual(['pause', 'close']);
    complete();
    f.push(data('e1')); // the rest of the broken session: dropped here, no more signals
    expect(sent).toHaveLength(forwarded + 1);
    expect(signals.map(([, s]) => s)).toEqual(['pause', 'close', 'resume']);
    f.push(hello('e1'));
    f.push(data('e1'));
    expect(sent).toHaveLength(forwarded + 3);
  });

  it('one engine over its share does not hold back another', () => {
    const { f, sent, signals } = feed();
    f.push(hello('e1'));
    f.push(hello('e2'));
    for (let q = 0; q <= CAP_BYTES; q += MiB) f.push(data('e1', MiB));
    f.push(data('e2'));
    expect(sent.at(-1)).toMatchObject({ engineId: 'e2' });
    expect(signals.every(([id]) => id === 'e1')).toBe(true);
  });

  it('when the tenant process is gone: holds released, open sessions closed, nothing more sent', () => {
    const { f, sent, signals } = feed();
    f.push(hello('e1'));
    for (let q = 0; q < HOLD_BYTES; q += MiB) f.push(data('e1', MiB));
    f.push(hello('e2'));
    f.push(data('e3')); // no hello seen: no session here to close
    f.close();
    expect(signals).toEqual([
      ['e1', 'pause'],
      ['e1', 'resume'],
      ['e1', 'close'],
      ['e2', 'close'],
    ]);
    const n = sent.length;
    f.push(data('e2'));
    expect(sent).toHaveLength(n);
  });

  it('an engine gone (empty record from main) is passed on to the tenant whatever its queue', () => {
    const { f, sent } = feed();
    f.push(hello('e1'));
    for (let q = 0; q <= CAP_BYTES; q += MiB) f.push(data('e1', MiB));
    f.push(msg('e1', 0, 0));
    expect(sent.at(-1)).toMatchObject({ engineId: 'e1', record: new Uint8Array(0) });
  });
});
