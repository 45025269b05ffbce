/**
 * A tenant's own store: one LevelDB directory with a sublevel per collection (incidents, indicators).
 * Incident ids are zero-padded sequence numbers so key order is creation order, which makes "newest
 * first" paging a reverse range read. Writes are acknowledged after LevelDB accepts them (its log
 * survives a kill -9 of this process).
 */
import { DEFAULT_DOMAIN } from '#common/events.js';
import { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';
import { NotFoundError } from '#common/errors.js';
import { INDICATOR_TYPES, newestSeenFirst, type Reputation } from '#common/indicators.js';
import { TopK } from '#common/top-k.js';

export type { Reputation } from '#common/indicators.js';

export type IncidentStatus = 'open' | 'closed';

export interface Incident {
  id: string;
  name: string;
  type: string;
  severity: number;
  details: string;
  status: IncidentStatus;
  created: string;
  updated: string;
  closed?: string;
  closeReason?: string;
  labels?: Record<string, string>;
  /** The event domain it belongs to (a correlation rule's incidents): security profiles filter on it. */
  domain?: string;
  /** The tenant's site it belongs to (docs/sites.md): set at creation, removed with the site's data. */
  site?: string;
}

export interface Indicator {
  value: string;
  type: string;
  reputation: Reputation;
  firstSeen: string;
  lastSeen: string;
  incidents: string[];
}

export interface IncidentFilter {
  status?: IncidentStatus;
  severity?: number;
  type?: string;
  q?: string;
  site?: string;
  /** Only incidents of these domains (a caller's security profile): applied before the limit, so pages stay full. */
  domains?: ReadonlySet<string>;
}
export interface IndicatorFilter {
  value?: string;
  type?: string;
  reputation?: Reputation;
}

export type Sub<V> = AbstractSublevel<Level<string, unknown>, string | Buffer | Uint8Array, string, V>;

/**
 * One small record by key, read synchronously (getSync) once the sublevel is open: LevelDB answers from its memory or
 * the page cache in a few µs, where an async get costs a thread-pool round trip (~25 µs idle, 0.1-0.2 ms with the
 * tenant busy). A sublevel still opening (made after its database opened) is read the async way, which waits for it.
 */
export async function pointRead<V>(sub: Sub<V>, key: string): Promise<V | undefined> {
  return sub.status === 'open' ? sub.getSync(key) : sub.get(key);
}
type PutOrDel =
  | { type: 'put'; sublevel: Sub<unknown>; key: string; value: unknown }
  | { type: 'del'; sublevel: Sub<unknown>; key: string };

/**
 * Told of every incident created, whatever created it (the API, batch ingest, fetching): `ops` adds records to the
 * batch that stores them (both land, or neither), `committed` runs once that batch is written. Automation rules
 * (playbooks/automation-rules.ts) record the runs they owe this way, so a kill -9 cannot lose one.
 */
export interface IncidentCreationHook {
  ops(created: Incident[]): Promise<PutOrDel[]>;
  committed(created: Incident[]): void;
}

/** What a playbook run reads and writes of incidents: this store, or a playbook test's one incident in memory. */
export type IncidentRecords = Pick<TenantStore, 'getIncident' | 'putIncident' | 'incidents'>;

const ID_WIDTH = 12;

/**
 * LevelDB's memtable, 32 MiB against its default 4: a tenant ingesting syslog writes tens of MB a second, and each
 * memtable flushed is an L0 file that compactions read and write again. Measured (docs/benchmarks.md, syslog-ingest),
 * the tenant's CPU per event fell by about a fifth. A memtable grows with what was written since the last flush, up to
 * this bound (two while one is flushed): up to ~56 MiB more memory for a tenant that writes a lot, little for others.
 */
const STORE_WRITE_BUFFER = 32 * 1024 * 1024;

export class TenantStore {
  readonly db: Level<string, unknown>;
  readonly incidents: Sub<Incident>;
  readonly indicators: Sub<Indicator>;
  onCreate?: IncidentCreationHook;
  private nextSeq = 1;
  private firstNew = Infinity;

  constructor(dir: string) {
    this.db = new Level<string, unknown>(dir, { valueEncoding: 'json', writeBufferSize: STORE_WRITE_BUFFER });
    this.incidents = this.db.sublevel<string, Incident>('incidents', {
      valueEncoding: 'json',
    }) as unknown as Sub<Incident>;
    this.indicators = this.db.sublevel<string, Indicator>('indicators', {
      valueEncoding: 'json',
    }) as unknown as Sub<Indicator>;
  }

  async open(): Promise<void> {
    await this.db.open();
    for await (const k of this.incidents.keys({ reverse: true, limit: 1 })) this.nextSeq = Number(k) + 1;
    this.firstNew = this.nextSeq;
  }

  /**
   * Whether incident `id` was created since the store opened: ids are never those of an incident in the store then,
   * and whatever is kept under an incident's id goes with it (sites/site-purge.ts), so nothing was kept under it.
   */
  createdSinceOpen(id: string): boolean {
    return Number(id) >= this.firstNew;
  }

  close(): Promise<void> {
    return this.db.close();
  }

  static key(id: string): string {
    return id.padStart(ID_WIDTH, '0');
  }

  /**
   * Creates incidents in one atomic batch; returns them with ids. `alsoPut` adds records written in the same
   * batch, given the new incidents (fetching's de-duplication records: both land, or neither).
   */
  async createIncidents(
    items: Omit<Incident, 'id' | 'status' | 'created' | 'updated'>[],
    alsoPut: (created: Incident[]) => { sublevel: Sub<unknown>; key: string; value: unknown }[] = () => [],
  ): Promise<Incident[]> {
    const now = new Date().toISOString();
    // Explicit fields, not `{...i}`: spreading JSON-parsed objects was the largest cost of ingest (profiled).
    const out: Incident[] = items.map((i) => {
      const rec: Incident = {
        id: String(this.nextSeq++),
        name: i.name,
        type: i.type,
        severity: i.severity,
        details: i.details,
        status: 'open',
        created: now,
        updated: now,
      };
      if (i.labels) rec.labels = i.labels;
      if (i.domain !== undefined) rec.domain = i.domain;
      if (i.site) rec.site = i.site;
      return rec;
    });
    const hooked = this.onCreate ? await this.onCreate.ops(out) : [];
    // Through the root with `sublevel` per op: one encoding pass instead of the sublevel's own batch layer.
    await this.db.batch([
      ...out.map((i) => ({
        type: 'put' as const,
        sublevel: this.incidents,
        key: TenantStore.key(i.id),
        value: i,
      })),
      ...alsoPut(out).map((r) => ({ type: 'put' as const, ...r })),
      ...hooked,
    ] as never);
    this.onCreate?.committed(out);
    return out;
  }

  /** A point read (pointRead): a playbook run reads its incident once per task that uses it. */
  async getIncident(id: string): Promise<Incident> {
    const rec = /^[0-9]{1,12}$/.test(id) ? await pointRead(this.incidents, TenantStore.key(id)) : undefined;
    if (!rec) throw new NotFoundError('ERR_INCIDENT_NOT_FOUND', `no incident ${id} in this tenant`, { field: 'id' });
    return rec;
  }

  async putIncident(i: Incident): Promise<void> {
    await this.incidents.put(TenantStore.key(i.id), i);
  }

  /** Newest first; `cursor` is the last id of the previous page. */
  async listIncidents(
    f: IncidentFilter,
    limit: number,
    cursor?: string,
  ): Promise<{ items: Incident[]; next: string | null }> {
    const items: Incident[] = [];
    const q = f.q?.toLowerCase();
    const range = cursor ? { lt: TenantStore.key(cursor), reverse: true } : { reverse: true };
    const it = this.incidents.iterator(range);
    try {
      // nextv in pages: several times cheaper per record than one await per entry.
      outer: for (;;) {
        const entries = await it.nextv(Math.min(1000, limit + 1));
        if (entries.length === 0) break;
        for (const [, i] of entries) {
          if (f.status && i.status !== f.status) continue;
          if (f.severity !== undefined && i.severity !== f.severity) continue;
          if (f.type && i.type !== f.type) continue;
          if (f.site && i.site !== f.site) continue;
          if (f.domains && !f.domains.has(i.domain ?? DEFAULT_DOMAIN)) continue;
          if (q && !i.name.toLowerCase().includes(q) && !i.details.toLowerCase().includes(q)) continue;
          items.push(i);
          if (items.length > limit) break outer;
        }
      }
    } finally {
      await it.close();
    }
    const more = items.length > limit;
    if (more) items.pop();
    return { items, next: more ? items[items.length - 1].id : null };
  }

  static indicatorKey(type: string, value: string): string {
    return `${type}\u0000${value}`;
  }

  async upsertIndicator(
    type: string,
    value: string,
    patch: { reputation?: Reputation; incident?: string },
  ): Promise<Indicator> {
    const key = TenantStore.indicatorKey(type, value);
    const now = new Date().toISOString();
    const prev = await this.indicators.get(key);
    const next: Indicator = prev
      ? {
          ...prev,
          lastSeen: now,
          reputation: patch.reputation ?? prev.reputation,
          incidents:
            patch.incident && !prev.incidents.includes(patch.incident)
              ? [...prev.incidents, patch.incident]
              : prev.incidents,
        }
      : {
          type,
          value,
          reputation: patch.reputation ?? 'unknown',
          firstSeen: now,
          lastSeen: now,
          incidents: patch.incident ? [patch.incident] : [],
        };
    await this.indicators.put(key, next);
    return next;
  }

  async getIndicator(type: string, value: string): Promise<Indicator> {
    const rec = await this.indicators.get(TenantStore.indicatorKey(type, value));
    if (!rec)
      throw new NotFoundError('ERR_INDICATOR_NOT_FOUND', `no ${type} indicator "${value}" in this tenant`, {
        field: 'value',
      });
    return rec;
  }

  /**
   * Matching indicators, newest `lastSeen` first, at most `limit`. Keys are `type\0value`, so a value
   * (with or without its type) is a few point reads, one per type, and a type alone is its key range;
   * only a reputation alone reads every indicator. A scan keeps a top-k: memory stays O(limit) however
   * many indicators the tenant holds.
   */
  async listIndicators(f: IndicatorFilter, limit: number): Promise<Indicator[]> {
    const keep = new TopK<Indicator>(limit, newestSeenFirst);
    const matches = (i: Indicator | undefined): i is Indicator =>
      i !== undefined &&
      (f.value === undefined || i.value === f.value) &&
      (!f.type || i.type === f.type) &&
      (!f.reputation || i.reputation === f.reputation);
    if (f.value !== undefined) {
      const value = f.value;
      const types: readonly string[] = f.type ? [f.type] : INDICATOR_TYPES;
      for (const i of await this.indicators.getMany(types.map((t) => TenantStore.indicatorKey(t, value))))
        if (matches(i)) keep.offer(i);
      return keep.sorted();
    }
    const it = this.indicators.iterator(f.type ? { gte: `${f.type}\u0000`, lt: `${f.type}\u0001` } : {});
    try {
      for (;;) {
        const entries = await it.nextv(1000);
        if (entries.length === 0) break;
        for (const [, i] of entries) if (matches(i)) keep.offer(i);
      }
    } finally {
      await it.close();
    }
    return keep.sorted();
  }
}
