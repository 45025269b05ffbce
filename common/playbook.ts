/**
 * What a playbook is (a content item of type `playbook`, docs/playbooks.md) and the one check main runs when one
 * is published and a tenant runs before it starts one. The body is YAML or JSON (JSON is YAML 1.2):
 *
 *   {name, description?, inputs?: {NAME: {description?, required?, default?}}, start: TASK, tasks: {TASK: Task}}
 *
 * with tasks of the types in TASK_TYPES (each says its fields below). The check is pure and whole: every refusal is
 * a 400 naming the task and the field (`tasks.enrich.next: "x" is not a task`). DESIGN's list form (`tasks` a list
 * of `{id, kind, …}`) is read too: playbook-list-form.ts turns it into this one, and names refusals in the list.
 *
 * The contested decision: the task graph must be acyclic. Each task then runs at most once per run, so a run's
 * durable state is one record per task and "a task marked done never runs again" holds without counting
 * iterations (agent/tenant/playbooks/). A loop that waits on a manual task would be safe from spinning, but
 * polling and re-asking are rare in playbooks and can be written as a sub-playbook run again by an analyst; a
 * cycle is refused wherever it is. Also refused: a task no path from `start` reaches (it is dead text, most often
 * a typo in a `next`), and `${…}` references to an input not declared or a context key no task outputs.
 * Not the runner (agent/tenant/playbooks/) nor how values are interpolated at run time (playbook-values.ts).
 */
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { BadParameterError } from './errors.js';
import { fromListForm, listField } from './playbook-list-form.js';

export const TASK_TYPES = ['integration', 'condition', 'manual', 'set-field', 'script', 'playbook'] as const;
export type TaskType = (typeof TASK_TYPES)[number];
export const CONDITION_OPS = ['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'contains', 'exists', 'in'] as const;
export type ConditionOp = (typeof CONDITION_OPS)[number];
/** The incident fields a set-field task may write (`labels.X` writes one label). */
export const SETTABLE_FIELDS = ['name', 'type', 'severity', 'details', 'status'] as const;
/** The incident fields `${incident.…}` may read. */
export const READABLE_FIELDS = ['id', 'name', 'type', 'severity', 'details', 'status', 'created', 'updated'] as const;

/** Enough for any real playbook; a body travels in one relay frame anyway (common/content.ts). */
export const MAX_TASKS = 200;
const MAX_BRANCHES = 20;

export interface Condition {
  left: unknown;
  op: ConditionOp;
  right?: unknown;
}
interface TaskBase {
  description?: string;
  /** The task run after this one; none: the run ends here. */
  next?: string;
}
export interface IntegrationTask extends TaskBase {
  type: 'integration';
  /** The tenant's instance, or `integration` with the tenant's connection named `connection`. */
  instance?: string;
  integration?: string;
  connection?: string;
  command: string;
  args?: Record<string, unknown>;
  output?: string;
}
export interface ConditionTask {
  type: 'condition';
  description?: string;
  branches: { when: Condition; next: string }[];
  else?: string;
}
export interface ManualTask extends TaskBase {
  type: 'manual';
  prompt: string;
  output?: string;
}
export interface SetFieldTask extends TaskBase {
  type: 'set-field';
  field: string;
  value: unknown;
}
export interface ScriptTask extends TaskBase {
  type: 'script';
  script: string;
  input?: unknown;
  output?: string;
}
export interface SubPlaybookTask extends TaskBase {
  type: 'playbook';
  playbook: string;
  inputs?: Record<string, unknown>;
  output?: string;
}
export type PlaybookTask = IntegrationTask | ConditionTask | ManualTask | SetFieldTask | ScriptTask | SubPlaybookTask;
export interface PlaybookInput {
  description?: string;
  required?: boolean;
  default?: unknown;
}
export interface Playbook {
  name: string;
  description?: string;
  inputs?: Record<string, PlaybookInput>;
  start: string;
  tasks: Record<string, PlaybookTask>;
}

const TASK_ID = '^[A-Za-z][A-Za-z0-9_-]{0,63}$';
/** Context keys and input names: what `${context.KEY}` and `${inputs.NAME}` can spell. */
const KEY = '^[A-Za-z_][A-Za-z0-9_]{0,63}$';
/**
 * Names a key may match but must not take: as an output or input name they would reach, through `${context.…}` or
 * an object's own keys, what every object inherits (`${context.constructor}` would be Object).
 */
const RESERVED_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);
const text = (max: number) => ({ type: 'string', minLength: 1, maxLength: max });
const ref = { type: 'string', pattern: TASK_ID };
const common = { type: { type: 'string' }, description: { type: 'string', maxLength: 2000 }, next: ref };
const output = { type: 'string', pattern: KEY };

const playbookSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'start', 'tasks'],
  properties: {
    name: text(200),
    description: { type: 'string', maxLength: 4000 },
    inputs: {
      type: 'object',
      maxProperties: 50,
      propertyNames: { pattern: KEY },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        properties: { description: { type: 'string', maxLength: 2000 }, required: { type: 'boolean' }, default: {} },
      },
    },
    start: ref,
    tasks: {
      type: 'object',
      minProperties: 1,
      maxProperties: MAX_TASKS,
      propertyNames: { pattern: TASK_ID },
      additionalProperties: { type: 'object', required: ['type'], properties: { type: { enum: TASK_TYPES } } },
    },
  },
} as const;

const taskSchemas: Record<TaskType, object> = {
  integration: {
    required: ['command'],
    properties: {
      ...common,
      instance: text(63),
      integration: text(63),
      connection: text(63),
      command: text(128),
      args: { type: 'object' },
      output,
    },
  },
  condition: {
    required: ['branches'],
    properties: {
      type: common.type,
      description: common.description,
      else: ref,
      branches: {
        type: 'array',
        minItems: 1,
        maxItems: MAX_BRANCHES,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['when', 'next'],
          properties: {
            next: ref,
            when: {
              type: 'object',
              additionalProperties: false,
              required: ['left', 'op'],
              properties: { left: {}, op: { enum: CONDITION_OPS }, right: {} },
            },
          },
        },
      },
    },
  },
  manual: { required: ['prompt'], properties: { ...common, prompt: text(4000), output } },
  'set-field': { required: ['field', 'value'], properties: { ...common, field: text(120), value: {} } },
  script: { required: ['script'], properties: { ...common, script: text(200), input: {}, output } },
  playbook: {
    required: ['playbook'],
    properties: { ...common, playbook: text(200), inputs: { type: 'object', maxProperties: 50 }, output },
  },
};

const ajv = new Ajv({ allErrors: false, strict: false });
const checkShape = ajv.compile(playbookSchema);
const checkTaskShape = Object.fromEntries(
  Object.entries(taskSchemas).map(([t, s]) => [t, ajv.compile({ type: 'object', additionalProperties: false, ...s })]),
) as Record<TaskType, ReturnType<typeof ajv.compile>>;

export const badPlaybook = (field: string, why: string) =>
  new BadParameterError('ERR_PLAYBOOK_INVALID', `${field}: ${why}`, { field });

function fieldOf(path: string, prefix: string): string {
  const parts = path.split('/').filter(Boolean);
  return parts.reduce((acc, p) => (/^[0-9]+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), prefix) || 'body';
}

function refusal(e: ErrorObject, prefix: string): BadParameterError {
  if (e.keyword === 'additionalProperties')
    return badPlaybook(fieldOf(`${e.instancePath}/${String(e.params.additionalProperty)}`, prefix), 'is not a field');
  if (e.keyword === 'required')
    return badPlaybook(fieldOf(`${e.instancePath}/${String(e.params.missingProperty)}`, prefix), 'is required');
  if (e.keyword === 'enum') return badPlaybook(fieldOf(e.instancePath, prefix), `${e.message}: ${describeEnum(e)}`);
  if (e.keyword === 'propertyNames')
    return badPlaybook(fieldOf(e.instancePath, prefix), `"${String(e.params.propertyName)}" is not a valid name`);
  return badPlaybook(fieldOf(e.instancePath, prefix), e.message ?? 'is not valid');
}
const describeEnum = (e: ErrorObject) => (e.params.allowedValues as string[]).join(', ');

/** A playbook's body checked whole, or a 400 naming the task and the field at fault. */
export function parsePlaybook(body: string): Playbook {
  let raw: unknown;
  try {
    // uniqueKeys: two tasks of one id would silently lose one; maxAliasCount bounds an alias bomb.
    raw = parseYaml(body, { uniqueKeys: true, maxAliasCount: 100, prettyErrors: false });
  } catch (e) {
    throw badPlaybook('body', `is not YAML or JSON (${(e as Error).message.split('\n')[0]})`);
  }
  // The list form (tasks a list, DESIGN §7) is checked as the map form it stands for; its refusals name the list.
  const list = fromListForm(raw);
  try {
    return checkPlaybook(list ? list.raw : raw, !list);
  } catch (e) {
    throw list ? listField(e, list.items) : e;
  }
}

