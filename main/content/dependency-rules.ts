/**
 * Main's side of playbook dependencies that reads the library: the snapshot resolution works on (libraryIndex), what
 * a playbook's share records (shareDependencies), and the content rule that refuses, at publish, a playbook whose
 * task names a library item ambiguously — 400 ERR_PLAYBOOK_DEPENDENCY naming the task — or whose sub-playbooks would
 * call each other in a cycle. A name that matches nothing stays allowed: it is the tenant's own item
 * (playbook-dependencies.ts says why).
 * Not the resolution itself (playbook-dependencies.ts) nor the pushes (propagation.ts).
 */
import { BadParameterError } from '#common/errors.js';
import { parseIntegrationDefinition } from '#common/integration-definition.js';
import { parsePlaybook } from '#common/playbook.js';
import { padId, type ContentItemRecord, type Registry } from '../registry.js';
import type { ContentLibrary, ContentRules } from './library.js';
import {
  ambiguity,
  candidates,
  resolveDependencies,
  taskReferences,
  type LibraryEntry,
} from './playbook-dependencies.js';

/** Every script, playbook and integration of the library with its published body (one registry read each). */
export async function libraryIndex(registry: Registry): Promise<LibraryEntry[]> {
  const out: LibraryEntry[] = [];
  for await (const i of registry.content.values()) {
    if (i.type !== 'script' && i.type !== 'playbook' && i.type !== 'integration') continue;
    const body =
      i.published === null
        ? null
        : ((await registry.contentVersions.get(`${i.id}!${padId(i.published)}`))?.body ?? null);
    const e: LibraryEntry = { id: i.id, type: i.type, name: i.name, published: i.published, body };
    if (i.type === 'integration') e.definition = await definitionName(registry, i.id, body ?? undefined, i.latest);
    out.push(e);
  }
  return out;
}

async function definitionName(registry: Registry, id: string, body: string | undefined, latest: number) {
  const text = body ?? (await registry.contentVersions.get(`${id}!${padId(latest)}`))?.body;
  try {
    return text === undefined ? undefined : parseIntegrationDefinition(text).name;
  } catch {
    return undefined; // a draft that is not a definition yet names nothing
  }
}

export function dependencyRules(registry: Registry): ContentRules {
  return {
    async publishing(item, body) {
      if (item.type !== 'playbook') return;
      const p = parsePlaybook(body);
      const library = (await libraryIndex(registry)).filter((e) => e.id !== item.id);
      for (const r of taskReferences(p)) {
        const found = candidates(library, r);
        if (found.length > 1) throw refusal(`tasks.${r.task}.${r.field}`, ambiguity(r, found));
      }
      const self = { id: item.id, type: 'playbook', name: item.name, published: 0, body };
      const cycle = resolveDependencies(self, [...library, self]).problems.find((m) => m.kind === 'cycle');
      if (cycle) throw refusal('tasks', cycle.message);
    },
  };
}

const refusal = (field: string, why: string) =>
  new BadParameterError('ERR_PLAYBOOK_DEPENDENCY', `${field}: ${why}`, { field });

/**
 * What a playbook's share records (propagation.ts pushes it); other items take nothing along. With a problem the
 * playbook is held back on every tenant, which keeps the version it had: what the last share took along stays
 * recorded too, so those tenants keep what their playbook uses.
 */
export async function shareDependencies(lib: ContentLibrary, item: ContentItemRecord, version: number) {
  if (item.type !== 'playbook') return {};
  const v = await lib.version(item.id, version);
  const deps = resolveDependencies({ id: item.id, name: v.name, body: v.body }, await libraryIndex(lib.registry));
  const kept = deps.problems.length
    ? (item.sharing?.dependencies ?? []).filter((old) => !deps.order.some((d) => d.id === old.id))
    : [];
  return { dependencies: [...kept, ...deps.order], problems: deps.problems.map((p) => p.message) };
}

/** The share log's note of what a playbook's share takes along (or cannot). */
export function dependencyNote(item: ContentItemRecord): string {
  const deps = item.sharing?.dependencies ?? [];
  const took = deps.length ? `; with ${deps.map((d) => `${d.type} "${d.name}" v${d.version}`).join(', ')}` : '';
  const problems = item.sharing?.problems ?? [];
  return took + (problems.length ? `; ${problems.join('; ')}` : '');
}

/**
 * The reason of a share's log entry: the tenants its labels (or names) reach, else that none has its labels; then the
 * tenants that get it as a dependency of a shared playbook they hold, and what it took along.
 */
export function shareReason(item: ContentItemRecord, matched: readonly string[], through: readonly string[]): string {
  const own = matched.length
    ? `to ${matched.join(', ')}`
    : `no tenant has label ${item.labels.join(' or ') || '(none)'}`;
  const also = through.length
    ? `; ${matched.length ? 'also ' : ''}to ${through.join(', ')}, whose shared playbooks use it`
    : '';
  return own + also + dependencyNote(item);
}
