/**
 * The list form of a playbook body (DESIGN §7), turned into Palisade's own map form before parsePlaybook checks it:
 *
 *   {start, tasks: [{id, kind, …, next: [ID]}, {id, kind: condition, if, then: [ID], else: [ID]}, …]}
 *
 * Each item's `id` becomes its key and `kind` its `type` (`type` is taken too); `next`, `then` and `else` are a list
 * of at most one id (or an id): parallel branches are not supported. A condition's `if` is our `{left, op, right}`
 * or a string `LEFT OP RIGHT`, or a lone `${…}` ("is true"); its `then` becomes the one branch. A script's `args` is
 * our `input`. An item without `output` whose id can name a context key keeps its output under its id, as the list
 * form has no other way to read one task's result from another. `name` may be left out ("playbook"), and so may
 * `start` (the first task). What is refused here names the user's list (`tasks[2].then`); what the checks after it
 * refuse is named back into the list by `listField` (`tasks.t3.input` → `tasks[2].args`).
 */
import { BadParameterError } from './errors.js';

const TASK_ID = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const KEY = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
/** Task types that may keep an output (common/playbook.ts). */
const WITH_OUTPUT: ReadonlySet<unknown> = new Set(['integration', 'manual', 'script', 'playbook']);
/** The string operators of an `if`, longest first, and the condition op each is. */
const OPERATORS: [string, string][] = [
  ['===', 'eq'],
  ['!==', 'ne'],
  ['==', 'eq'],
  ['!=', 'ne'],
  ['>=', 'gte'],
  ['<=', 'lte'],
  ['>', 'gt'],
  ['<', 'lt'],
  ['contains', 'contains'],
  ['in', 'in'],
];
const IF_FORMS =
  'must be {left, op, right}, a string "LEFT OP RIGHT" (OP one of == != > >= < <= contains in; LEFT and RIGHT a ' +
  '${…} or a JSON literal: a number, true, false, null, a quoted string, or after in a list) or a lone ${…} (is true)';

const refuse = (field: string, why: string) =>
  new BadParameterError('ERR_PLAYBOOK_INVALID', `${field}: ${why}`, { field });
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** How each list item was written: what the later checks' field names are turned back into. */
interface ItemForm {
  id: string;
  kind: 'kind' | 'type';
  args: boolean;
  /** `if` given: branch 0 is it, going to `then` (or to `else`, when there is no `then`). */
  branch?: 'then' | 'else';
}
export interface ListForm {
  /** The playbook in Palisade's map form, to be checked as any. */
  raw: Record<string, unknown>;
  items: ItemForm[];
}

/** The list form turned into the map form, or undefined when `raw` is not the list form (tasks is no array). */
export function fromListForm(raw: unknown): ListForm | undefined {
  if (!isObject(raw) || !Array.isArray(raw.tasks)) return undefined;
  const list = raw.tasks as unknown[];
  const tasks: Record<string, unknown> = {};
  const items: ItemForm[] = [];
  const seen = new Map<string, number>();
  list.forEach((item, i) => {
    const at = `tasks[${i}]`;
    if (!isObject(item)) throw refuse(at, 'must be an object (a task with id and kind)');
    const id = item.id;
    if (id === undefined) throw refuse(`${at}.id`, 'is required');
    if (typeof id !== 'string' || !TASK_ID.test(id))
      throw refuse(`${at}.id`, 'must be letters, digits, _ and -, from a letter, at most 64');
    if (seen.has(id)) throw refuse(`${at}.id`, `"${id}" is already the id of tasks[${seen.get(id)}]`);
    seen.set(id, i);
    const [task, form] = convert(item, at, id);
    tasks[id] = task;
    items.push(form);
  });
  refuseOutputOfAnother(list, tasks, seen);
  const { tasks: _list, ...rest } = raw;
  const start = (Array.isArray(rest.start) ? one(rest.start, 'start') : rest.start) ?? items[0]?.id;
  return { raw: { name: 'playbook', ...rest, ...(start !== undefined ? { start } : {}), tasks }, items };
}

