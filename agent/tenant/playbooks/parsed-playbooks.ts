/**
 * Playbooks as the runner uses them, parsed once per item version: parsing a playbook's YAML or JSON costs ~0.6 ms
 * on every start otherwise (bench/playbook-runs.ts). Keyed by the item's id, version and update time, so any new
 * body (a local edit adds a version, a share brings main's) is parsed anew; the parsed object is never changed.
 * Not the lookup of an item by reference (playbook-runner.ts resolve).
 */
import { parsePlaybook, type Playbook } from '#common/playbook.js';
import type { TenantContentItem } from '../content-store.js';

/** Parsed playbooks kept: a tenant runs a few dozen playbooks at most; past it the oldest entry goes. */
const PARSED_CACHE = 64;

export class ParsedPlaybooks {
  private readonly byKey = new Map<string, Playbook>();

  of(item: TenantContentItem): Playbook {
    const key = `${item.id}@${item.version}@${item.updated}`;
    let p = this.byKey.get(key);
    if (!p) {
      p = parsePlaybook(item.body);
      if (this.byKey.size >= PARSED_CACHE) this.byKey.delete(this.byKey.keys().next().value!);
      this.byKey.set(key, p);
    }
    return p;
  }
}
