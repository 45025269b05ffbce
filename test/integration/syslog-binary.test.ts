/**
 * Binary event batches end to end in one process: the engine's spool and forwarder (agent/engine/syslog/) over a pair
 * of sealed sessions joined back to back, into the tenant's own EngineEvents and event pipeline on a real LevelDB
 * (test/harness/event-tenant.ts). A spool holding a JSON segment an older engine left and binary ones sends all of
 * them after its restart; a tenant that does not say protocol 1.11 gets JSON and stores the same events as one that
 * reads binary (non-UTF-8 bytes and a message cut at the size limit included); a malformed binary batch is refused
 * whole, naming its field, and nothing of it is stored.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventView } from '#common/events.js';
import { silentLogger } from '#common/logging.js';
import { MAX_SYSLOG_BATCH_RECORDS, MAX_SYSLOG_MESSAGE_BYTES } from '#common/syslog-record.js';
import { MINOR_BINARY_EVENTS } from '#common/protocol-version.js';
import { SyslogSpool } from '../../agent/engine/syslog/syslog-spool.js';
import { SyslogForwarder } from '../../agent/engine/syslog/syslog-forwarder.js';
import type { SyslogOrigin } from '../../agent/engine/syslog/syslog-batch.js';
import { TunnelSession } from '../../agent/tunnel/tunnel-session.js';
import { SealingKey } from '../../agent/tunnel/tunnel-crypto.js';
import { EVENTS_BATCH } from '../../agent/tunnel/events-batch.js';
import { EngineEvents } from '../../agent/tenant/tunnels/engine-events.js';
import { openEventTenant, type EventTenant } from '../harness/event-tenant.js';
import { until } from '../harness/processes.js';

const ENGINE = 'eng-bin';
let dir: string;
const tenants: EventTenant[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'syslog-binary-'));
});
afterEach(async () => {
  await Promise.all(tenants.splice(0).map(async (t) => (await t.close(), rm(t.dir, { recursive: true, force: true }))));
  await rm(dir, { recursive: true, force: true });
});

/**
 * A tenant (its pipeline behind EngineEvents) saying protocol `minor` in its hello, reading as a tenant of protocol
 * `reads` does, and the forms of the batches it got.
 */
async function tenantOf(minor: number, reads = minor) {
  const t = await openEventTenant(`acme${tenants.length}`);
  tenants.push(t);
  const events = new EngineEvents();
  events.sink = t.events;
  const forms: string[] = [];
  const key = Buffer.alloc(32, 3);
  const back = Buffer.alloc(32, 4);
  const engine: TunnelSession = new TunnelSession({
    keys: { send: new SealingKey(key), receive: new SealingKey(back) },
    initiator: false,
    sendRecord: (r) => setImmediate(() => tenant.onSealed(Buffer.from(r.subarray(1)))),
    peerMinor: minor,
  });
  const tenant: TunnelSession = new TunnelSession({
    keys: { send: new SealingKey(back), receive: new SealingKey(key) },
    initiator: true,
    // Before 1.11 a tenant's session parsed every command's args as JSON.
    ...(reads >= MINOR_BINARY_EVENTS ? { rawCommands: new Set([EVENTS_BATCH]) } : {}),
    sendRecord: (r) => setImmediate(() => engine.onSealed(Buffer.from(r.subarray(1)))),
    onCommand: async (name, args) => {
      expect(name).toBe(EVENTS_BATCH);
      forms.push(args instanceof Uint8Array ? (args[0] === 0x7b ? 'json bytes' : 'binary') : 'json');
      return events.onBatch(ENGINE, args);
    },
  });
  const list = async () => {
    const page = await t.call<{ items: EventView[] }>('GET', '/api/v1/events?limit=100');
    expect(page.status).toBe(200);
    return page.body.items.map(({ id: _id, ...e }) => e).sort((a, b) => a.message.localeCompare(b.message));
  };
  return { t, events, engine, tenant, forms, list };
}

