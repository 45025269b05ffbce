/**
 * The list form of a playbook body (DESIGN §7; common/playbook-list-form.ts): DESIGN's own example parses to the map
 * form it stands for, from JSON and from YAML; each refusal of the list form names the list item and field as the
 * user wrote them (`tasks[1].then`), the map form's later checks too; the map form is read as before. No I/O.
 */
import { describe, expect, it } from 'vitest';
import { parsePlaybook, type Playbook } from '#common/playbook.js';

/** DESIGN §7's example, with an instance, a command, a condition and a script named. */
const DESIGN = {
  start: 't1',
  tasks: [
    {
      id: 't1',
      kind: 'integration',
      instance: 'directory',
      command: 'request',
      args: { method: 'GET', path: '/users/${incident.name}' },
      next: ['t2'],
    },
    { id: 't2', kind: 'condition', if: '${context.t1.status} == 200', then: ['t3'], else: ['t4'] },
    { id: 't3', kind: 'set-field', field: 'severity', value: 4 },
    { id: 't4', kind: 'script', script: 'enrich', args: { user: '${incident.name}' } },
    { id: 't5', kind: 'manual', prompt: 'Lock the account?' },
  ],
};
const EQUIVALENT: Playbook = {
  name: 'playbook',
  start: 't1',
  tasks: {
    t1: {
      type: 'integration',
      instance: 'directory',
      command: 'request',
      args: { method: 'GET', path: '/users/${incident.name}' },
      next: 't2',
      output: 't1',
    },
    t2: {
      type: 'condition',
      branches: [{ when: { left: '${context.t1.status}', op: 'eq', right: 200 }, next: 't3' }],
      else: 't4',
    },
    t3: { type: 'set-field', field: 'severity', value: 4 },
    t4: { type: 'script', script: 'enrich', input: { user: '${incident.name}' }, output: 't4' },
    t5: { type: 'manual', prompt: 'Lock the account?', output: 't5' },
  },
};

/** `field|message` of the refusal a body gets, or `accepted`. */
function refusal(body: unknown): string {
  try {
    parsePlaybook(typeof body === 'string' ? body : JSON.stringify(body));
    return 'accepted';
  } catch (e) {
    const err = e as { code: string; field?: string; message: string };
    expect(err.code).toBe('ERR_PLAYBOOK_INVALID');
    expect(err.message.startsWith(`${err.field}: `)).toBe(true);
    return `${err.field}|${err.message.slice(`${err.field}: `.length)}`;
  }
}
/** DESIGN's example with task `i` changed (`undefined` values remove a field). */
function withTask(i: number, change: Record<string, unknown>): unknown {
  const tasks = DESIGN.tasks.map((t) => ({ ...t })) as Record<string, unknown>[];
  Object.assign(tasks[i], change);
  for (const [k, v] of Object.entries(change)) if (v === undefined) delete tasks[i][k];
  return { ...DESIGN, tasks };
}
const ifOf = (expr: unknown) => {
  const t = parsePlaybook(JSON.stringify(withTask(1, { if: expr }))).tasks.t2;
  return t.type === 'condition' ? t.branches[0].when : undefined;
};

