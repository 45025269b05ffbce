/**
 * Plain binary batches (every message ASCII, no newline: BinaryRecords.plain) take the tenant's quick way in: their
 * messages are decoded once per batch and their blocks written as bytes copied, not encoded (event-block.ts,
 * encodeBlockBytes). What a user would check is that nothing about the stored events differs: the same records sent
 * as objects (an older engine's JSON) and as a plain binary batch give byte-identical blocks and index entries, with
 * two custom properties (one event matching only the second) tagging them; and a batch that is not plain (a byte
 * that is not ASCII, a newline inside a message) reads each message as before and is stored alike too. A plain batch
 * lets go of its messages' string before its write, and reads alike after.
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { rm } from 'node:fs/promises';
import type { EventView } from '#common/events.js';
import { messageText, type SyslogRecord } from '#common/syslog-record.js';
import { BatchWriter } from '../../agent/engine/syslog/syslog-batch.js';
import { readEventsBatchBinary } from '../../agent/tunnel/events-batch-binary.js';
import { batch, openEventTenant, record, type EventTenant } from '../harness/event-tenant.js';

const ENGINE = 'eng-plain';
const tenants: EventTenant[] = [];
afterAll(async () => {
  await Promise.all(tenants.map(async (t) => (await t.close(), rm(t.dir, { recursive: true, force: true }))));
});

/** A tenant with two properties and a domain mapped by each, as an admin would set them up. */
async function tenant(): Promise<EventTenant> {
  const t = await openEventTenant(`plain${tenants.length}`);
  tenants.push(t);
  const ok = async (path: string, body: unknown) => expect((await t.call('POST', path, body)).status).toBe(201);
  await ok('/api/v1/properties', { name: 'user', regex: 'user=(\\w+)' });
  await ok('/api/v1/properties', { name: 'site', regex: 'site=(\\w+)' });
  for (const [domain, value] of [
    ['hq', 'user=u1'],
    ['branch', 'site=b2'],
  ]) {
    await ok('/api/v1/domains', { name: domain });
    await ok(`/api/v1/domains/${domain}/mappings`, { kind: 'property', value });
  }
  return t;
}

/** The records as an engine ≥ 1.11 sends them: a binary batch, read as the tenant reads it. */
function binary(records: SyslogRecord[], seq: number) {
  const w = new BatchWriter(960 * 1024);
  for (const r of records) {
    const m = Buffer.from(r.raw);
    expect(w.appendMessage(m, 0, m.length, r)).toBe(true);
  }
  return readEventsBatchBinary(w.finish(seq, 0, 0).body, ENGINE);
}

/** Every key and value of the tenant's event blocks and their domain index, as bytes. */
async function stored(t: EventTenant): Promise<[string, string][]> {
  const out: [string, string][] = [];
  for await (const [k, v] of t.store.db.iterator({ gte: '!ev-block', lt: '!ev-block\xff', valueEncoding: 'buffer' }))
    out.push([k, (v as unknown as Buffer).toString('hex')]);
  return out;
}

async function events(t: EventTenant): Promise<EventView[]> {
  const page = await t.call<{ items: EventView[] }>('GET', '/api/v1/events?limit=100');
  expect(page.status).toBe(200);
  return page.body.items;
}

const at = Date.now();
const lines = (tag: string) => [
  `<134>1 2026-12-06T23:00:00.000Z web-01 ${tag} 42 - - login failed user=u1 src=10.0.0.1`,
  `<134>1 2026-12-06T23:00:00.000Z web-01 ${tag} 42 - - login failed user=u2 site=b2`,
  `<134>Dec  6 23:26:15 fw1 app: ${tag} site=b2 only the second property`,
  `<13>1 - web-02 ${tag} - - - no property at all`,
  `<134>1 2026-12-06T23:00:00.000Z web-01 ${tag} 42 - - user=u1 again`,
];
const recordsOf = (raws: string[]) =>
  raws.map((raw, i) => record(raw, { receivedAt: at + i * 700, sender: i === 3 ? '192.0.2.7' : '192.0.2.5' }));

describe('a plain binary batch', () => {
  it('is stored byte for byte as the same records sent as objects, properties and domains included', async () => {
    const records = recordsOf(lines('same'));
    const b = binary(records, 7);
    expect(b.records.plain).toBe(true);
    for (let i = 0; i < records.length; i++) expect(b.records.text(i)).toBe(records[i].raw);
    const [a, c] = [await tenant(), await tenant()];
    await a.events.ingest(batch(ENGINE, 7, records));
    await c.events.ingest({ engine: ENGINE, seq: 7, records: b.records });
    const blocks = await stored(c);
    // The events span two seconds of receipt: two blocks, each with its domain index entries.
    expect(blocks.filter(([k]) => k.startsWith('!ev-block!')).length).toBeGreaterThanOrEqual(2);
    expect(blocks).toEqual(await stored(a));
    const seen = await events(c);
    expect(seen).toEqual(await events(a));
    const ending = (end: string) => seen.find((e) => e.message.endsWith(end));
    expect(ending('user=u1 src=10.0.0.1')).toMatchObject({ domain: 'hq', properties: { user: 'u1' } });
    expect(ending('user=u2 site=b2')).toMatchObject({ domain: 'branch', properties: { user: 'u2', site: 'b2' } });
    expect(ending('the second property')).toMatchObject({ domain: 'branch', properties: { site: 'b2' } });
    expect(ending('no property at all')?.properties).toBeUndefined();
  });

  it('lets go of its messages as one string once its blocks are made, before they are written', async () => {
    // Batches wait for their write several at once: each holding its messages would be copied at every scavenge.
    const records = recordsOf(lines('freed'));
    const b = binary(records, 9);
    const t = await tenant();
    const release = vi.spyOn(b.records, 'release');
    const write = vi.spyOn(t.store.db, 'batch');
    expect(await t.events.ingest({ engine: ENGINE, seq: 9, records: b.records })).toEqual({
      accepted: records.length,
      duplicate: false,
    });
    expect(release).toHaveBeenCalledTimes(1);
    expect(release.mock.invocationCallOrder[0]).toBeLessThan(write.mock.invocationCallOrder.at(-1)!);
    // Read alike after: each message decoded on its own.
    for (let i = 0; i < records.length; i++) expect(b.records.text(i)).toBe(records[i].raw);
    const seen = await events(t);
    expect(seen).toHaveLength(records.length);
    for (const e of seen) expect(records.some((r) => r.raw.endsWith(e.message))).toBe(true);
  });

  it('is not plain with a byte that is not ASCII or a newline in a message, and is stored alike all the same', async () => {
    for (const odd of ['café user=u1', 'two\nlines user=u1']) {
      const records = recordsOf([...lines('odd'), `<13>1 - web-03 odd - - - ${odd}`]);
      const b = binary(records, 8);
      expect(b.records.plain).toBe(false);
      for (let i = 0; i < records.length; i++) expect(b.records.text(i)).toBe(messageText(Buffer.from(records[i].raw)));
      const [a, c] = [await tenant(), await tenant()];
      await a.events.ingest(batch(ENGINE, 8, records));
      await c.events.ingest({ engine: ENGINE, seq: 8, records: b.records });
      expect(await stored(c)).toEqual(await stored(a));
      expect((await events(c)).map((e) => e.message)).toContain(odd);
    }
  });
});
