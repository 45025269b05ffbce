/**
 * Event blocks are stored compressed (agent/tenant/events/event-block.ts: a zstd frame of each block). What an admin
 * would check: the store on disk holds a syslog flood in far fewer bytes than its messages; every event reads back
 * exactly as sent, through plain batches and others (a byte that is not ASCII, a newline in a message); a store
 * written before compression (its blocks as they were) reads alike beside new compressed blocks; and a block whose
 * stored bytes are damaged fails the searches that reach it, not the others nor the tenant.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { EventView } from '#common/events.js';
import { BatchWriter } from '../../agent/engine/syslog/syslog-batch.js';
import { readEventsBatchBinary } from '../../agent/tunnel/events-batch-binary.js';
import { blockBytes, isCompressedBlock } from '../../agent/tenant/events/block-compression.js';
import { bytesUnder } from '../harness/data-scan.js';
import { batch, openEventTenant, record, type EventTenant } from '../harness/event-tenant.js';

const ENGINE = 'eng-z';
const N = 20_000;
const bytes = { valueEncoding: 'buffer' } as const;
let t: EventTenant;
let lines: string[];
let seq = 0;

/** Sends `raws` as an engine ≥ 1.11 does: binary batches of up to 2 000 records. */
async function send(raws: string[], at = Date.now()) {
  for (let i = 0; i < raws.length; i += 2000) {
    const w = new BatchWriter(960 * 1024);
    for (const raw of raws.slice(i, i + 2000)) {
      const m = Buffer.from(raw);
      expect(w.appendMessage(m, 0, m.length, record(raw, { receivedAt: at, transport: 'tcp' }))).toBe(true);
    }
    const b = readEventsBatchBinary(w.finish(++seq, 0, 0).body, ENGINE);
    await t.events.ingest({ engine: ENGINE, seq, records: b.records });
  }
}

/** Every stored block: key and value as stored. */
async function blocks(): Promise<[string, Buffer][]> {
  const out: [string, Buffer][] = [];
  for await (const [k, v] of t.store.db.iterator({ gte: '!ev-block!', lt: '!ev-block!\xff', ...bytes }))
    out.push([k as string, v as unknown as Buffer]);
  return out;
}

/** Every message search shows, newest first, paging on. */
async function messages(q = ''): Promise<string[]> {
  const out: string[] = [];
  let before = '';
  for (;;) {
    const qs = new URLSearchParams({ limit: '1000', ...(q ? { q } : {}), ...(before ? { before } : {}) });
    const page = await t.call<{ items: EventView[]; next: string | null }>('GET', `/api/v1/events?${qs}`);
    expect(page.status).toBe(200);
    out.push(...page.body.items.map((e) => e.message));
    if (!page.body.next) return out;
    before = page.body.next;
  }
}

/** Firewall-like lines: a few hosts, users and ports, every address and sequence number its own. */
const flood = (n: number) =>
  Array.from(
    { length: n },
    (_, i) =>
      `<134>1 2026-12-06T23:00:00.000Z fw-${i % 3} ztest 4242 - - login failed user=u${i % 97} ` +
      `src=10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} dst=192.168.2.1 spt=${1024 + (i % 50000)} dpt=443 seq=${i}`,
  );

beforeAll(async () => {
  t = await openEventTenant('zst');
  lines = flood(N);
  await send(lines);
}, 60_000);
afterAll(async () => {
  await t.close();
  await rm(t.dir, { recursive: true, force: true });
});

describe('event blocks on disk', () => {
  it('are compressed: the store holds a flood in far fewer bytes than its messages', async () => {
    const stored = await blocks();
    expect(stored.length).toBeGreaterThan(0);
    for (const [k, v] of stored) expect([k, isCompressedBlock(v)]).toEqual([k, true]);
    const raw = lines.reduce((a, l) => a + Buffer.byteLength(l), 0);
    const encoded = stored.reduce((a, [, v]) => a + blockBytes(v).length, 0);
    const packed = stored.reduce((a, [, v]) => a + v.length, 0);
    // Each block as encoded holds every message; compressed it is a fraction of that.
    expect(encoded).toBeGreaterThan(raw);
    expect(packed * 4).toBeLessThan(encoded);
    // What the admin sees with du: the whole store (log, tables, indexes, markers) under half the messages' bytes.
    await t.close();
    expect(await bytesUnder(join(t.dir, 'store'))).toBeLessThan(raw / 2);
    t = await openEventTenant('zst', t.dir);
  });

  it('read back as sent, plain batches and others alike', async () => {
    const seen = await messages('ztest');
    expect(seen).toHaveLength(N);
    // The message search shows is the part after the header: every line's own ending, once each.
    const wanted = new Set(lines.map((l) => l.slice(l.indexOf(' - - ') + 5)));
    expect(new Set(seen)).toEqual(wanted);
    const odd = ['café user=u1 façade', 'two\nlines user=u2'];
    await t.events.ingest(
      batch(
        ENGINE,
        ++seq,
        odd.map((m) => record(`<13>1 - web-03 oddapp - - - ${m}`)),
      ),
    );
    expect((await messages('oddapp')).sort()).toEqual([...odd].sort());
  });

  it('written before compression read alike beside compressed ones', async () => {
    const before = await messages();
    const stored = await blocks();
    // Half the blocks as an older tenant left them: the encoded block, uncompressed.
    const old = stored.filter((_, i) => i % 2 === 0);
    for (const [k, v] of old) await t.store.db.put(k, blockBytes(v) as never, bytes);
    expect((await blocks()).filter(([, v]) => !isCompressedBlock(v))).toHaveLength(old.length);
    expect(await messages()).toEqual(before);
    for (const [k, v] of old) await t.store.db.put(k, v as never, bytes);
  });

  it('damaged on disk fail the searches that reach them, and only those', async () => {
    const at = Date.now() + 5_000;
    await send(['<134>1 2026-12-06T23:00:00.000Z fw-9 damaged 1 - - newest of all'], at);
    const stored = await blocks();
    const [key, value] = stored[stored.length - 1];
    expect(blockBytes(value).toString('latin1')).toContain('newest of all');
    const broken = Buffer.from(value);
    broken.fill(0x55, 12, broken.length - 4); // the frame's head intact, its content not
    await t.store.db.put(key, broken as never, bytes);
    try {
      const r = await t.call<{ error: { code: string } }>('GET', '/api/v1/events?limit=5');
      expect(r.status).toBe(500);
      // A search that ends before the damaged block's second still answers.
      const older = await t.call<{ items: EventView[] }>('GET', `/api/v1/events?limit=5&to=${at - 2000}`);
      expect(older.status).toBe(200);
      expect(older.body.items).toHaveLength(5);
    } finally {
      await t.store.db.put(key, value as never, bytes);
    }
    expect((await messages('newest of all')).length).toBe(1);
  });
});
