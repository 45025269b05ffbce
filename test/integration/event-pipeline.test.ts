/**
 * The tenant's event pipeline and events API on a real LevelDB, with the real tenant app answering requests
 * signed as main signs them (test/harness/event-tenant.ts): domain tagging in QRadar's order for every mapping
 * kind, CEP fall-through off and on, the Default Domain, custom properties, a re-sent batch stored once, retention,
 * search (text, time range, domain, paging), log sources, and what a caller without the right (or of another
 * tenant) cannot do. Events enter as E1's engine transport hands them: `events.ingest(batch)`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { EventView } from '#common/events.js';
import { batch, openEventTenant, record, type EventTenant } from '../harness/event-tenant.js';
import { TenantStore } from '../../agent/tenant/store.js';
import { createEventPipeline } from '../../agent/tenant/events/event-pipeline.js';

type Page = { items: EventView[]; next: string | null };
let t: EventTenant;
let seq = 0;
const dirs: string[] = [];

/** Ingests one record from `host` (its BSD header names it) via engine `engine`; returns the stored event. */
async function one(engine: string, host: string, body: string, at = Date.now()): Promise<EventView> {
  const raw = `<134>Dec  6 23:26:15 ${host} app: ${body}`;
  const s = ++seq;
  const r = await t.events.ingest(batch(engine, s, [record(raw, { receivedAt: at })]));
  expect(r).toEqual({ accepted: 1, duplicate: false });
  const page = await t.call<Page>('GET', `/api/v1/events?limit=1&q=${encodeURIComponent(body)}`);
  expect(page.status).toBe(200);
  expect(page.body.items[0].message).toBe(body);
  return page.body.items[0];
}

