/**
 * The Default Domain's creation time on a real LevelDB, through the tenant's events API (test/harness/event-tenant.ts):
 * a new tenant's is when its event configuration was first made and stays that across restarts; a store whose event
 * configuration predates the record leaves it absent (never "" nor a guess), and keeps it absent.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openEventTenant, type EventTenant } from '../harness/event-tenant.js';
import { TenantStore } from '../../agent/tenant/store.js';

type Domains = { items: { id: string; name: string; created?: string }[] };
const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function defaultDomain(t: EventTenant) {
  const r = await t.call<Domains>('GET', '/api/v1/domains');
  expect(r.status).toBe(200);
  expect(r.body.items[0]).toMatchObject({ id: '0', name: 'Default Domain' });
  return r.body.items[0];
}

describe('the Default Domain', () => {
  it("of a new tenant has an ISO creation time, the same after a restart; other domains' ids still start at 1", async () => {
    const before = Date.now();
    const t = await openEventTenant('acme');
    dirs.push(t.dir);
    const first = await defaultDomain(t);
    expect(first.created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(Date.parse(first.created!)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(first.created!)).toBeLessThanOrEqual(Date.now());
    const made = await t.call<{ id: string }>('POST', '/api/v1/domains', { name: 'hq' });
    expect([made.status, made.body.id]).toEqual([201, '1']);
    await t.close();
    await new Promise((r) => setTimeout(r, 5));
    const again = await openEventTenant('acme', t.dir);
    const after = await defaultDomain(again);
    expect(after.created).toBe(first.created);
    const all = (await again.call<Domains>('GET', '/api/v1/domains')).body.items.map((d) => [d.id, d.name]);
    expect(all).toEqual([
      ['0', 'Default Domain'],
      ['1', 'hq'],
    ]);
    await again.close();
  });

  it('of a store from before the record has no creation time (absent, not ""), and keeps none', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'events-old-'));
    dirs.push(dir);
    // As an earlier version left the store: a domain of its own, no record for the Default Domain.
    const old = new TenantStore(join(dir, 'store'));
    await old.open();
    const domains = old.db.sublevel<string, unknown>('ev-domains', { valueEncoding: 'json' });
    await domains.put('1', { id: '1', name: 'hq', created: '2026-01-02T03:04:05.000Z' });
    await old.close();
    const t = await openEventTenant('acme', dir);
    const d = await defaultDomain(t);
    expect(d).not.toHaveProperty('created');
    // Emptied, the configuration still does not pass for a new one: the record written at the first load says so.
    expect((await t.call('DELETE', '/api/v1/domains/hq')).status).toBe(200);
    await t.close();
    const again = await openEventTenant('acme', dir);
    expect(await defaultDomain(again)).not.toHaveProperty('created');
    // A domain made now is numbered from 1 as before: the record's id 0 is no custom domain's.
    const hq = await again.call<{ id: string }>('POST', '/api/v1/domains', { name: 'hq2' });
    expect([hq.status, hq.body.id]).toEqual([201, '1']);
    await again.close();
  });
});