const A: SyslogOrigin = { receivedAt: Date.now(), sender: '192.0.2.10', transport: 'tcp' };
const B: SyslogOrigin = { receivedAt: Date.now() + 1, sender: '2001:db8::7', transport: 'udp' };

/** Messages as the listeners hand them: spans of the bytes read, some not UTF-8, one past the size limit. */
function feed(spool: SyslogSpool, tag: string): number {
  const msgs = [
    Buffer.from(`<134>Dec  6 23:26:15 fw1 app: ${tag} login "failed"\tuser=u1`),
    Buffer.concat([Buffer.from(`<13>1 - fw2 app - - - ${tag} bytes `), Buffer.from([0xff, 0xc3, 0x28, 0x00, 0x80])]),
    Buffer.concat([Buffer.from(`<13>1 - fw3 app - - - ${tag} long `), Buffer.alloc(MAX_SYSLOG_MESSAGE_BYTES, 'é')]),
    Buffer.from(`<134>Dec  6 23:26:16 fw1 app: ${tag} ok`),
  ];
  msgs.forEach((m, i) => {
    const src = Buffer.concat([Buffer.from('xx'), m, Buffer.from('\n')]);
    spool.message(src, 2, 2 + Math.min(m.length, MAX_SYSLOG_MESSAGE_BYTES + 3), i % 2 ? B : A);
  });
  spool.seal();
  return msgs.length;
}

const openSpool = (d = dir) => SyslogSpool.open(d, { engine: ENGINE, maxBytes: 1 << 30, log: silentLogger() });

