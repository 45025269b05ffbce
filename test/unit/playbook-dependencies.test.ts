/**
 * What a shared playbook takes with it (main/content/playbook-dependencies.ts): the scripts, sub-playbooks and
 * integration definitions its tasks name, by id or by name, transitively, each after what it uses; built-ins and
 * names the library lacks (the tenant's own items) take nothing; an unpublished, ambiguous or cyclic one is a
 * problem naming it. And which version each tenant should hold (share-targets.ts). No I/O.
 */
import { describe, expect, it } from 'vitest';
import { parsePlaybook } from '#common/playbook.js';
import { resolveDependencies, taskReferences, type LibraryEntry } from '../../main/content/playbook-dependencies.js';
import { ShareTargets } from '../../main/content/share-targets.js';
import type { ContentItemRecord, TenantRecord } from '../../main/registry.js';

/** A playbook body whose tasks run one after another: each `[type, field, ref]` a task. */
function chain(name: string, tasks: [string, string, string][]): string {
  const lines = tasks.map(([type, field, ref], i) => {
    const next = i + 1 < tasks.length ? `, next: t${i + 1}` : '';
    const extra =
      field === 'integration' ? ', connection: c, command: x' : type === 'integration' ? ', command: x' : '';
    return `  t${i}: {type: ${type}, ${field}: ${JSON.stringify(ref)}${extra}${next}}`;
  });
  return `name: ${name}\nstart: t0\ntasks:\n${lines.join('\n')}\n`;
}
const entry = (id: string, type: string, name: string, body: string | null, definition?: string): LibraryEntry => ({
  id,
  type,
  name,
  published: body === null ? null : 3,
  body,
  ...(definition ? { definition } : {}),
});
const ticketing = entry('cnt_000000000003', 'integration', 'Ticketing API', '{}', 'ticketing');
const enrich = entry('cnt_000000000001', 'script', 'enrich', 'return 1');
const sub = entry('cnt_000000000002', 'playbook', 'contain', chain('contain', [['script', 'script', 'enrich']]));

describe('task references', () => {
  it('names scripts, sub-playbooks and custom integrations; not the built-ins nor instances', () => {
    const p = parsePlaybook(
      chain('p', [
        ['script', 'script', 'enrich'],
        ['playbook', 'playbook', 'cnt_000000000002'],
        ['integration', 'integration', 'aws'],
        ['integration', 'integration', 'ticketing'],
        ['integration', 'instance', 'my-instance'],
      ]),
    );
    expect(taskReferences(p)).toEqual([
      { task: 't0', field: 'script', type: 'script', ref: 'enrich' },
      { task: 't1', field: 'playbook', type: 'playbook', ref: 'cnt_000000000002' },
      { task: 't3', field: 'integration', type: 'integration', ref: 'ticketing' },
    ]);
  });
});

describe('resolving dependencies', () => {
  const root = (tasks: [string, string, string][]) => ({
    id: 'cnt_00000000000f',
    name: 'root',
    body: chain('root', tasks),
  });

  it('orders them transitively, each once and after what it uses, by id or name', () => {
    const d = resolveDependencies(
      root([
        ['playbook', 'playbook', 'cnt_000000000002'],
        ['script', 'script', 'cnt_000000000001'],
        ['integration', 'integration', 'ticketing'],
      ]),
      [ticketing, enrich, sub],
    );
    expect(d.problems).toEqual([]);
    expect(d.order.map((x) => [x.type, x.name, x.version])).toEqual([
      ['script', 'enrich', 3],
      ['playbook', 'contain', 3],
      ['integration', 'Ticketing API', 3],
    ]);
  });

  it('a name the library lacks is the tenant’s own item: nothing travels, no problem', () => {
    expect(resolveDependencies(root([['script', 'script', 'local-only']]), [enrich])).toEqual({
      order: [],
      problems: [],
    });
  });

  it('names an unpublished dependency, and a name two items share, as problems', () => {
    const draft = entry('cnt_000000000004', 'script', 'draft', null);
    const twin = entry('cnt_000000000005', 'script', 'enrich', 'return 2');
    const d = resolveDependencies(
      root([
        ['script', 'script', 'draft'],
        ['script', 'script', 'enrich'],
      ]),
      [draft, enrich, twin],
    );
    expect(d.order).toEqual([]);
    expect(d.problems.map((p) => p.kind)).toEqual(['unpublished', 'ambiguous']);
    expect(d.problems[0].message).toBe(
      'missing dependency script "draft" (task t0 of playbook "root"): it has no published version',
    );
    expect(d.problems[1].message).toContain('cnt_000000000001, cnt_000000000005');
  });

  it('refuses sub-playbooks that call each other, naming the loop', () => {
    const a = entry('cnt_00000000000a', 'playbook', 'a', chain('a', [['playbook', 'playbook', 'b']]));
    const b = entry('cnt_00000000000b', 'playbook', 'b', chain('b', [['playbook', 'playbook', 'a']]));
    const d = resolveDependencies(root([['playbook', 'playbook', 'a']]), [a, b]);
    expect(d.problems).toEqual([
      { kind: 'cycle', message: 'sub-playbooks call each other ("a" → "b" → "a"): no order can hold them' },
    ]);
  });
});

describe('share targets', () => {
  const tenant = (name: string, labels: string[]) => ({ name, labels }) as unknown as TenantRecord;
  const item = (id: string, sharing: ContentItemRecord['sharing']) =>
    ({ id, type: 'script', name: id, labels: ['emea'], latest: 5, published: 5, sharing }) as ContentItemRecord;
  const emea = tenant('emea-a', ['emea']);
  const apac = tenant('apac-a', ['apac']);
  const script = item('s', null);
  const playbook = item('p', {
    version: 1,
    at: '',
    by: 'u',
    labels: ['emea'],
    dependencies: [{ id: 's', type: 'script', name: 's', version: 2 }],
  });

  it('a dependency is wanted where its playbook is, at the version the share took', () => {
    const t = new ShareTargets([script, playbook]);
    expect(t.target(script, emea)).toBe(2);
    expect(t.target(script, apac)).toBeNull();
  });

  it('the script shared again at a newer version reaches the tenants that hold playbooks using it', () => {
    const shared = item('s', { version: 4, at: '', by: 'u', labels: ['nobody'] });
    expect(new ShareTargets([shared, playbook]).target(shared, emea)).toBe(4);
    expect(new ShareTargets([shared, playbook]).target(shared, apac)).toBeNull();
  });

  it('once the playbook is unshared, nothing wants the script there', () => {
    expect(new ShareTargets([script, { ...playbook, sharing: null }]).target(script, emea)).toBeNull();
  });
});
