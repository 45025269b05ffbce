/**
 * The playbook format and its check (common/playbook.ts): a good body parses from YAML and from JSON; each kind of
 * malformed playbook is refused with ERR_PLAYBOOK_INVALID and a message naming the task and the problem; cycles and
 * unreachable tasks are refused; `${…}` references are checked against inputs and outputs. No I/O.
 */
import { describe, expect, it } from 'vitest';
import { MAX_TASKS, parsePlaybook, type Playbook, type PlaybookTask } from '#common/playbook.js';

const GOOD_YAML = `
name: phishing triage
inputs:
  mailbox: {required: true}
start: lookup
tasks:
  lookup:
    type: integration
    integration: ticketing
    connection: helpdesk
    command: get
    args: {path: "/users/\${inputs.mailbox}", query: {incident: "\${incident.id}"}}
    output: user
    next: decide
  decide:
    type: condition
    branches:
      - when: {left: "\${context.user.body.vip}", op: eq, right: true}
        next: ask
    else: lower
  ask: {type: manual, prompt: "Call \${context.user.body.name}?", output: answer, next: raise}
  raise: {type: set-field, field: severity, value: 4}
  lower: {type: set-field, field: labels.triage, value: routine}
`;

const base = (): Playbook => ({
  name: 'p',
  start: 'a',
  tasks: {
    a: { type: 'integration', instance: 'aws1', command: 's3.list-buckets', output: 'buckets', next: 'b' },
    b: { type: 'set-field', field: 'status', value: 'closed' },
  },
});

/** `field|code|message` of the refusal a body gets, or `accepted`. */
function refusal(body: unknown): string {
  try {
    parsePlaybook(typeof body === 'string' ? body : JSON.stringify(body));
    return 'accepted';
  } catch (e) {
    const err = e as { code: string; field?: string; message: string };
    return `${err.field}|${err.code}|${err.message}`;
  }
}
const edited = (edit: (p: Playbook) => void): Playbook => {
  const p = base();
  edit(p);
  return p;
};

