/**
 * Which version of an item each tenant should hold (docs/content.md#sharing-to-tenants): its own share's version
 * when its labels match the tenant's, and — for an item a shared playbook uses (docs/content.md#dependencies) — the
 * version that playbook's share recorded, or the item's own shared version if newer, on every tenant the playbook
 * targets. So a script a playbook took with it stays on those tenants while the playbook is there, and a new script
 * version reaches them when the playbook is shared again or the script itself is.
 * A snapshot of the library made once per operation; not the pushes (propagation.ts).
 */
import { scopeReaches } from '#common/connection-content.js';
import type { ContentItemRecord, Registry, SharedDependency, TenantRecord } from '../registry.js';

export function labelsMatch(itemLabels: readonly string[], tenantLabels: readonly string[]): boolean {
  return itemLabels.includes('all') || itemLabels.some((l) => tenantLabels.includes(l));
}

export class ShareTargets {
  /** Dependency id → the shared playbooks that took it, with the version each recorded. */
  private readonly users = new Map<string, { playbook: ContentItemRecord; dep: SharedDependency }[]>();

  constructor(items: Iterable<ContentItemRecord>) {
    for (const p of items)
      for (const dep of p.sharing?.dependencies ?? []) {
        const list = this.users.get(dep.id) ?? [];
        list.push({ playbook: p, dep });
        this.users.set(dep.id, list);
      }
  }

  static async load(registry: Registry): Promise<ShareTargets> {
    return new ShareTargets(await registry.content.values().all());
  }

  /**
   * The version the item's own share gives this tenant, or null: its labels must match and, for a connection, its
   * scope reach the tenant (a tenant out of scope never receives the item).
   */
  static own(item: ContentItemRecord, t: TenantRecord): number | null {
    if (!item.sharing || !labelsMatch(item.sharing.labels ?? item.labels, t.labels)) return null;
    const scope = item.sharing.scope;
    if (scope && !scopeReaches(scope, { name: t.name, region: t.region ?? null })) return null;
    return item.sharing.version;
  }

  /** What this tenant should hold of this item: the newest version its share or a playbook using it asks for. */
  target(item: ContentItemRecord, t: TenantRecord): number | null {
    let best = ShareTargets.own(item, t);
    for (const u of this.users.get(item.id) ?? []) {
      if (ShareTargets.own(u.playbook, t) === null) continue;
      const wanted = Math.max(u.dep.version, item.sharing?.version ?? 0);
      if (best === null || wanted > best) best = wanted;
    }
    return best;
  }
}