describe('binary batches, engine to tenant', () => {
  it('sends a JSON segment an older engine left and the binary ones after it, after a restart', async () => {
    const seq = 1_000;
    const old = {
      engine: ENGINE,
      seq,
      spool: { received: 2, dropped: 0 },
      records: ['old one', 'old two'].map((m) => ({
        receivedAt: Date.now(),
        sender: '192.0.2.9',
        transport: 'udp',
        raw: `<13>${m}`,
      })),
    };
    await writeFile(join(dir, `${String(seq).padStart(16, '0')}-2.seg`), JSON.stringify(old));
    const first = await openSpool();
    const fed = feed(first, 'first') + feed(first, 'second');
    await first.close();
    const spool = await openSpool(); // the restart
    expect([...spool.pending()].map((b) => b.records)).toEqual([2, 4, 4]);
    const x = await tenantOf(MINOR_BINARY_EVENTS);
    const fwd = new SyslogForwarder(spool, silentLogger());
    fwd.setSession(x.engine);
    await until('every batch stored', async () => spool.stats.pendingRecords === 0, 10_000);
    // Up to sixteen batches in flight, each read back from its segment: they may arrive in any order.
    expect(x.forms.sort()).toEqual(['binary', 'binary', 'json bytes']);
    expect(x.t.events.stored).toBe(2 + fed);
    const messages = (await x.list()).map((e) => e.message);
    expect(messages.filter((m) => m.startsWith('old'))).toEqual(['old one', 'old two']);
    expect(spool.stats).toMatchObject({ forwarded: 2 + fed, dropped: 0 });
    fwd.close();
    await spool.close();
  });

  it('drops a JSON segment an older engine left cut short, rather than send it again and hold back the rest', async () => {
    const seq = 1_000;
    const cut = `{"engine":"${ENGINE}","seq":${seq},"records":[{"receivedAt":17`;
    await writeFile(join(dir, `${String(seq).padStart(16, '0')}-2.seg`), cut);
    const spool = await openSpool();
    const fed = feed(spool, 'after');
    const x = await tenantOf(MINOR_BINARY_EVENTS);
    const fwd = new SyslogForwarder(spool, silentLogger());
    fwd.setSession(x.engine);
    // Sent again after a wire error, it would stay pending (its retries backing off past this wait).
    await until('every batch stored or dropped', async () => spool.stats.pendingRecords === 0, 5_000);
    expect(x.forms.sort()).toEqual(['binary', 'json bytes']);
    expect(x.t.events.stored).toBe(fed);
    fwd.close();
    await spool.close();
  });

  it('sends JSON to a tenant that does not say 1.11, which stores the same events as one reading binary', async () => {
    const got: Omit<EventView, 'id'>[][] = [];
    for (const minor of [10, MINOR_BINARY_EVENTS]) {
      const d = await mkdtemp(join(dir, 'spool-'));
      const spool = await openSpool(d);
      const x = await tenantOf(minor);
      const fwd = new SyslogForwarder(spool, silentLogger());
      fwd.setSession(x.engine);
      const n = feed(spool, 'same');
      await until('stored', async () => spool.stats.forwarded === n, 10_000);
      expect(x.forms).toEqual([minor >= MINOR_BINARY_EVENTS ? 'binary' : 'json']);
      got.push(await x.list());
      fwd.close();
      await spool.close();
    }
    expect(got[0]).toHaveLength(4);
    expect(got[0].map((e) => [e.sender, e.transport, e.engine])).toContainEqual(['2001:db8::7', 'udp', ENGINE]);
    expect(got[0].some((e) => e.message.includes('\ufffd'))).toBe(true); // the bytes that are not UTF-8
    expect(got[1]).toEqual(got[0]);
  });

  it('falls back to JSON for the session when a tenant said 1.11 in its hello but cannot parse a binary batch', async () => {
    const spool = await openSpool();
    const x = await tenantOf(MINOR_BINARY_EVENTS, 10); // an older tenant whose hello was changed on the way
    const fwd = new SyslogForwarder(spool, silentLogger());
    fwd.setSession(x.engine);
    const n = feed(spool, 'liar') + feed(spool, 'liar-2');
    await until('stored', async () => spool.stats.forwarded === n, 10_000);
    expect(x.forms.filter((f) => f === 'json')).toHaveLength(2);
    expect(x.t.events.stored).toBe(n);
    expect(spool.stats.dropped).toBe(0);
    fwd.close();
    await spool.close();
  });

  it('refuses a malformed binary batch whole, naming its field, and stores nothing of it', async () => {
    const d = await mkdtemp(join(dir, 'spool-'));
    const spool = await openSpool(d);
    feed(spool, 'spoilt');
    const good = Buffer.from(await spool.body([...spool.pending()][0]));
    const x = await tenantOf(MINOR_BINARY_EVENTS);
    const n = good.readUInt32LE(4);
    const cols = good.length - 10 * n;
    const spoil = (f: (b: Buffer) => Buffer | void) => {
      const b = Buffer.from(good);
      return f(b) ?? b;
    };
    const cases: [string, Buffer][] = [
      ['head', good.subarray(0, 20)],
      ['columns', good.subarray(0, good.length - 3)],
      ['magic', spoil((b) => void (b[1] = 0))],
      ['version', spoil((b) => void (b[3] = 9))],
      ['records', spoil((b) => void b.writeUInt32LE(MAX_SYSLOG_BATCH_RECORDS + 1, 4))],
      ['records[3].origin', spoil((b) => void b.writeUInt16LE(7, cols + 4 * n + 6))],
      ['records[0].length', spoil((b) => void b.writeUInt32LE(good.length, cols + 6 * n))],
      // JSON args (an older engine's) that do not parse, or none: refused as malformed, not as a wire error.
      ['args', Buffer.from(`{"engine":"${ENGINE}","seq":3,"records":[{"receivedAt":17`)],
      ['args', Buffer.alloc(0)],
    ];
    for (const [field, bytes] of cases)
      await expect(x.events.onBatch(ENGINE, bytes)).rejects.toMatchObject({ code: 'ERR_EVENTS_BATCH', field });
    expect(x.t.events.stored).toBe(0);
    expect(await x.list()).toEqual([]);
    expect(await x.events.onBatch(ENGINE, good)).toMatchObject({ accepted: n, duplicate: false });
    expect(x.t.events.stored).toBe(n);
    await spool.close();
  });
});