describe('playbook format', () => {
  it('parses a whole playbook from YAML, and the same from JSON', () => {
    const p = parsePlaybook(GOOD_YAML);
    expect(p.start).toBe('lookup');
    expect(Object.keys(p.tasks)).toEqual(['lookup', 'decide', 'ask', 'raise', 'lower']);
    expect(p.tasks.decide).toMatchObject({ type: 'condition', else: 'lower' });
    expect(parsePlaybook(JSON.stringify(p))).toEqual(p);
  });

  it('refuses a body that is neither YAML nor JSON, or a mapping with a key twice', () => {
    expect(refusal('name: [unclosed')).toMatch(/^body\|ERR_PLAYBOOK_INVALID\|body: is not YAML or JSON/);
    expect(refusal('name: a\nname: b\nstart: x\ntasks: {}')).toMatch(/^body\|/);
  });

  it.each([
    ['an unknown task type', (p: Playbook) => ((p.tasks.b as { type: string }).type = 'email'), 'tasks.b.type'],
    ['a next to a missing task', (p: Playbook) => ((p.tasks.b as { next?: string }).next = 'zz'), 'tasks.b.next'],
    ['a start that is no task', (p: Playbook) => (p.start = 'nope'), 'start'],
    ['an unknown field', (p: Playbook) => ((p.tasks.a as { retries?: number }).retries = 3), 'tasks.a.retries'],
    ['a missing command', (p: Playbook) => delete (p.tasks.a as { command?: string }).command, 'tasks.a.command'],
    ['an unknown incident field', (p: Playbook) => ((p.tasks.b as { field: string }).field = 'owner'), 'tasks.b.field'],
    ['a bad severity', (p: Playbook) => Object.assign(p.tasks.b, { field: 'severity', value: 9 }), 'tasks.b.value'],
    ['a bad status', (p: Playbook) => Object.assign(p.tasks.b, { value: 'done' }), 'tasks.b.value'],
    ['an object as a name', (p: Playbook) => Object.assign(p.tasks.b, { field: 'name', value: {} }), 'tasks.b.value'],
  ])('refuses %s, naming the field', (_what, edit, field) => {
    const r = refusal(edited(edit));
    expect(r.split('|').slice(0, 2)).toEqual([field, 'ERR_PLAYBOOK_INVALID']);
    expect(r.split('|')[2]).toMatch(new RegExp(`^${field.replace(/[.[\]]/g, '\\$&')}: `));
  });

  it('an integration task names an instance, or an integration and a connection, never both', () => {
    expect(refusal(edited((p) => Object.assign(p.tasks.a, { connection: 'c' })))).toContain(
      'tasks.a: names either an instance, or an integration and a connection',
    );
    const byConnection = edited((p) => {
      delete (p.tasks.a as { instance?: string }).instance;
      Object.assign(p.tasks.a, { integration: 'http' });
    });
    expect(refusal(byConnection)).toMatch(/^tasks\.a\|/);
    expect(
      refusal({ ...byConnection, tasks: { ...byConnection.tasks, a: { ...byConnection.tasks.a, connection: 'c' } } }),
    ).toBe('accepted');
  });

  it('refuses a task no path from start reaches', () => {
    const p = edited((x) => (x.tasks.orphan = { type: 'manual', prompt: 'never asked' }));
    expect(refusal(p)).toBe('tasks.orphan|ERR_PLAYBOOK_INVALID|tasks.orphan: no path from start (a) reaches it');
  });

  it('refuses a cycle, even through a manual task, and names the loop', () => {
    const p = edited((x) => {
      (x.tasks.b as { next?: string }).next = 'c';
      x.tasks.c = { type: 'manual', prompt: 'again?', next: 'a' };
    });
    expect(refusal(p)).toBe(
      "tasks.c|ERR_PLAYBOOK_INVALID|tasks.c: goes back to a, a cycle (a → b → c → a); a playbook's tasks form no cycle",
    );
  });

  it('allows two branches to join again (a diamond is no cycle)', () => {
    const p: Playbook = {
      name: 'diamond',
      start: 'c',
      tasks: {
        c: { type: 'condition', branches: [{ when: { left: 1, op: 'exists' }, next: 'x' }], else: 'y' },
        x: { type: 'set-field', field: 'name', value: 'x', next: 'z' },
        y: { type: 'set-field', field: 'name', value: 'y', next: 'z' },
        z: { type: 'manual', prompt: 'done?' },
      },
    };
    expect(refusal(p)).toBe('accepted');
  });

  it('a condition needs `right` except for exists', () => {
    const p: Playbook = {
      name: 'c',
      start: 'c',
      tasks: { c: { type: 'condition', branches: [{ when: { left: 1, op: 'gt' }, next: 'd' }] }, d: base().tasks.b },
    };
    expect(refusal(p)).toMatch(/^tasks\.c\.branches\[0\]\.when\.right\|.*is required with op gt$/);
  });

  it('checks ${…}: a known root, a declared input, an output some task sets, an incident field', () => {
    const withArgs = (args: Record<string, unknown>) => edited((p) => Object.assign(p.tasks.a, { args }));
    expect(refusal(withArgs({ x: '${context.buckets.list}', y: 'id ${incident.id}' }))).toBe('accepted');
    expect(refusal(withArgs({ x: '${inputs.who}' }))).toContain(
      'tasks.a.args.x: ${inputs.who}: the playbook declares no input who',
    );
    expect(refusal(withArgs({ x: ['${context.nothing}'] }))).toContain(
      'tasks.a.args.x[0]: ${context.nothing}: no task',
    );
    expect(refusal(withArgs({ x: '${incident.owner}' }))).toContain('an incident has id, name');
    expect(refusal(withArgs({ x: '${env.HOME}' }))).toContain('${env.HOME} is not ${incident.FIELD}');
  });

  it('takes a script task naming its script, and refuses one without', () => {
    const ok = edited((x) => {
      x.tasks.b = { type: 'script', script: 'enrich', input: { user: '${incident.name}' }, output: 'enriched' };
    });
    expect(refusal(ok)).toBe('accepted');
    const missing = edited((x) => {
      x.tasks.b = { type: 'script' } as unknown as PlaybookTask;
    });
    expect(refusal(missing)).toContain('ERR_PLAYBOOK_INVALID');
  });

  it("checks a script task's input like any other value", () => {
    const p = edited((x) => {
      x.tasks.b = { type: 'script', script: 'enrich', input: { deep: ['${context.nothing}'] } };
    });
    expect(refusal(p)).toBe(
      'tasks.b.input.deep[0]|ERR_PLAYBOOK_INVALID|tasks.b.input.deep[0]: ${context.nothing}: no task has output nothing',
    );
  });

  it.each(['__proto__', 'constructor', 'prototype'])('refuses %s as an output or an input name', (name) => {
    expect(refusal(edited((x) => Object.assign(x.tasks.a, { output: name })))).toBe(
      `tasks.a.output|ERR_PLAYBOOK_INVALID|tasks.a.output: "${name}" is reserved; pick another name`,
    );
    // As JSON text: an object literal's __proto__ would set the prototype, not a key.
    const body = JSON.stringify(base()).replace('"start"', `"inputs":{"${name}":{}},"start"`);
    expect(refusal(body)).toBe(
      `inputs.${name}|ERR_PLAYBOOK_INVALID|inputs.${name}: "${name}" is reserved; pick another name`,
    );
  });

  it(`bounds the size at ${MAX_TASKS} tasks`, () => {
    const many = (n: number): Playbook => {
      const tasks: Playbook['tasks'] = {};
      for (let i = 0; i < n; i++)
        tasks[`t${i}`] = {
          type: 'set-field',
          field: 'name',
          value: `${i}`,
          ...(i + 1 < n ? { next: `t${i + 1}` } : {}),
        };
      return { name: 'long', start: 't0', tasks };
    };
    expect(refusal(many(MAX_TASKS))).toBe('accepted');
    expect(refusal(many(MAX_TASKS + 1))).toMatch(/^tasks\|ERR_PLAYBOOK_INVALID\|tasks: must NOT have more than 200/);
  });
});
