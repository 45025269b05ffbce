/**
 * What a shared playbook takes with it (docs/content.md#dependencies): the library items its tasks name, found
 * transitively through its sub-playbooks, in the order a tenant must receive them (what is used before what uses it).
 * Pure: it reads a snapshot of main's library (LibraryEntry, made by dependency-rules.ts), never the registry.
 *
 * A task names its dependency the way the tenant's runner will look it up: a `script` task's `script` and a
 * `playbook` task's `playbook` by content id, else by name among items of that type; an `integration` task's
 * `integration` by the definition's own `name` (its body's, as agent/tenant/integration-catalog.ts matches it);
 * the built-ins `aws` and `http` are not content. `instance` tasks name a tenant's instance, and lists are named by
 * no task yet, so neither is a dependency.
 *
 * The contested decision: a name that matches no library item is not an error but the tenant's own item (a tenant
 * may write its own scripts and playbooks, `loc_…`, and a shared playbook may call them), so it travels with nothing.
 * A name that matches several items is refused at publish (dependency-rules.ts); if it becomes ambiguous later, or a
 * dependency has no published version, or sub-playbooks call each other in a cycle, the share records a problem
 * and no tenant is given the playbook until it is fixed and shared again.
 * Not the pushes (propagation.ts) nor which version each tenant should hold (share-targets.ts).
 */
import { BUILT_IN_INTEGRATIONS } from '#common/integration-definition.js';
import { parsePlaybook, type Playbook } from '#common/playbook.js';

export const DEPENDENCY_TYPES = ['script', 'playbook', 'integration'] as const;
export type DependencyType = (typeof DEPENDENCY_TYPES)[number];

/** One item of main's library as dependency resolution sees it. */
export interface LibraryEntry {
  id: string;
  type: string;
  name: string;
  published: number | null;
  /** The published version's body; null when nothing is published. */
  body: string | null;
  /** For an integration: the definition's `name` (of the published body, else of the latest draft). */
  definition?: string;
}
/** A task's reference to something outside the playbook. */
export interface TaskReference {
  task: string;
  field: string;
  type: DependencyType;
  ref: string;
}
/** A dependency to push, at the version pushed. */
export interface Dependency {
  id: string;
  type: DependencyType;
  name: string;
  version: number;
}
export interface Dependencies {
  /** Every dependency once, each after what it uses itself. */
  order: Dependency[];
  /** Why some are missing, each naming the dependency (`missing dependency script "enrich" (…): …`). */
  problems: DependencyProblem[];
}
export interface DependencyProblem {
  kind: 'ambiguous' | 'unpublished' | 'cycle';
  message: string;
}

/** What the playbook's tasks name outside it, in task order. */
export function taskReferences(p: Playbook): TaskReference[] {
  const out: TaskReference[] = [];
  for (const [task, t] of Object.entries(p.tasks)) {
    if (t.type === 'script') out.push({ task, field: 'script', type: 'script', ref: t.script });
    if (t.type === 'playbook') out.push({ task, field: 'playbook', type: 'playbook', ref: t.playbook });
    if (t.type === 'integration' && t.integration && !BUILT_IN_INTEGRATIONS.includes(t.integration))
      out.push({ task, field: 'integration', type: 'integration', ref: t.integration });
  }
  return out;
}

/** The library items a reference could mean: by id, else by name (a definition's name for integrations). */
export function candidates(library: readonly LibraryEntry[], r: Pick<TaskReference, 'type' | 'ref'>): LibraryEntry[] {
  const ofType = library.filter((e) => e.type === r.type);
  const byId = ofType.find((e) => e.id === r.ref);
  if (byId) return [byId];
  return ofType.filter((e) => (r.type === 'integration' ? e.definition === r.ref : e.name === r.ref));
}

/** `2 scripts are named "x" in the library (cnt_…, cnt_…); name one by its id` */
export function ambiguity(r: TaskReference, found: readonly LibraryEntry[]): string {
  return `${found.length} ${r.type}s are named "${r.ref}" in the library (${found.map((e) => e.id).join(', ')}); name one by its id`;
}

/**
 * The dependencies of the playbook `root` (its published body `body`), depth first so each comes after what it uses.
 */
export function resolveDependencies(
  root: { id: string; name: string; body: string },
  library: readonly LibraryEntry[],
): Dependencies {
  const out: Dependencies = { order: [], problems: [] };
  const placed = new Set<string>();
  const path = [root.id];
  const names = new Map([[root.id, root.name]]);
  const problem = (kind: DependencyProblem['kind'], message: string) => {
    if (!out.problems.some((p) => p.message === message)) out.problems.push({ kind, message });
  };
  const visit = (p: Playbook, where: string): void => {
    for (const r of taskReferences(p)) {
      const at = `task ${r.task} of ${where}`;
      const found = candidates(library, r);
      if (found.length === 0) continue; // the tenant's own item (see the header)
      if (found.length > 1) {
        problem('ambiguous', `ambiguous dependency ${r.type} "${r.ref}" (${at}): ${ambiguity(r, found)}`);
        continue;
      }
      const e = found[0];
      if (path.includes(e.id)) {
        const loop = [...path.slice(path.indexOf(e.id)), e.id].map((id) => `"${names.get(id) ?? id}"`).join(' → ');
        problem('cycle', `sub-playbooks call each other (${loop}): no order can hold them`);
        continue;
      }
      if (placed.has(e.id)) continue;
      if (e.published === null || e.body === null) {
        problem('unpublished', `missing dependency ${r.type} "${e.name}" (${at}): it has no published version`);
        continue;
      }
      if (e.type === 'playbook') {
        path.push(e.id);
        names.set(e.id, e.name);
        visit(parsePlaybook(e.body), `playbook "${e.name}"`); // checked at its publish
        path.pop();
      }
      placed.add(e.id);
      out.order.push({ id: e.id, type: r.type, name: e.name, version: e.published });
    }
  };
  visit(parsePlaybook(root.body), `playbook "${root.name}"`);
  return out;
}