function convert(item: Record<string, unknown>, at: string, id: string): [Record<string, unknown>, ItemForm] {
  const { id: _id, kind, type, next, if: cond, then, else: otherwise, ...fields } = item;
  if (kind === undefined && type === undefined) throw refuse(`${at}.kind`, 'is required');
  if (kind !== undefined && type !== undefined && kind !== type)
    throw refuse(`${at}.kind`, `says ${String(kind)} but type says ${String(type)}; give one`);
  const form: ItemForm = { id, kind: kind !== undefined ? 'kind' : 'type', args: false };
  const task: Record<string, unknown> = { type: kind ?? type, ...fields };
  const nextId = one(next, `${at}.next`);
  if (nextId !== undefined) task.next = nextId;
  if (task.type === 'condition') {
    const elseId = one(otherwise, `${at}.else`);
    if (cond !== undefined) {
      if (task.branches !== undefined) throw refuse(`${at}.if`, 'give if and then, or branches, not both');
      const thenId = one(then, `${at}.then`);
      if (thenId === undefined && elseId === undefined) throw refuse(`${at}.then`, 'a condition needs then or else');
      // Without `then` the condition falls through to `else` either way.
      task.branches = [{ when: condition(cond, `${at}.if`), next: thenId ?? elseId }];
      form.branch = thenId !== undefined ? 'then' : 'else';
    } else if (task.branches === undefined) throw refuse(`${at}.if`, `is required; it ${IF_FORMS}`);
    else if (then !== undefined) throw refuse(`${at}.then`, 'goes with if');
    if (elseId !== undefined) task.else = elseId;
  } else {
    for (const [name, v] of [
      ['if', cond],
      ['then', then],
      ['else', otherwise],
    ] as const)
      if (v !== undefined) throw refuse(`${at}.${name}`, 'is not a field (a condition task has it)');
  }
  if (task.type === 'script' && Object.hasOwn(task, 'args')) {
    if (Object.hasOwn(task, 'input')) throw refuse(`${at}.args`, 'give args or input, not both');
    task.input = task.args;
    delete task.args;
    form.args = true;
  }
  if (WITH_OUTPUT.has(task.type) && task.output === undefined && KEY.test(id) && !RESERVED_KEYS.has(id))
    task.output = id;
  return [task, form];
}

/**
 * An explicit `output` may not be another task's id: that task keeps its own output under its id when it has one, so
 * the two would write one context key, and a reader of `${context.ID}` would take it for that task's either way.
 */
function refuseOutputOfAnother(list: unknown[], tasks: Record<string, unknown>, seen: Map<string, number>): void {
  list.forEach((item, i) => {
    const output = (item as Record<string, unknown>).output;
    if (typeof output !== 'string' || output === (item as Record<string, unknown>).id || !seen.has(output)) return;
    const j = seen.get(output) as number;
    const keeps = (tasks[output] as Record<string, unknown>).output === output;
    throw refuse(
      `tasks[${i}].output`,
      `"${output}" is the id of tasks[${j}]` +
        (keeps ? ', which keeps its output under it; the two would write one context key' : '') +
        '; pick another name',
    );
  });
}

/** `next`, `then` or `else`: an id, or a list of at most one; undefined for none. */
function one(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (!Array.isArray(v)) throw refuse(field, 'must be a list of at most one task id');
  if (v.length > 1) throw refuse(field, 'name one next task (parallel branches are not supported)');
  if (v.length === 1 && typeof v[0] !== 'string') throw refuse(`${field}[0]`, 'must be a task id');
  return v[0] as string | undefined;
}

