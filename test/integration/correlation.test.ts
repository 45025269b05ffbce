/**
 * Domain-aware correlation on a real tenant (real LevelDB, real tenant app, requests signed as main signs them;
 * test/harness/event-tenant.ts): a correlation rule (content type `rule`) turns N matching events within T from one
 * source address into one incident carrying its domain; the same address in two domains gives two incidents; a
 * fired window does not fire again until a quiet `within` resets it; a bad rule body is refused naming the field,
 * and the number of keys held stays under its cap. With no rule in force the pipeline keeps nothing of a batch for
 * correlation. Events enter as engines hand them: `events.ingest(batch)`.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { rm } from 'node:fs/promises';
import { pino } from 'pino';
import { parseCorrelationRule } from '#common/correlation-rule.js';
import { correlationRuleRules } from '../../main/content/rule-correlation-rules.js';
import { ContentStore } from '../../agent/tenant/content-store.js';
import { Correlator } from '../../agent/tenant/events/correlation.js';
import type { StoredEvent } from '../../agent/tenant/events/event-store.js';
import { createEventPipeline } from '../../agent/tenant/events/event-pipeline.js';
import { batch, openEventTenant, record, type EventTenant } from '../harness/event-tenant.js';

type Incident = { id: string; name: string; domain?: string; labels?: Record<string, string>; details: string };
let t: EventTenant;
let seq = 0;
/**
 * The tests' clock: an hour ago, so "20 minutes later" is still in the past. The tenant re-dates an event more than
 * 5 minutes ahead of its own clock (event-pipeline.ts), which would put it back inside the window it must leave.
 */
const T0 = Date.now() - 60 * 60_000;
const rule = {
  name: 'ssh brute force',
  match: { q: 'failed password' },
  count: 3,
  within: '5m',
  by: 'sourceAddress',
  incident: { name: 'SSH brute force', type: 'Brute Force', severity: 3 },
};

/** `n` failed logins from `src` through `engine`, `stepMs` apart from `at`. */
async function send(engine: string, src: string, n: number, at: number, stepMs = 1000, text = 'Failed password') {
  const records = Array.from({ length: n }, (_, i) =>
    record(`<38>Dec  6 23:26:15 host1 sshd: ${text} for root src=${src}`, { receivedAt: at + i * stepMs }),
  );
  expect(await t.events.ingest(batch(engine, ++seq, records))).toMatchObject({ duplicate: false });
}

async function incidents(): Promise<Incident[]> {
  // Correlation runs after the batch is stored; give it a moment, then read through the API as a user would.
  const deadline = Date.now() + 5000;
  let last: Incident[] = [];
  while (Date.now() < deadline) {
    const r = await t.call<{ items: Incident[] }>('GET', '/api/v1/incidents?limit=100');
    expect(r.status).toBe(200);
    last = r.body.items.filter((i) => i.labels?.correlationRule);
    await new Promise((res) => setTimeout(res, 100));
    const again = await t.call<{ items: Incident[] }>('GET', '/api/v1/incidents?limit=100');
    if (again.body.items.filter((i) => i.labels?.correlationRule).length === last.length) return last;
  }
  return last;
}

beforeAll(async () => {
  t = await openEventTenant('corr');
  for (const [d, engine] of [
    ['Customer A', 'eng-a'],
    ['Customer B', 'eng-b'],
  ]) {
    expect((await t.call('POST', '/api/v1/domains', { name: d })).status).toBe(201);
    const m = await t.call('POST', `/api/v1/domains/${encodeURIComponent(d)}/mappings`, {
      kind: 'event-collector',
      value: engine,
    });
    expect(m.status).toBe(201);
  }
  const c = await t.call('POST', '/api/v1/content', { type: 'rule', name: 'ssh', body: JSON.stringify(rule) });
  expect(c.status, JSON.stringify(c.body)).toBe(201);
});
afterAll(async () => {
  await t?.close();
  if (t) await rm(t.dir, { recursive: true, force: true });
});