function checkPlaybook(raw: unknown, mapForm: boolean): Playbook {
  if (!checkShape(raw)) throw refusal(checkShape.errors![0], '');
  const p = raw as Playbook;
  for (const [id, task] of Object.entries(p.tasks)) checkTask(p, id, task);
  checkKeyNames(p);
  checkGraph(p, mapForm);
  checkReferences(p);
  return p;
}

function checkTask(p: Playbook, id: string, task: PlaybookTask): void {
  const at = `tasks.${id}`;
  const check = checkTaskShape[task.type];
  if (!check(task)) throw refusal(check.errors![0], at);
  for (const [field, target] of successorsOf(task))
    if (!Object.hasOwn(p.tasks, target)) throw badPlaybook(`${at}.${field}`, `"${target}" is not a task`);
  if (task.type === 'integration') {
    const byConnection = task.integration !== undefined || task.connection !== undefined;
    if ((task.instance !== undefined) === byConnection || (byConnection && !(task.integration && task.connection)))
      throw badPlaybook(at, 'names either an instance, or an integration and a connection');
  }
  if (task.type === 'condition')
    task.branches.forEach((b, i) => {
      if (b.when.op !== 'exists' && !Object.hasOwn(b.when, 'right'))
        throw badPlaybook(`${at}.branches[${i}].when.right`, `is required with op ${b.when.op}`);
    });
  if (task.type === 'set-field') checkSetField(at, task);
}

function checkSetField(at: string, task: SetFieldTask): void {
  const label = /^labels\.([A-Za-z0-9_.:-]{1,100})$/.exec(task.field);
  if (!label && !(SETTABLE_FIELDS as readonly string[]).includes(task.field))
    throw badPlaybook(`${at}.field`, `must be one of ${SETTABLE_FIELDS.join(', ')} or labels.NAME`);
  if (typeof task.value === 'string' && task.value.includes('${')) return; // checked when the run knows it
  fieldValue(task.field, task.value, `${at}.value`);
}

/** A set-field value as the incident stores it, or a 400 naming `field` (at publish and at run). */
export function fieldValue(name: string, v: unknown, field: string): string | number {
  if (name === 'severity') {
    const n = typeof v === 'string' && /^[0-4]$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 4)
      throw badPlaybook(field, 'a severity is an integer from 0 to 4');
    return n;
  }
  if (name === 'status' && v !== 'open' && v !== 'closed') throw badPlaybook(field, 'a status is open or closed');
  // A number or a yes/no (a lookup's `vip: true`) is written as its text: labels and names are text.
  if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean')
    throw badPlaybook(field, `${name} takes a string, not ${v === null ? 'null' : typeof v}`);
  const s = String(v);
  if (s.length > (name === 'details' ? 100_000 : 1000)) throw badPlaybook(field, 'is too long');
  if ((name === 'name' || name === 'type') && s.length === 0) throw badPlaybook(field, 'must not be empty');
  return s;
}

/** Input and output names none of RESERVED_KEYS. */
function checkKeyNames(p: Playbook): void {
  for (const name of Object.keys(p.inputs ?? {}))
    if (RESERVED_KEYS.has(name)) throw badPlaybook(`inputs.${name}`, `"${name}" is reserved; pick another name`);
  for (const [id, t] of Object.entries(p.tasks))
    if ('output' in t && t.output !== undefined && RESERVED_KEYS.has(t.output))
      throw badPlaybook(`tasks.${id}.output`, `"${t.output}" is reserved; pick another name`);
}

/** Where a task may go next, as [field, task id]. */
export function successorsOf(task: PlaybookTask): [string, string][] {
  if (task.type === 'condition')
    return [
      ...task.branches.map((b, i): [string, string] => [`branches[${i}].next`, b.next]),
      ...(task.else !== undefined ? [['else', task.else] as [string, string]] : []),
    ];
  return task.next !== undefined ? [['next', task.next]] : [];
}

