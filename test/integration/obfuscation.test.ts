/**
 * Obfuscation on a real tenant (real LevelDB and tenant app, requests signed as main signs them): a rule seals a
 * user-name field (any of its vendor aliases) or a regex's matches before the event is stored; the key is answered
 * once and kept nowhere (no file of the tenant holds it, nor any clear value, byte for byte, after the store is
 * closed and flushed); searches show tokens, `POST /api/v1/events/reveal` with the key shows clear values to callers
 * with `events:reveal` only, a wrong key is a 400 naming `key`, a domain-limited rule leaves other domains alone. A
 * rule names a field Palisade reads (a user-name, address or port field, or a custom property), else a 400.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import type { EventView } from '#common/events.js';
import type { CallerIdentity } from '#common/signed-request.js';
import { filesContaining } from '../harness/data-scan.js';
import { batch, openEventTenant, record, type EventTenant } from '../harness/event-tenant.js';

type Page = { items: EventView[]; next: string | null };
let t: EventTenant;
let seq = 0;
const keys: Record<string, string> = {};
const ALICE = 'alice.wonderland';
const CARD = '4111-1111-2222-9999';
const ADDR = '10.9.77.66'; // sealed in the message and in the normalised sourceAddress
const BOB = 'bob.builder'; // in domain B, which the domain-limited rule does not cover
const HOST = 'secret-host-7'; // named in a message and its header: sealed in host and log source, not in the table
const READER: CallerIdentity = { id: 'usr_ro', name: 'ro', roles: ['read-only'], tenant: 'obf' };

async function send(engine: string, raw: string) {
  await t.events.ingest(batch(engine, ++seq, [record(`<38>Dec  6 23:26:15 host1 app: ${raw}`)]));
}

beforeAll(async () => {
  t = await openEventTenant('obf');
  for (const [d, engine] of [
    ['A', 'eng-a'],
    ['B', 'eng-b'],
  ]) {
    await t.call('POST', '/api/v1/domains', { name: d });
    await t.call('POST', `/api/v1/domains/${d}/mappings`, { kind: 'event-collector', value: engine });
  }
  for (const rule of [
    { name: 'users', field: 'username', domain: 'A' },
    { name: 'cards', regex: 'card=([0-9-]{19})' },
    { name: 'addresses', regex: 'src=(10\\.9\\.[0-9.]+)' },
    { name: 'hosts', regex: '(secret-host-[0-9]+)' },
  ]) {
    const r = await t.call<{ key: string; publicKey: string }>('POST', '/api/v1/obfuscation', rule);
    expect(r.status, JSON.stringify(r.body)).toBe(201);
    expect(Buffer.from(r.body.key, 'base64')).toHaveLength(32);
    keys[rule.name] = r.body.key;
  }
  await send('eng-a', `login ok suser=${ALICE} src=10.0.0.1 note="${ALICE} again" card=${CARD}`);
  await send('eng-a', `CEF:0|V|P|1|9|login|3|duser=${ALICE} src=10.0.0.2`);
  await send('eng-b', `login ok user=${BOB} card=${CARD}`);
  await send('eng-b', `probe src=${ADDR}`);
  await t.events.ingest(batch('eng-b', ++seq, [record(`<38>Dec  6 23:26:15 ${HOST} app: heartbeat from ${HOST}`)]));
});
afterAll(async () => {
  await t?.close();
  if (t) await rm(t.dir, { recursive: true, force: true });
});

describe('obfuscation', () => {
  it('stores tokens, not values: searches show ciphertext, domain-limited rules leave other domains alone', async () => {
    const all = (await t.call<Page>('GET', '/api/v1/events')).body.items;
    expect(all).toHaveLength(5);
    const hb = all.find((e) => e.message.startsWith('heartbeat'))!;
    expect(hb.host).toMatch(/^obf1\./);
    expect(hb.logSource).toMatch(/^obf1\./);
    const sources = await t.call<{ items: { name: string }[] }>('GET', '/api/v1/log-sources');
    expect(sources.body.items.map((x) => x.name)).toEqual(['host1@eng-a', 'host1@eng-b']);
    expect(JSON.stringify(all)).not.toContain(ADDR);
    expect(all.find((e) => e.message.startsWith('probe'))?.sourceAddress).toMatch(/^obf1\./);
    const text = JSON.stringify(all.filter((e) => e.domain === 'A'));
    expect(text).not.toContain(ALICE);
    expect(JSON.stringify(all)).not.toContain(CARD);
    expect(text).toMatch(/obf1\.[0-9a-f]{8}\./);
    const b = all.find((e) => e.domain === 'B' && e.message.startsWith('login'))!;
    expect(b.message).toContain(BOB); // the user rule is limited to domain A
    expect((await t.call<Page>('GET', `/api/v1/events?q=${ALICE}`)).body.items).toEqual([]);
    // The list of rules never shows a key.
    const l = await t.call<{ items: Record<string, unknown>[] }>('GET', '/api/v1/obfuscation');
    expect(l.body.items.map((r) => r.name)).toEqual(['users', 'cards', 'addresses', 'hosts']);
    expect(JSON.stringify(l.body)).not.toContain(keys.users);
  });

  it('reveals with the key to a caller allowed, and to no one else', async () => {
    const r = await t.call<Page>('POST', '/api/v1/events/reveal', { key: keys.users, domain: 'A' });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    const msgs = r.body.items.map((e) => e.message);
    expect(msgs.some((m) => m.includes(`suser=${ALICE}`) && m.includes(`"${ALICE} again"`))).toBe(true);
    expect(r.body.items.some((e) => e.fields?.duser === ALICE)).toBe(true);
    expect(JSON.stringify(r.body)).not.toContain(CARD); // another rule's key opens only its own values
    const c = await t.call<Page>('POST', '/api/v1/events/reveal', { key: keys.cards });
    expect(c.body.items.filter((e) => e.message.includes(`card=${CARD}`))).toHaveLength(2);
    const ad = await t.call<Page>('POST', '/api/v1/events/reveal', { key: keys.addresses, q: 'probe' });
    expect(ad.body.items[0]).toMatchObject({ sourceAddress: ADDR, message: `probe src=${ADDR}` });
    const wrong = await t.call<{ error: { message: string } }>('POST', '/api/v1/events/reveal', {
      key: Buffer.alloc(32, 7).toString('base64'),
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.message).toMatch(/^key: /);
    const denied = await t.call('POST', '/api/v1/events/reveal', { key: keys.users }, READER);
    expect(denied.status).toBe(403);
  });

  it('never writes a clear value or a key to the tenant’s files', async () => {
    await t.close(); // flushes LevelDB's log and tables to disk
    for (const marker of [ALICE, CARD, ADDR, HOST, keys.users, keys.cards, keys.addresses, keys.hosts])
      expect(await filesContaining(t.dir, marker), marker).toEqual([]);
    expect((await filesContaining(t.dir, BOB)).length).toBeGreaterThan(0); // the scan does find what is there
    t = await openEventTenant('obf', t.dir);
    expect((await t.call<Page>('GET', '/api/v1/events')).body.items).toHaveLength(5);
  });
});

describe('log sources a rule sealed', () => {
  it('are not recorded from a batch that sealed their name, under whichever sender, nor twice later', async () => {
    const n = await openEventTenant('obf-src');
    try {
      const r = await n.call('POST', '/api/v1/obfuscation', { name: 'hosts', regex: '(secret-host-[0-9]+)' });
      expect(r.status).toBe(201);
      const host = 'secret-host-9';
      const sealedFrom = (sender: string) => record(`<38>Dec  6 23:26:15 ${host} app: beat from ${host}`, { sender });
      const plainFrom = (sender: string) => record(`<38>Dec  6 23:26:15 ${host} app: ping`, { sender });
      // The sealed event's sender first (the source is new there), then the order the other way round.
      await n.events.ingest(batch('eng-a', 1, [sealedFrom('192.0.2.10'), plainFrom('192.0.2.11')]));
      await n.events.ingest(batch('eng-a', 2, [plainFrom('192.0.2.11'), sealedFrom('192.0.2.10')]));
      const names = async (x: EventTenant) =>
        (await x.call<{ items: { name: string }[] }>('GET', '/api/v1/log-sources')).body.items.map((s) => s.name);
      expect(await names(n)).toEqual([]);
      // A batch with nothing sealed records the source; read back from disk, it is there once (no orphan rows).
      await n.events.ingest(batch('eng-a', 3, [plainFrom('192.0.2.11')]));
      expect(await names(n)).toEqual([`${host}@eng-a`]);
      await n.close();
      const reopened = await openEventTenant('obf-src', n.dir);
      expect(await names(reopened)).toEqual([`${host}@eng-a`]);
      await reopened.close();
    } finally {
      await rm(n.dir, { recursive: true, force: true });
    }
  });
});

describe('the field a rule names', () => {
  it('is a field a rule can act on: user-name, address or port field, or a custom property; else 400', async () => {
    const n = await openEventTenant('obf-field');
    try {
      type Err = { error: { code: string; message: string } };
      const bad = await n.call<Err>('POST', '/api/v1/obfuscation', { name: 'typo', field: 'nosuchfield' });
      expect(bad.status).toBe(400);
      expect(bad.body.error.code).toBe('ERR_BAD_REQUEST');
      expect(bad.body.error.message).toMatch(/^field: "nosuchfield" is no field an obfuscation rule can act on; /);
      for (const allowed of ['suser', 'usrName', 'src', 'dpt', 'a custom property of this tenant (none defined)'])
        expect(bad.body.error.message).toContain(allowed);
      expect((await n.call<{ items: unknown[] }>('GET', '/api/v1/obfuscation')).body.items).toEqual([]);
      for (const [name, field] of [
        ['users', 'username'],
        ['dusers', 'duser'],
        ['sources', 'src'],
      ])
        expect((await n.call('POST', '/api/v1/obfuscation', { name, field })).status).toBe(201);
      // A custom property counts once the tenant defines it, and its values are sealed.
      expect((await n.call('POST', '/api/v1/properties', { name: 'badge', regex: 'badge=([0-9]+)' })).status).toBe(201);
      const later = await n.call<Err>('POST', '/api/v1/obfuscation', { name: 'typo', field: 'badges' });
      expect(later.body.error.message).toContain('a custom property of this tenant (badge)');
      expect((await n.call('POST', '/api/v1/obfuscation', { name: 'badges', field: 'badge' })).status).toBe(201);
      await n.events.ingest(batch('eng-a', 1, [record('<38>Dec  6 23:26:15 host1 app: door opened badge=734519')]));
      const items = (await n.call<Page>('GET', '/api/v1/events')).body.items;
      expect(items).toHaveLength(1);
      expect(JSON.stringify(items)).not.toContain('734519');
      expect(items[0].properties?.badge).toMatch(/^obf1\./);
    } finally {
      await n.close();
      await rm(n.dir, { recursive: true, force: true });
    }
  });
});
