/**
 * A tenant's sites (docs/sites.md), one record each in the sublevel `sites`: whether it is active, and what the
 * last share the tenant applied did for it. Every change goes through one chain, so a share being applied and a
 * site being deactivated cannot interleave their read-modify-writes. Not the removal of a site's data
 * (site-purge.ts) nor HTTP (site-routes.ts).
 */
import type { Level } from 'level';
import { BadParameterError, ConflictError, NotFoundError } from '#common/errors.js';
import type { ShareSites, SiteView } from '#common/sites.js';
import type { Sub } from '../store.js';

/**
 * Sites per tenant: a customer's offices or plants number in the tens; the bound keeps a list (and the names a
 * share's answer carries back to main) small whatever a caller scripts.
 */
export const MAX_SITES = 500;

export class SiteStore {
  private readonly sites: Sub<SiteView>;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(db: Level<string, unknown>) {
    this.sites = db.sublevel<string, SiteView>('sites', { valueEncoding: 'json' }) as unknown as Sub<SiteView>;
  }

  /** Runs `fn` after every earlier change has finished. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn, fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  async list(): Promise<SiteView[]> {
    return this.sites.values().all();
  }

  async get(name: string): Promise<SiteView> {
    const s = await this.sites.get(name);
    if (!s) throw new NotFoundError('ERR_SITE_NOT_FOUND', `no site ${name} in this tenant`, { field: 'name' });
    return s;
  }

  /** Whether the site is there and inactive (a connection scoped to it is not valid there until it is activated). */
  async isInactive(name: string): Promise<boolean> {
    return (await this.sites.get(name))?.active === false;
  }

  /** Refuses an incident naming a site that is not there or inactive; `field` names where it came in. */
  async checkActive(name: string, field: string): Promise<void> {
    const s = await this.sites.get(name);
    if (!s?.active)
      throw new BadParameterError(
        'ERR_SITE_INACTIVE',
        `${field}: ${s ? `site ${name} is inactive` : `no site ${name} in this tenant`}; name an active site`,
        { field },
      );
  }

  create(name: string): Promise<SiteView> {
    return this.serial(async () => {
      if (await this.sites.get(name))
        throw new ConflictError('ERR_SITE_EXISTS', `name: site ${name} exists in this tenant`, { field: 'name' });
      let n = 0;
      for await (const _ of this.sites.keys()) n++;
      if (n >= MAX_SITES)
        throw new ConflictError('ERR_SITE_LIMIT', `name: this tenant holds its maximum of ${MAX_SITES} sites`, {
          field: 'name',
        });
      const now = new Date().toISOString();
      const s: SiteView = {
        name,
        active: true,
        syncStatus: 'pending',
        lastSynced: null,
        lastSyncedItem: null,
        created: now,
        updated: now,
      };
      await this.sites.put(name, s);
      return s;
    });
  }

  /** Active again, empty, and pending until the next share reaches it; an active site is left as it is. */
  activate(name: string): Promise<SiteView> {
    return this.serial(async () => {
      const s = await this.get(name);
      if (s.active) return s;
      const next: SiteView = {
        ...s,
        active: true,
        syncStatus: 'pending',
        lastSynced: null,
        lastSyncedItem: null,
        updated: new Date().toISOString(),
      };
      await this.sites.put(name, next);
      return next;
    });
  }

  /** Inactive: no incident may name it from now on (its data is removed after this, site-purge.ts). */
  deactivate(name: string): Promise<SiteView> {
    return this.serial(async () => {
      const s = await this.get(name);
      const next: SiteView = { ...s, active: false, syncStatus: 'inactive', updated: new Date().toISOString() };
      await this.sites.put(name, next);
      return next;
    });
  }

  /** A shared item the tenant now holds at `version`: every active site is synced with it; the inactive are named. */
  shared(item: string, version: number): Promise<ShareSites> {
    return this.serial(async () => {
      const out: ShareSites = { synced: [], inactive: [] };
      const now = new Date().toISOString();
      const ops: { type: 'put'; key: string; value: SiteView }[] = [];
      for (const s of await this.list()) {
        if (!s.active) {
          out.inactive.push(s.name);
          continue;
        }
        out.synced.push(s.name);
        const next: SiteView = {
          ...s,
          syncStatus: 'synced',
          lastSynced: now,
          lastSyncedItem: { id: item, version },
          updated: now,
        };
        ops.push({ type: 'put', key: s.name, value: next });
      }
      if (ops.length) await this.sites.batch(ops);
      return out;
    });
  }
}
