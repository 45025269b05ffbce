/**
 * What the search e2e files share (search.test.ts, search-indicators.test.ts): the deployment they search
 * (host s1 with three labelled tenants seeded with incidents whose `created` times interleave and tie),
 * the answers' shapes, and the checks every search is held to (merged order, the truth by tenant).
 * Not a test file; each test file starts its own deployment with it.
 */
import { expect } from 'vitest';
import { randomUUID } from 'node:crypto';
import type { ApiReply, Deployment } from '../harness/deployment.js';
import type { ErrorBody, Incident, Indicator } from '../harness/api-shapes.js';
import { tenantAnswering } from '../harness/tenant-api.js';

/** An incident in a search answer: tagged with its tenant. */
export interface Item extends Incident {
  tenant: string;
}
/** A tenant that did not answer (slow, down): the search still answers with the others. */
export interface TenantErr {
  tenant: string;
  code: string;
  message: string;
}
export interface Page {
  items: Item[];
  errors: TenantErr[];
  next: string | null;
}
export interface CommandReply {
  results: {
    tenant: string;
    ok: boolean;
    result?: Record<string, unknown>;
    error?: { code: string; message: string };
  }[];
}
export interface IndicatorItem extends Indicator {
  tenant: string;
}
export interface IndicatorPage {
  items: IndicatorItem[];
  errors: TenantErr[];
  next: null;
}

export const TENANTS: Record<string, string[]> = { red: ['emea', 'gold'], green: ['emea'], blue: ['apac'] };
export const ROUNDS = 12;
export const BATCH = 30;

/** What seedIncidents created: the truth searches are checked against, and strings only incidents hold. */
export interface Seeded {
  /** Every incident created, by tenant. */
  created: Map<string, Incident[]>;
  /** Strings that exist only inside incidents (names and details): main's data dir must never hold one. */
  markers: string[];
}

/** Installs host s1 with TENANTS, and gives each ROUNDS incidents round-robin, then a batch of BATCH. */
export async function seedIncidents(d: Deployment): Promise<Seeded> {
  const created = new Map<string, Incident[]>();
  const markers: string[] = [];
  await d.install('host', 's1');
  await d.startAgent('s1');
  for (const [name, labels] of Object.entries(TENANTS)) {
    await d.createTenant(name, 's1', { labels });
    created.set(name, []);
  }
  for (const name of Object.keys(TENANTS)) await tenantAnswering(d, name);
  // One at a time, round-robin, so `created` times interleave across tenants...
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of Object.keys(TENANTS)) {
      const marker = `srch-${t}-${round}-${randomUUID()}`;
      const phish = round % 4 === 0 && t !== 'green';
      const inc = await post<Incident>(d, `/tenants/${t}/api/incidents`, {
        name: phish ? `Phishing wave ${round}` : `Alert ${round}`,
        type: 'generic',
        severity: round % 5,
        details: marker,
      });
      created.get(t)!.push(inc);
      markers.push(marker);
    }
  }
  // ...then a batch per tenant: many equal `created` times, the tie-breaks' case.
  for (const t of Object.keys(TENANTS)) {
    const marker = `srch-batch-${t}-${randomUUID()}`;
    const items = Array.from({ length: BATCH }, (_, i) => ({
      name: `Batch ${t} ${i}`,
      type: 'bulk',
      severity: 1,
      details: `${marker} #${i}`,
    }));
    const r = await post<{ count: number; ids: string[] }>(d, `/tenants/${t}/api/incidents`, { items });
    const list = await d.api<{ items: Incident[] }>('GET', `/tenants/${t}/api/incidents?limit=${BATCH}`);
    expect(list.body.items.map((i) => i.id).sort()).toEqual([...r.ids].sort());
    created.get(t)!.push(...list.body.items);
    markers.push(marker);
  }
  return { created, markers };
}

export async function post<T>(d: Deployment, path: string, body: unknown, want = 201): Promise<T> {
  const r = await d.api<T>('POST', path, body);
  if (r.status !== want) throw new Error(`POST ${path}: ${r.status} ${r.raw}`);
  return r.body;
}

export const search = (d: Deployment, query: string) => d.api<Page & ErrorBody>('GET', `/search/incidents?${query}`);
export const searchIndicators = (d: Deployment, query: string, key?: string) =>
  d.api<IndicatorPage & ErrorBody>('GET', `/search/indicators?${query}`, undefined, key ? { key } : {});

/** Every page of an incident search, `limit` at a time, each checked to answer 200 from every tenant. */
export async function searchAll(
  d: Deployment,
  query: string,
  limit: number,
): Promise<{ items: Item[]; pages: number }> {
  const items: Item[] = [];
  let cursor: string | null = null;
  for (let pages = 1; pages < 500; pages++) {
    const r: ApiReply<Page> = await d.api<Page>(
      'GET',
      `/search/incidents?limit=${limit}${query ? `&${query}` : ''}${cursor ? `&cursor=${cursor}` : ''}`,
    );
    expect(r.status, r.raw).toBe(200);
    expect(r.body.errors).toEqual([]);
    expect(r.body.items.length).toBeLessThanOrEqual(limit);
    items.push(...r.body.items);
    cursor = r.body.next;
    if (!cursor) return { items, pages };
  }
  throw new Error('paging did not end');
}

/** Newest first; equal times by tenant name; within one tenant, its own order (higher id first). */
export function expectMergedOrder(items: Item[]): void {
  for (let i = 1; i < items.length; i++) {
    const a = items[i - 1],
      b = items[i];
    const ok =
      a.created > b.created ||
      (a.created === b.created && (a.tenant < b.tenant || (a.tenant === b.tenant && Number(a.id) > Number(b.id))));
    expect(
      ok,
      `item ${i - 1} (${a.tenant}/${a.id} ${a.created}) before item ${i} (${b.tenant}/${b.id} ${b.created})`,
    ).toBe(true);
  }
}

export const key = (i: { tenant: string; id: string }) => `${i.tenant}/${i.id}`;
/** The sorted keys of the created incidents that `pred` keeps: what a search for them must return. */
export const truth = (created: Seeded['created'], pred: (t: string, i: Incident) => boolean = () => true) =>
  [...created].flatMap(([t, list]) => list.filter((i) => pred(t, i)).map((i) => key({ tenant: t, id: i.id }))).sort();