/**
 * No cycle (see the header for why), and every task reachable from `start`, except in the list form: DESIGN's own
 * example lists a task nothing leads to, so there such a task is kept and never runs.
 */
function checkGraph(p: Playbook, allReachable: boolean): void {
  if (!Object.hasOwn(p.tasks, p.start)) throw badPlaybook('start', `"${p.start}" is not a task`);
  const state = new Map<string, 'open' | 'done'>();
  // Iterative depth-first search: 200 tasks in a chain must not depend on the stack's depth.
  const stack: { id: string; next: string[] }[] = [];
  const enter = (id: string) => {
    state.set(id, 'open');
    stack.push({ id, next: successorsOf(p.tasks[id]).map(([, t]) => t) });
  };
  const walk = (from: string) => {
    enter(from);
    while (stack.length > 0) {
      const top = stack[stack.length - 1];
      const n = top.next.shift();
      if (n === undefined) {
        state.set(top.id, 'done');
        stack.pop();
      } else if (state.get(n) === 'open') {
        const loop = [...stack.slice(stack.findIndex((s) => s.id === n)).map((s) => s.id), n].join(' → ');
        throw badPlaybook(`tasks.${top.id}`, `goes back to ${n}, a cycle (${loop}); a playbook's tasks form no cycle`);
      } else if (!state.has(n)) enter(n);
    }
  };
  walk(p.start);
  const unreachable = allReachable && Object.keys(p.tasks).find((id) => !state.has(id));
  if (unreachable) throw badPlaybook(`tasks.${unreachable}`, `no path from start (${p.start}) reaches it`);
  // Tasks nothing leads to (the list form keeps them): a cycle among them is refused all the same.
  for (const id of Object.keys(p.tasks)) if (!state.has(id)) walk(id);
}

/** `${root.path}`: the one interpolation form (playbook-values.ts substitutes it). */
export const PLACEHOLDER = /\$\{([^}]*)\}/g;
const PLACEHOLDER_BODY = /^(incident|context|inputs)\.([A-Za-z0-9_-]{1,100}(?:\.[A-Za-z0-9_-]{1,100}){0,9})$/;

/** Each `${…}` in the playbook's values names a known root, an incident field, a declared input or an output. */
function checkReferences(p: Playbook): void {
  const outputs = new Set(Object.values(p.tasks).flatMap((t) => ('output' in t && t.output ? [t.output] : [])));
  const inputs = new Set(Object.keys(p.inputs ?? {}));
  const walk = (v: unknown, field: string): void => {
    if (typeof v === 'string')
      for (const m of v.matchAll(PLACEHOLDER)) checkPlaceholder(m[1], field, { outputs, inputs });
    else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${field}[${i}]`));
    else if (typeof v === 'object' && v !== null) for (const [k, x] of Object.entries(v)) walk(x, `${field}.${k}`);
  };
  for (const [id, t] of Object.entries(p.tasks)) {
    const at = `tasks.${id}`;
    if (t.type === 'integration') walk(t.args, `${at}.args`);
    if (t.type === 'condition') t.branches.forEach((b, i) => walk(b.when, `${at}.branches[${i}].when`));
    if (t.type === 'set-field') walk(t.value, `${at}.value`);
    if (t.type === 'manual') walk(t.prompt, `${at}.prompt`);
    if (t.type === 'playbook') walk(t.inputs, `${at}.inputs`);
    if (t.type === 'script') walk(t.input, `${at}.input`);
  }
}

function checkPlaceholder(body: string, field: string, known: { outputs: Set<string>; inputs: Set<string> }): void {
  const m = PLACEHOLDER_BODY.exec(body);
  if (!m) throw badPlaybook(field, `\${${body}} is not \${incident.FIELD}, \${context.KEY[.PATH]} or \${inputs.NAME}`);
  const [root, path] = [m[1], m[2].split('.')];
  if (root === 'incident' && !(READABLE_FIELDS as readonly string[]).includes(path[0]) && path[0] !== 'labels')
    throw badPlaybook(field, `\${${body}}: an incident has ${READABLE_FIELDS.join(', ')} and labels.NAME`);
  if (root === 'inputs' && !known.inputs.has(path[0]))
    throw badPlaybook(field, `\${${body}}: the playbook declares no input ${path[0]}`);
  if (root === 'context' && !known.outputs.has(path[0]))
    throw badPlaybook(field, `\${${body}}: no task has output ${path[0]}`);
}