describe('playbook list form', () => {
  it("parses DESIGN's example to the map form it stands for, and the map form as before", () => {
    expect(parsePlaybook(JSON.stringify(DESIGN))).toEqual(EQUIVALENT);
    // The map form refuses t5 (nothing leads to it); the list form keeps it, as DESIGN's example lists one.
    const { t5: _t5, ...reached } = EQUIVALENT.tasks;
    const map = { ...EQUIVALENT, tasks: reached };
    expect(parsePlaybook(JSON.stringify(map))).toEqual(map);
    expect(refusal(EQUIVALENT)).toBe('tasks.t5|no path from start (t1) reaches it');
  });

  it('reads the list form from YAML, with type for kind, next as a string, a name, and no start', () => {
    const p = parsePlaybook(`
name: triage
tasks:
  - id: ask
    type: manual
    prompt: go on?
    output: answer
    next: decide
  - id: decide
    kind: condition
    if: \${context.answer.ok}
    then: [close]
  - {id: close, kind: set-field, field: status, value: closed, next: []}
`);
    expect(p).toEqual({
      name: 'triage',
      start: 'ask',
      tasks: {
        ask: { type: 'manual', prompt: 'go on?', output: 'answer', next: 'decide' },
        decide: {
          type: 'condition',
          branches: [{ when: { left: '${context.answer.ok}', op: 'eq', right: true }, next: 'close' }],
        },
        close: { type: 'set-field', field: 'status', value: 'closed' },
      },
    });
  });

  it('reads each string operator, JSON literals on either side, and our condition object', () => {
    const sev = '${incident.severity}';
    expect(ifOf(`${sev} == 3`)).toEqual({ left: sev, op: 'eq', right: 3 });
    expect(ifOf(`${sev}!=-1.5`)).toEqual({ left: sev, op: 'ne', right: -1.5 });
    expect(ifOf(`${sev} > 2`)).toMatchObject({ op: 'gt' });
    expect(ifOf(`${sev} >= 2`)).toMatchObject({ op: 'gte' });
    expect(ifOf(`${sev} < 2`)).toMatchObject({ op: 'lt' });
    expect(ifOf(`${sev} <= 2`)).toMatchObject({ op: 'lte' });
    expect(ifOf(`${sev} in [3, 4]`)).toEqual({ left: sev, op: 'in', right: [3, 4] });
    expect(ifOf('${incident.name} contains "a == b"')).toEqual({
      left: '${incident.name}',
      op: 'contains',
      right: 'a == b',
    });
    expect(ifOf("'vip' == ${incident.type}")).toEqual({ left: 'vip', op: 'eq', right: '${incident.type}' });
    expect(ifOf(`null != ${sev}`)).toEqual({ left: null, op: 'ne', right: sev });
    expect(ifOf(`  ${sev} == true  `)).toEqual({ left: sev, op: 'eq', right: true });
    expect(ifOf({ left: sev, op: 'gte', right: 3 })).toEqual({ left: sev, op: 'gte', right: 3 });
    expect(ifOf({ left: sev, op: '>=', right: 3 })).toEqual({ left: sev, op: 'gte', right: 3 });
  });

  it.each([
    ['a plain word', 'severity > 3'],
    ['an unknown operator', '${incident.severity} ~ 3'],
    ['no right side', '${incident.severity} =='],
    ['two conditions', '${incident.severity} > 1 && ${incident.severity} < 4'],
    ['an unclosed placeholder', '${incident.severity == 3'],
    ['an unclosed string', '${incident.name} == "abc'],
    ['a word operator glued on', '${incident.name} containsx "a"'],
    ['a number', 5],
    ['a list', ['${incident.severity}', '==', 3]],
  ])('refuses %s as an if, naming tasks[1].if and saying the forms', (_what, expr) => {
    expect(refusal(withTask(1, { if: expr }))).toMatch(/^tasks\[1\]\.if\|must be \{left, op, right\}, a string "LEFT/);
  });

  it.each([
    ['a duplicate id', withTask(2, { id: 't1' }), 'tasks[2].id|"t1" is already the id of tasks[0]'],
    ['no id', withTask(0, { id: undefined }), 'tasks[0].id|is required'],
    ['a bad id', withTask(0, { id: '1st' }), 'tasks[0].id|must be letters, digits, _ and -, from a letter, at most 64'],
    ['no kind', withTask(2, { kind: undefined }), 'tasks[2].kind|is required'],
    [
      'kind and type apart',
      withTask(2, { type: 'manual' }),
      'tasks[2].kind|says set-field but type says manual; give one',
    ],
    ['an item not an object', { start: 't', tasks: ['t'] }, 'tasks[0]|must be an object (a task with id and kind)'],
    [
      'two next tasks',
      withTask(0, { next: ['t2', 't3'] }),
      'tasks[0].next|name one next task (parallel branches are not supported)',
    ],
    [
      'two then tasks',
      withTask(1, { then: ['t3', 't5'] }),
      'tasks[1].then|name one next task (parallel branches are not supported)',
    ],
    [
      'two else tasks',
      withTask(1, { else: ['t3', 't4'] }),
      'tasks[1].else|name one next task (parallel branches are not supported)',
    ],
    ['a next of a number', withTask(0, { next: 2 }), 'tasks[0].next|must be a list of at most one task id'],
    ['a next list of a number', withTask(0, { next: [2] }), 'tasks[0].next[0]|must be a task id'],
    [
      'a condition going nowhere',
      withTask(1, { then: undefined, else: [] }),
      'tasks[1].then|a condition needs then or else',
    ],
    ['then on a set-field', withTask(2, { then: ['t4'] }), 'tasks[2].then|is not a field (a condition task has it)'],
    ['a script with args and input', withTask(3, { input: {} }), 'tasks[3].args|give args or input, not both'],
  ])('refuses %s, naming the list item', (_what, body, expected) => {
    expect(refusal(body)).toBe(expected);
  });

  it('a condition without if is refused, and one with if and branches too', () => {
    expect(refusal(withTask(1, { if: undefined }))).toMatch(/^tasks\[1\]\.if\|is required; it must be \{left/);
    const branches = [{ when: { left: 1, op: 'exists' }, next: 't3' }];
    expect(refusal(withTask(1, { branches }))).toBe('tasks[1].if|give if and then, or branches, not both');
    expect(refusal(withTask(1, { if: undefined, then: undefined, branches }))).toBe('accepted');
  });

  it('a condition without then falls through to else either way', () => {
    const t = parsePlaybook(JSON.stringify(withTask(1, { then: undefined }))).tasks.t2;
    expect(t).toMatchObject({ branches: [{ next: 't4' }], else: 't4' });
  });

  it("names the map form's own refusals back in the list form", () => {
    expect(refusal(withTask(2, { value: 9 }))).toBe('tasks[2].value|a severity is an integer from 0 to 4');
    expect(refusal(withTask(1, { then: ['zz'] }))).toBe('tasks[1].then|"zz" is not a task');
    expect(refusal(withTask(1, { then: undefined, else: 'zz' }))).toBe('tasks[1].else|"zz" is not a task');
    expect(refusal(withTask(0, { next: 'zz' }))).toBe('tasks[0].next|"zz" is not a task');
    expect(refusal(withTask(0, { kind: 'email' }))).toMatch(/^tasks\[0\]\.kind\|must be equal to one of the allowed/);
    expect(refusal(withTask(0, { kind: undefined, type: 'email' }))).toMatch(/^tasks\[0\]\.type\|/);
    expect(refusal(withTask(0, { retries: 3 }))).toBe('tasks[0].retries|is not a field');
    expect(refusal(withTask(1, { if: '${context.nothing} == 1' }))).toBe(
      'tasks[1].if.left|${context.nothing}: no task has output nothing',
    );
    expect(refusal(withTask(3, { args: { u: ['${inputs.who}'] } }))).toBe(
      'tasks[3].args.u[0]|${inputs.who}: the playbook declares no input who',
    );
    expect(refusal(withTask(2, { next: ['t1'] }))).toBe(
      "tasks[2]|goes back to t1, a cycle (t1 → t2 → t3 → t1); a playbook's tasks form no cycle",
    );
    // Among tasks nothing leads to (kept in the list form), a cycle is refused all the same.
    const loose = {
      start: 'a',
      tasks: [
        { id: 'a', kind: 'manual', prompt: 'p' },
        { id: 'b', kind: 'manual', prompt: 'p', next: ['c'] },
        { id: 'c', kind: 'manual', prompt: 'p', next: ['b'] },
      ],
    };
    expect(refusal(loose)).toMatch(/^tasks\[\d\]\|goes back to [bc], a cycle/);
    expect(
      refusal({ start: 'a', tasks: [loose.tasks[0], { id: 'b', kind: 'manual', prompt: 'p', next: 'b' }] }),
    ).toMatch(/^tasks\[1\]\|goes back to b, a cycle \(b → b\)/);
    expect(refusal({ ...DESIGN, start: 'nope' })).toBe('start|"nope" is not a task');
    expect(parsePlaybook(JSON.stringify({ ...DESIGN, start: ['t1'] })).start).toBe('t1');
    expect(refusal({ ...DESIGN, start: ['t1', 't2'] })).toBe(
      'start|name one next task (parallel branches are not supported)',
    );
    expect(refusal({ start: 't', tasks: [] })).toMatch(/^tasks\|must NOT have fewer than 1/);
  });

  it('keeps an output under the id when the id can name a context key and no output is given', () => {
    const p = parsePlaybook(
      JSON.stringify({
        tasks: [
          { id: 'look-up', kind: 'integration', instance: 'i', command: 'c', next: 'ask' },
          { id: 'ask', kind: 'manual', prompt: 'ok?', output: 'answer', next: 'constructor' },
          { id: 'constructor', kind: 'script', script: 's' },
        ],
      }),
    );
    expect(p.tasks['look-up']).not.toHaveProperty('output');
    expect(p.tasks.ask).toMatchObject({ output: 'answer' });
    expect(p.tasks.constructor).not.toHaveProperty('output');
    expect(Object.hasOwn(p.tasks, 'constructor')).toBe(true);
  });

  it("refuses an output that is another task's id: the two would write one context key", () => {
    expect(refusal(withTask(4, { output: 't1' }))).toBe(
      'tasks[4].output|"t1" is the id of tasks[0], which keeps its output under it; the two would write one context ' +
        'key; pick another name',
    );
    // Named before the task it collides with, and with a task that keeps no output: refused all the same.
    expect(refusal(withTask(0, { output: 't5' }))).toMatch(/^tasks\[0\]\.output\|"t5" is the id of tasks\[4\], which/);
    expect(refusal(withTask(3, { output: 't3' }))).toBe(
      'tasks[3].output|"t3" is the id of tasks[2]; pick another name',
    );
    // Its own id, or a name no task has, is as before.
    expect(refusal(withTask(4, { output: 't5' }))).toBe('accepted');
    expect(refusal(withTask(4, { output: 'answer' }))).toBe('accepted');
  });
});
