/**
 * The bound on a tenant's log sources against a sender spoofing hostnames (real LevelDB, the real tenant app): once
 * the table holds MAX_LOG_SOURCES, a new source still gets recorded, because the sources seen longest ago that no
 * admin set up (in no group, named by no mapping) make room; a grouped or mapped source is never forgotten, and what is
 * forgotten is gone from the store too (a re-opened tenant does not bring it back).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rm } from 'node:fs/promises';
import { batch, openEventTenant, record, type EventTenant } from '../harness/event-tenant.js';
import { EVICT_LOG_SOURCES, MAX_LOG_SOURCES } from '../../agent/tenant/events/event-config.js';

let t: EventTenant;
let seq = 0;
type Source = { name: string; groups: string[] };
const names = async () =>
  new Set((await t.call<{ items: Source[] }>('GET', '/api/v1/log-sources')).body.items.map((s) => s.name));

/** One batch of `n` events, each from its own spoofed hostname `prefix-i`, received at `at`. */
async function spoof(prefix: string, n: number, at: number): Promise<void> {
  const recs = Array.from({ length: n }, (_, i) =>
    record(`<13>1 - ${prefix}-${i} app - - - hello`, { receivedAt: at }),
  );
  for (let i = 0; i < recs.length; i += 2000)
    expect((await t.events.ingest(batch('eng-s', ++seq, recs.slice(i, i + 2000)))).duplicate).toBe(false);
}

beforeAll(async () => {
  t = await openEventTenant('bound');
  expect((await t.call('POST', '/api/v1/domains', { name: 'real' })).status).toBe(201);
  await t.call('POST', '/api/v1/log-sources/fw-grouped@eng-s/groups', { group: 'dc' });
  const mapped = await t.call('POST', '/api/v1/domains/real/mappings', {
    kind: 'log-source',
    value: 'fw-mapped@eng-s',
  });
  expect(mapped.status).toBe(201);
});
afterAll(async () => {
  await t?.close();
  await rm(t.dir, { recursive: true, force: true });
});

describe('a table of log sources filled by spoofed hostnames', () => {
  it('still records a new real source, forgetting the oldest unconfigured ones, never a grouped or mapped one', async () => {
    const base = Date.now() - 3_600_000;
    await spoof('old', 2000, base);
    await spoof('spoof', MAX_LOG_SOURCES, base + 120_000);
    const full = await names();
    expect(full.size).toBeLessThanOrEqual(MAX_LOG_SOURCES);
    expect(full.size).toBeGreaterThan(MAX_LOG_SOURCES - EVICT_LOG_SOURCES);
    expect(full.has('fw-grouped@eng-s')).toBe(true);
    // The spoofed ones pushed out the 'old' ones first (seen longest ago), EVICT_LOG_SOURCES at a time.
    expect([...full].filter((n) => n.startsWith('old-'))).toEqual([]);
    await spoof('real', 1, Date.now());
    const after = await names();
    expect(after.has('real-0@eng-s')).toBe(true);
    expect(after.has('fw-grouped@eng-s')).toBe(true);
    expect(after.size).toBeLessThanOrEqual(MAX_LOG_SOURCES);
    expect(after.size).toBeGreaterThan(MAX_LOG_SOURCES - EVICT_LOG_SOURCES - 1);
    // A mapped source that sends now is recorded too, and its events keep their domain.
    const r = await t.events.ingest(batch('eng-s', ++seq, [record('<13>1 - fw-mapped app - - - mapped one')]));
    expect(r.accepted).toBe(1);
    expect((await names()).has('fw-mapped@eng-s')).toBe(true);
    const page = await t.call<{ items: { domain: string }[] }>('GET', '/api/v1/events?q=mapped%20one&limit=1');
    expect(page.body.items[0].domain).toBe('real');
    // What was forgotten is gone from the store: a re-opened tenant lists the same sources.
    const before = await names();
    const dir = t.dir;
    await t.close();
    t = await openEventTenant('bound', dir);
    expect(await names()).toEqual(before);
  });
});