/** An `if`: our condition object as it is (the schema checks it), or the string forms parsed into one. */
export function condition(v: unknown, field: string): unknown {
  if (isObject(v)) {
    const op = OPERATORS.find(([o]) => o === v.op);
    return op ? { ...v, op: op[1] } : v;
  }
  if (typeof v !== 'string') throw refuse(field, IF_FORMS);
  const s = v.trim();
  if (/^\$\{[^}]*\}$/.test(s)) return { left: s, op: 'eq', right: true };
  const left = operand(s, 0);
  let at = skipSpaces(s, left?.end ?? 0);
  const op =
    left && OPERATORS.find(([o]) => s.startsWith(o, at) && (/^[a-z]/.test(o) ? wordEnds(s, at + o.length) : true));
  if (!left || !op) throw refuse(field, IF_FORMS);
  at = skipSpaces(s, at + op[0].length);
  const right = s[at] === '[' ? list(s, at) : operand(s, at);
  if (!right || skipSpaces(s, right.end) !== s.length) throw refuse(field, IF_FORMS);
  return { left: left.value, op: op[1], right: right.value };
}

const skipSpaces = (s: string, at: number) => {
  while (at < s.length && /\s/.test(s[at])) at++;
  return at;
};
const wordEnds = (s: string, at: number) => at >= s.length || !/[A-Za-z0-9_]/.test(s[at]);

/** A JSON array as the right side (`… in [3, 4]`): the rest of the `if`. */
function list(s: string, at: number): { value: unknown; end: number } | undefined {
  try {
    const value = JSON.parse(s.slice(at)) as unknown;
    return Array.isArray(value) ? { value, end: s.length } : undefined;
  } catch {
    return undefined;
  }
}

/** One side of a string `if` at `at`: a `${…}`, a quoted string, or a number, true, false or null. */
function operand(s: string, at: number): { value: unknown; end: number } | undefined {
  if (s.startsWith('${', at)) {
    const end = s.indexOf('}', at);
    return end < 0 ? undefined : { value: s.slice(at, end + 1), end: end + 1 };
  }
  if (s[at] === '"') {
    const m = /^"(?:[^"\\]|\\.)*"/.exec(s.slice(at));
    if (!m) return undefined;
    try {
      return { value: JSON.parse(m[0]) as unknown, end: at + m[0].length };
    } catch {
      return undefined;
    }
  }
  if (s[at] === "'") {
    const end = s.indexOf("'", at + 1);
    return end < 0 ? undefined : { value: s.slice(at + 1, end), end: end + 1 };
  }
  const m = /^(?:-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|true|false|null)/.exec(s.slice(at));
  if (!m || !wordEnds(s, at + m[0].length)) return undefined;
  return { value: JSON.parse(m[0]) as unknown, end: at + m[0].length };
}

/**
 * A refusal of the map form's checks named in the user's list form: `tasks.ID.rest` → `tasks[i].rest`, with `type`,
 * a script's `input` and a condition's `branches[0].when` / `.next` back as `kind`, `args`, `if` and `then` (or
 * `else`) as written. Any other error is returned as it is.
 */
export function listField(e: unknown, items: ItemForm[]): unknown {
  const field = (e as BadParameterError).field;
  if (!(e instanceof BadParameterError) || e.code !== 'ERR_PLAYBOOK_INVALID' || !field) return e;
  const m = /^tasks\.([A-Za-z][A-Za-z0-9_-]{0,63})((?:[.[].*)?)$/.exec(field);
  const i = m ? items.findIndex((f) => f.id === m[1]) : -1;
  if (!m || i < 0) return e;
  const f = items[i];
  let rest = m[2];
  if (f.kind === 'kind') rest = rest.replace(/^\.type\b/, '.kind');
  if (f.args) rest = rest.replace(/^\.input\b/, '.args');
  if (f.branch)
    rest = rest.replace(/^\.branches\[0\]\.when\b/, '.if').replace(/^\.branches\[0\]\.next$/, `.${f.branch}`);
  const why = e.message.startsWith(`${field}: `) ? e.message.slice(field.length + 2) : e.message;
  return refuse(`tasks[${i}]${rest}`, why);
}