describe('correlation rules', () => {
  it('gives two incidents for the same address in two domains, each carrying its domain', async () => {
    const at = T0;
    await send('eng-a', '192.168.2.1', 3, at);
    await send('eng-b', '192.168.2.1', 3, at);
    const got = await incidents();
    expect(got).toHaveLength(2);
    expect(got.map((i) => i.domain).sort()).toEqual(['Customer A', 'Customer B']);
    for (const i of got) {
      expect(i).toMatchObject({ name: 'SSH brute force', labels: { sourceAddress: '192.168.2.1', domain: i.domain } });
      expect(i.details).toContain('192.168.2.1');
    }
  });

  it('does not fire below the count, for non-matching events, or again within a fired window', async () => {
    const at = T0;
    await send('eng-a', '10.9.9.9', 2, at); // two of three
    await send('eng-a', '10.9.9.8', 5, at, 1000, 'Accepted password'); // does not match
    await send('eng-a', '192.168.2.1', 4, at + 10_000); // same burst as the first test's: already fired
    expect(await incidents()).toHaveLength(2);
  });

  it('fires again once a quiet window has reset the key, and counts only within the window', async () => {
    const later = T0 + 20 * 60_000;
    await send('eng-a', '192.168.2.1', 3, later);
    await send('eng-b', '10.1.1.1', 3, later, 4 * 60_000); // three events spread over 8 minutes: never 3 in 5m
    const got = await incidents();
    expect(got).toHaveLength(3);
    expect(got.filter((i) => i.domain === 'Customer A')).toHaveLength(2);
  });

  it('refuses a bad rule body naming the field, on main when publishing and on the tenant when reading it', async () => {
    const bad = { ...rule, within: 'soon' };
    expect(() => parseCorrelationRule(JSON.stringify(bad))).toThrow(/within/);
    expect(() => parseCorrelationRule(JSON.stringify({ ...rule, by: 'user' }))).toThrow(/by: must be one of/);
    expect(() => parseCorrelationRule(JSON.stringify({ ...rule, within: '2d' }))).toThrow(/within: at most 24h/);
    await expect(
      correlationRuleRules.publishing!({ type: 'rule' } as never, JSON.stringify({ ...rule, count: 0 })),
    ).rejects.toMatchObject({ code: 'ERR_CORRELATION_RULE_INVALID', field: 'count' });
    // A local rule that does not check is stored (drafts are text) but never fires.
    const c = await t.call('POST', '/api/v1/content', { type: 'rule', name: 'broken', body: JSON.stringify(bad) });
    expect(c.status).toBe(201);
    await send('eng-b', '172.16.0.1', 3, Date.now(), 1000, 'Failed password');
    const got = await incidents();
    expect(got.filter((i) => i.labels?.sourceAddress === '172.16.0.1')).toHaveLength(1); // the good rule's only
  });

  it('holds at most its cap of keys, dropping the least recently seen', async () => {
    const c = new Correlator({
      content: new ContentStore(t.store.db),
      store: t.store,
      log: pino({ level: 'silent' }),
      maxKeys: 50,
    });
    const ev = (i: number): StoredEvent => ({
      time: new Date().toISOString(),
      domain: 'Customer A',
      domainRule: 'default',
      logSource: 'x@eng-a',
      engine: 'eng-a',
      sender: '192.0.2.1',
      transport: 'udp',
      format: 'kv',
      message: 'Failed password',
      sourceAddress: `10.0.${i >> 8}.${i & 255}`,
    });
    c.observe(() => Array.from({ length: 500 }, (_, i) => ({ id: String(i), event: ev(i) })));
    await c.settled();
    expect(c.keys).toBeLessThanOrEqual(50);
    expect(c.keys).toBeGreaterThan(0);
  });
});

describe('a tenant with no correlation rule in force', () => {
  it('keeps none of a batch for correlation, until the rules are due to be read again', async () => {
    const other = await openEventTenant('corr-none');
    try {
      const c = new Correlator({
        content: new ContentStore(other.store.db),
        store: other.store,
        log: pino({ level: 'silent' }),
      });
      // Never read: a rule may be in force.
      expect(c.observes()).toBe(true);
      c.observe(() => []);
      await c.settled();
      expect(c.observes()).toBe(false);
      // A rule created now counts from the next reading of the rules, at most a second on (as before).
      const now = Date.now();
      const clock = vi.spyOn(Date, 'now').mockReturnValue(now + 1000);
      expect(c.observes()).toBe(true);
      clock.mockRestore();
    } finally {
      await other.close();
      await rm(other.dir, { recursive: true, force: true });
    }
  });

  it('the pipeline stores the batch without calling the stage after the store, and calls it when it observes', async () => {
    const p = createEventPipeline({ db: t.store.db });
    await p.start();
    const after = vi.fn();
    p.stages.afterStore = after;
    try {
      for (const [observes, calls] of [
        [false, 0],
        [true, 1],
      ] as const) {
        p.stages.observes = () => observes;
        const records = [record('<38>Dec  6 23:26:15 host1 sshd: quiet src=192.0.2.9')];
        expect(await p.ingest(batch('eng-quiet', ++seq, records))).toEqual({ accepted: 1, duplicate: false });
        expect(after).toHaveBeenCalledTimes(calls);
      }
      expect((after.mock.calls[0][0] as () => { event: StoredEvent }[])()[0].event.sourceAddress).toBe('192.0.2.9');
    } finally {
      await p.close();
    }
  });
});