beforeAll(async () => {
  t = await openEventTenant('acme');
  dirs.push(t.dir);
  for (const d of ['by-prop', 'by-source', 'by-group', 'by-collector', 'by-vlan', 'by-flow'])
    expect((await t.call('POST', '/api/v1/domains', { name: d })).status).toBe(201);
  expect((await t.call('POST', '/api/v1/properties', { name: 'customer', regex: 'cust=(\\w+)' })).status).toBe(201);
  const map = async (domain: string, kind: string, value: string) =>
    expect((await t.call('POST', `/api/v1/domains/${domain}/mappings`, { kind, value })).status).toBe(201);
  await map('by-prop', 'property', 'customer=acme');
  await map('by-source', 'log-source', 'fw1@eng-a');
  await map('by-group', 'log-source-group', 'branch');
  await map('by-collector', 'event-collector', 'eng-b');
  await map('by-vlan', 'vlan', '12');
  await map('by-flow', 'flow-source', 'probe1');
  // A source named before any of its events: recorded, grouped.
  const g = await t.call<{ name: string; groups: string[] }>('POST', '/api/v1/log-sources/fw2@eng-a/groups', {
    group: 'branch',
  });
  expect(g.body).toMatchObject({ name: 'fw2@eng-a', groups: ['branch'] });
});
afterAll(async () => {
  await t?.close();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('domain tagging', () => {
  it('follows QRadar precedence: property, then flow fields, log source, group, collector, else Default Domain', async () => {
    const cases: [string, string, string, string, string][] = [
      ['eng-a', 'fw1', 'login cust=acme src=10.0.0.1', 'by-prop', 'property:customer=acme'],
      ['eng-a', 'fw1', 'login src=10.0.0.1', 'by-source', 'log-source:fw1@eng-a'],
      ['eng-a', 'fw2', 'login from branch', 'by-group', 'log-source-group:branch'],
      ['eng-b', 'fw3', 'login on b', 'by-collector', 'event-collector:eng-b'],
      ['eng-b', 'fw1', 'same host name, other engine', 'by-collector', 'event-collector:eng-b'],
      ['eng-a', 'fw1', 'flow vlan=12 src=10.0.0.9', 'by-vlan', 'vlan:12'],
      [
        'eng-c',
        'fw4',
        'CEF:0|V|P|1|9|flow|1|src=10.0.0.2 cs1=probe1 cs1Label=flowSource',
        'by-flow',
        'flow-source:probe1',
      ],
      ['eng-c', 'fw9', 'nobody claims this', 'Default Domain', 'default'],
    ];
    for (const [engine, host, body, domain, rule] of cases) {
      const e = await one(engine, host, body);
      expect({ body, domain: e.domain, rule: e.domainRule }).toEqual({ body, domain, rule });
      expect(e.logSource).toBe(`${host}@${engine}`);
    }
  });

  it('tags each event of a batch on its own: the same value in another property is not the mapped one', async () => {
    expect((await t.call('POST', '/api/v1/properties', { name: 'login', regex: 'login=(\\w+)' })).status).toBe(201);
    const raw = (body: string) => record(`<134>Dec  6 23:26:15 fw9 app: ${body}`);
    const r = await t.events.ingest(batch('eng-t', ++seq, [raw('tagone cust=acme'), raw('tagtwo login=acme')]));
    expect(r.accepted).toBe(2);
    const page = await t.call<Page>('GET', '/api/v1/events?q=tagt&limit=5');
    expect(page.body.items.map((e) => [e.message.split(' ')[0], e.domain])).toEqual([['tagtwo', 'Default Domain']]);
    const first = await t.call<Page>('GET', '/api/v1/events?q=tagone&limit=5');
    expect(first.body.items[0].domain).toBe('by-prop');
    expect((await t.call('DELETE', '/api/v1/properties/login')).status).toBeLessThan(300);
  });

  it('never mistakes one set of property values for another, whatever characters a value holds', async () => {
    // A tenant of its own: no flow mappings, so ingest keeps one tag per log source and property values.
    const n = await openEventTenant('nul');
    dirs.push(n.dir);
    try {
      for (const name of ['pa', 'pb'])
        expect((await n.call('POST', '/api/v1/properties', { name, regex: `${name}=([^ ]+)` })).status).toBe(201);
      expect((await n.call('POST', '/api/v1/domains', { name: 'by-pb' })).status).toBe(201);
      const m = await n.call('POST', '/api/v1/domains/by-pb/mappings', { kind: 'property', value: 'pb=y' });
      expect(m.status).toBe(201);
      const raw = (body: string) => record(`<134>Dec  6 23:26:15 fw1 app: ${body}`);
      // One value that spells out the other set's names and values, then that set, from one source in one batch.
      await n.events.ingest(batch('eng-t', 1, [raw('nulone pa=x\u0000pb\u0000y'), raw('nultwo pa=x pb=y')]));
      const got = async (q: string) => (await n.call<Page>('GET', `/api/v1/events?q=${q}&limit=5`)).body.items[0];
      expect(await got('nulone')).toMatchObject({ domain: 'Default Domain', properties: { pa: 'x\u0000pb\u0000y' } });
      expect(await got('nultwo')).toMatchObject({ domain: 'by-pb', properties: { pa: 'x', pb: 'y' } });
    } finally {
      await n.close();
    }
  });

  it('CEP fall-through off: an unmatched property value goes to the Default Domain; on: it falls through', async () => {
    const off = await one('eng-a', 'fw1', 'login cust=globex');
    expect([off.domain, off.domainRule]).toEqual(['Default Domain', 'property-unmatched:customer']);
    const s = await t.call<{ cepFallthrough: boolean }>('PATCH', '/api/v1/events/settings', { cepFallthrough: true });
    expect(s.body.cepFallthrough).toBe(true);
    const on = await one('eng-a', 'fw1', 'login again cust=globex');
    expect([on.domain, on.domainRule]).toEqual(['by-source', 'log-source:fw1@eng-a']);
    expect(on.properties).toEqual({ customer: 'globex' });
    await t.call('PATCH', '/api/v1/events/settings', { cepFallthrough: false });
  });

  it('fsyncs each batch before acknowledging it unless the fsync setting is turned off', async () => {
    const db = t.store.db;
    const batch0 = db.batch.bind(db);
    const syncs: boolean[] = [];
    db.batch = ((ops: unknown, opts?: { sync?: boolean }) => {
      if (Array.isArray(ops) && ops.some((op: { key?: string }) => op.key?.startsWith('!ev-batch!')))
        syncs.push(opts?.sync === true);
      return batch0(ops as never, opts as never);
    }) as typeof db.batch;
    try {
      expect((await t.call<{ fsync: boolean }>('GET', '/api/v1/events/settings')).body.fsync).toBe(true);
      await one('eng-a', 'fw1', 'synced');
      const off = await t.call<{ fsync: boolean }>('PATCH', '/api/v1/events/settings', { fsync: false });
      expect([off.status, off.body.fsync]).toEqual([200, false]);
      await one('eng-a', 'fw1', 'written, not synced');
      expect(syncs).toEqual([true, false]);
      const bad = await t.call<{ field?: string }>('PATCH', '/api/v1/events/settings', { fsync: 'yes' });
      expect(bad.status).toBe(400);
    } finally {
      db.batch = batch0;
      await t.call('PATCH', '/api/v1/events/settings', { fsync: true });
    }
  });

  it('normalises the fields the message gives', async () => {
    const e = await one('eng-c', 'fw5', 'CEF:0|Acme|FW|1|100|Blocked|5|src=10.1.1.1 dst=10.2.2.2 spt=1234 dpt=443');
    expect(e).toMatchObject({ format: 'cef', facility: 16, severity: 6, host: 'fw5', app: 'app' });
    expect(e).toMatchObject({ sourceAddress: '10.1.1.1', destinationAddress: '10.2.2.2', sourcePort: 1234 });
    expect(e.destinationPort).toBe(443);
  });
});

describe('ingest', () => {
  it('stores a re-sent batch once, also when both copies arrive at once, and after a restart', async () => {
    const b = batch('eng-d', 7, [record('<13>1 - h1 a - - - dup one'), record('<13>1 - h1 a - - - dup two')]);
    const [x, y] = await Promise.all([t.events.ingest(b), t.events.ingest(b)]);
    expect([x, y].map((r) => r.duplicate).sort()).toEqual([false, true]);
    expect(await t.events.ingest(b)).toEqual({ accepted: 2, duplicate: true });
    const page = await t.call<Page>('GET', '/api/v1/events?q=dup%20');
    expect(page.body.items.map((e) => e.message)).toEqual(['dup two', 'dup one']);
    // Restart: the store is reopened from disk; the batch is still known, the events and config still there.
    const dir = t.dir;
    await t.close();
    t = await openEventTenant('acme', dir);
    expect(await t.events.ingest(b)).toEqual({ accepted: 2, duplicate: true });
    expect((await t.call<Page>('GET', '/api/v1/events?q=dup%20')).body.items).toHaveLength(2);
    expect((await t.call<{ items: unknown[] }>('GET', '/api/v1/domains')).body.items).toHaveLength(7);
  });

  it('tags a batch that arrives before the pipeline is started with the stored configuration', async () => {
    const dir = t.dir;
    await t.close();
    const store = new TenantStore(join(dir, 'store'));
    await store.open();
    const early = createEventPipeline({ db: store.db });
    const sources = async () => (await early.store.search({ limit: 1, q: 'too early' })).items[0];
    try {
      await early.ingest(batch('eng-a', 9001, [record('<13>1 - fw1 a - - - too early')]));
      expect(await sources()).toMatchObject({ domain: 'by-source', domainRule: 'log-source:fw1@eng-a' });
      // The log source kept its stored id: none was made anew over it.
      expect(early.config.listSources().filter((s) => s.name === 'fw1@eng-a')).toHaveLength(1);
    } finally {
      await early.close();
      await store.close();
      t = await openEventTenant('acme', dir);
    }
    const ids = (await t.call<{ items: { id: string }[] }>('GET', '/api/v1/log-sources')).body.items.map((s) => s.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('refuses a malformed batch and stores nothing of it', async () => {
    const before = (await t.call<Page>('GET', '/api/v1/events?limit=1000')).body.items.length;
    const bad = [
      { engine: 'Not A Name', seq: 1, records: [] },
      { engine: 'eng-a', seq: -1, records: [] },
      {
        engine: 'eng-a',
        seq: 1,
        records: [{ raw: 'x', sender: '1.2.3.4', transport: 'carrier-pigeon', receivedAt: 1 }],
      },
    ];
    for (const b of bad) await expect(t.events.ingest(b as never)).rejects.toMatchObject({ code: 'ERR_EVENT_BATCH' });
    expect((await t.call<Page>('GET', '/api/v1/events?limit=1000')).body.items).toHaveLength(before);
  });

  it('purges events older than the retention, with their domain index and block spans', async () => {
    const old = Date.now() - 3 * 3_600_000;
    await one('eng-a', 'fw1', 'ancient cust=acme', old);
    await one('eng-a', 'fw1', 'recent cust=acme');
    const oldSecond = String(Math.floor(old / 1000)).padStart(12, '0');
    const spans = async () => {
      const keys: string[] = [];
      for await (const k of t.events.store.spans.keys({ lt: `${oldSecond}~\xff` })) keys.push(k);
      return keys;
    };
    expect((await spans()).some((k) => k.startsWith(`${oldSecond}~eng-a~`))).toBe(true);
    expect((await t.call('PATCH', '/api/v1/events/settings', { retention: '2h' })).status).toBe(200);
    await t.events.purge();
    const all = await t.call<Page>('GET', '/api/v1/events?q=ancient');
    expect(all.body.items).toEqual([]);
    const inDomain = await t.call<Page>('GET', '/api/v1/events?domain=by-prop&limit=1000');
    expect(inDomain.body.items.map((e) => e.message)).toContain('recent cust=acme');
    expect(inDomain.body.items.map((e) => e.message)).not.toContain('ancient cust=acme');
    expect(await spans()).toEqual([]);
    await t.call('PATCH', '/api/v1/events/settings', { retention: '30d' });
  });
});

describe('engine receive times', () => {
  it('replaces a time beyond retention or over 5 minutes ahead by the tenant’s, flagged; keeps a plausible one', async () => {
    const before = Date.now();
    const future = before + 365 * 86_400_000;
    const ancient = before - 400 * 86_400_000;
    const near = before - 60_000;
    const recs = [
      record('<13>1 - clock a - - - skew future', { receivedAt: future }),
      record('<13>1 - clock a - - - skew ancient', { receivedAt: ancient }),
      record('<13>1 - clock a - - - skew near', { receivedAt: near }),
    ];
    expect(await t.events.ingest(batch('eng-clock', 1, recs))).toEqual({ accepted: 3, duplicate: false });
    const after = Date.now();
    const page = await t.call<Page>('GET', '/api/v1/events?q=skew&limit=10');
    const byMsg = new Map(page.body.items.map((e) => [e.message, e]));
    for (const m of ['skew future', 'skew ancient']) {
      const e = byMsg.get(m)!;
      expect(e.timeAdjusted).toBe(true);
      expect(Date.parse(e.time)).toBeGreaterThanOrEqual(before);
      expect(Date.parse(e.time)).toBeLessThanOrEqual(after);
    }
    expect(byMsg.get('skew near')).toMatchObject({ time: new Date(near).toISOString() });
    expect(byMsg.get('skew near')!.timeAdjusted).toBeUndefined();
    // Newest first: the future-dated event does not sort ahead of a later real one.
    await one('eng-a', 'fw1', 'skew later');
    const again = await t.call<Page>('GET', '/api/v1/events?q=skew&limit=1');
    expect(again.body.items[0].message).toBe('skew later');
  });
});

describe('custom property regexes on crafted messages', () => {
  it('a pattern that backtracks badly in JS runs in linear time on a batch of crafted messages and stays on', async () => {
    const created = await t.call('POST', '/api/v1/properties', {
      name: 'user',
      regex: 'user=(.*) src=(.*) dst=(.*) act=(\\w+)',
    });
    expect(created.status).toBe(201);
    const crafted = 'user= src= dst= '.repeat(250);
    const recs = Array.from({ length: 100 }, (_, i) => record(`<13>1 - redos a - - - ${i} ${crafted}`));
    expect(await t.events.ingest(batch('eng-redos', 1, recs))).toEqual({ accepted: 100, duplicate: false });
    const e = await one('eng-a', 'fw1', 'user=bob src=1.2.3.4 dst=5.6.7.8 act=deny');
    expect(e.properties).toMatchObject({ user: 'bob' });
    expect((await t.call('DELETE', '/api/v1/properties/user')).status).toBeLessThan(300);
  });
});

describe('RFC 5424 header fields', () => {
  it('keeps PROCID, MSGID and STRUCTURED-DATA on the event, and text search finds them', async () => {
    const raw = '<134>1 2026-12-07T11:00:00Z h5424 app 77 ID47 [zoo@123 tiger="hungry"][ex@1 k="v"] sd check';
    expect(await t.events.ingest(batch('eng-sd', 1, [record(raw)]))).toEqual({ accepted: 1, duplicate: false });
    for (const q of ['tiger', 'id47', 'sd check']) {
      const page = await t.call<Page>('GET', `/api/v1/events?limit=1&q=${encodeURIComponent(q)}`);
      expect(page.body.items[0], q).toMatchObject({
        message: 'sd check',
        procId: '77',
        msgId: 'ID47',
        structuredData: '[zoo@123 tiger="hungry"][ex@1 k="v"]',
      });
    }
    const bsd = await one('eng-sd', 'h3164', 'pid check', Date.now());
    expect(bsd).not.toHaveProperty('msgId');
  });
});

describe('search and configuration API', () => {
  it('searches by domain, text and time, newest first, and pages with before', async () => {
    const base = Date.now() - 60_000;
    for (let i = 0; i < 5; i++) await one('eng-b', 'pager', `page item ${i}`, base + i * 1000);
    const first = await t.call<Page>('GET', '/api/v1/events?q=page%20item&limit=2');
    expect(first.body.items.map((e) => e.message)).toEqual(['page item 4', 'page item 3']);
    const second = await t.call<Page>('GET', `/api/v1/events?q=page%20item&limit=2&before=${first.body.next}`);
    expect(second.body.items.map((e) => e.message)).toEqual(['page item 2', 'page item 1']);
    const from = new Date(base + 1000).toISOString();
    const to = new Date(base + 2000).toISOString();
    const ranged = await t.call<Page>('GET', `/api/v1/events?q=page&from=${from}&to=${to}`);
    expect(ranged.body.items.map((e) => e.message)).toEqual(['page item 2', 'page item 1']);
    const dom = await t.call<Page>('GET', '/api/v1/events?domain=by-collector&q=page&limit=1000');
    expect(dom.body.items).toHaveLength(5);
    expect((await t.call('GET', '/api/v1/events?domain=nope')).status).toBe(404);
    expect((await t.call('GET', '/api/v1/events?from=yesterday')).status).toBe(400);
  });

  it('searches a domain newest first across batches that share a second, and pages within it', async () => {
    const base = Math.floor(Date.now() / 1000) * 1000 - 30_000;
    // Two engines' batches interleave within the same seconds; another domain's event sits between them.
    const at = [0, 400, 800, 1200, 1600, 2100];
    const recs = (engine: string, offset: number) =>
      at.map((ms, i) => record(`<13>1 - h a - - - mix ${engine} ${i} cust=acme`, { receivedAt: base + ms + offset }));
    expect((await t.events.ingest(batch('eng-m', 1, recs('eng-m', 0)))).accepted).toBe(6);
    expect((await t.events.ingest(batch('eng-n', 1, recs('eng-n', 50)))).accepted).toBe(6);
    await t.events.ingest(batch('eng-o', 1, [record('<13>1 - o a - - - mix other', { receivedAt: base + 1000 })]));
    const all = await t.call<Page>('GET', '/api/v1/events?domain=by-prop&q=mix&limit=1000');
    const times = all.body.items.map((e) => e.time);
    expect(all.body.items).toHaveLength(12);
    expect(times).toEqual([...times].sort().reverse());
    const ids = all.body.items.map((e) => e.id);
    const got: string[] = [];
    let next: string | null = null;
    for (let i = 0; i < 10 && (i === 0 || next); i++) {
      const r: { body: Page } = await t.call<Page>(
        'GET',
        `/api/v1/events?domain=by-prop&q=mix&limit=5${next ? `&before=${next}` : ''}`,
      );
      got.push(...r.body.items.map((e) => e.id));
      next = r.body.next;
    }
    expect(got).toEqual(ids);
    const from = new Date(base + 800).toISOString();
    const to = new Date(base + 1250).toISOString();
    const ranged = await t.call<Page>('GET', `/api/v1/events?domain=by-prop&q=mix&from=${from}&to=${to}`);
    const expected = ['mix eng-n 3', 'mix eng-m 3', 'mix eng-n 2', 'mix eng-m 2'].map((m) => `${m} cust=acme`);
    expect(ranged.body.items.map((e) => e.message)).toEqual(expected);
  });

  it('lists log sources with id and name, and domains with their mappings', async () => {
    const ls = await t.call<{ items: { id: string; name: string; engine: string }[] }>('GET', '/api/v1/log-sources');
    expect(ls.body.items.map((s) => s.name)).toEqual(expect.arrayContaining(['fw1@eng-a', 'fw1@eng-b', 'fw2@eng-a']));
    expect(ls.body.items.every((s) => typeof s.id === 'string')).toBe(true);
    const ds = await t.call<{ items: { id: string; name: string; mappings: { id: string }[] }[] }>(
      'GET',
      '/api/v1/domains',
    );
    expect(ds.body.items[0]).toMatchObject({ id: '0', name: 'Default Domain', mappings: [] });
    expect(ds.body.items.find((d) => d.name === 'by-source')?.mappings.map((m) => m.id)).toEqual([
      'log-source~fw1@eng-a',
    ]);
  });

  it('refuses bad input and changes nothing: unsafe regex, double mapping, Default Domain, property in use', async () => {
    const props = async () => (await t.call<{ items: unknown[] }>('GET', '/api/v1/properties')).body.items;
    const n = (await props()).length;
    const bad = await t.call<{ error: { code: string } }>('POST', '/api/v1/properties', { name: 'x', regex: '(a)\\1' });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'ERR_PROPERTY_REGEX']);
    expect(await props()).toHaveLength(n);
    const twice = await t.call<{ error: { code: string } }>('POST', '/api/v1/domains/by-group/mappings', {
      kind: 'log-source',
      value: 'fw1@eng-a',
    });
    expect([twice.status, twice.body.error.code]).toEqual([409, 'ERR_DOMAIN_MAPPED']);
    const dflt = await t.call('DELETE', `/api/v1/domains/${encodeURIComponent('Default Domain')}`);
    expect(dflt.status).toBe(400);
    const inUse = await t.call('DELETE', '/api/v1/properties/customer');
    expect(inUse.status).toBe(409);
    const e = await one('eng-a', 'fw1', 'still by source');
    expect(e.domain).toBe('by-source');
  });

  it('lets a customer read-only user read events but not change domains; another tenant’s request is refused', async () => {
    const reader = { id: 'usr_ro', name: 'ro', roles: ['read-only'], tenant: 'acme' };
    expect((await t.call('GET', '/api/v1/events?limit=1', undefined, reader)).status).toBe(200);
    const w = await t.call('POST', '/api/v1/domains', { name: 'sneaky' }, reader);
    expect(w.status).toBe(403);
    // A request main signed for tenant globex, played to acme: refused, and nothing is created.
    const admin = { id: 'usr_gx', name: 'gx', roles: ['admin'], tenant: 'globex' };
    const crossing = await t.call('POST', '/api/v1/domains', { name: 'sneaky' }, admin, 'globex');
    expect([401, 403]).toContain(crossing.status);
    const read = await t.call('GET', '/api/v1/events?limit=1', undefined, admin, 'globex');
    expect([401, 403]).toContain(read.status);
    const names = (await t.call<{ items: { name: string }[] }>('GET', '/api/v1/domains')).body.items;
    expect(names.map((d) => d.name)).not.toContain('sneaky');
  });
});
