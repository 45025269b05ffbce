/**
 * The values a run computes, pure: `${incident.FIELD}`, `${context.KEY.PATH}` and `${inputs.NAME}` substituted
 * into a task's args, values and conditions, and a condition's verdict. A string that is exactly one placeholder
 * takes the value's own type (an object, a number); inside longer text a value is written as text (JSON for
 * objects). A path that leads nowhere gives `undefined`, which a condition can test with `exists`, and which text
 * shows as empty. Not the check of a playbook's references (common/playbook.ts does that at publish).
 */
import { PLACEHOLDER, type Condition } from '#common/playbook.js';

export interface Scope {
  incident: Record<string, unknown>;
  context: Record<string, unknown>;
  inputs: Record<string, unknown>;
}

function lookup(scope: Scope, ref: string): unknown {
  const [root, ...path] = ref.split('.');
  // Own keys only, the root's too: `${constructor}` must find nothing, not Object.
  if (!Object.hasOwn(scope, root)) return undefined;
  let v: unknown = scope[root as keyof Scope];
  for (const k of path) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, k)) return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}

const asText = (v: unknown): string =>
  v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v);

/** `v` with every placeholder in its strings (at any depth) replaced. */
export function interpolate(v: unknown, scope: Scope): unknown {
  if (typeof v === 'string') {
    const whole = /^\$\{([^}]*)\}$/.exec(v);
    if (whole) return lookup(scope, whole[1]);
    return v.replace(PLACEHOLDER, (_m, ref: string) => asText(lookup(scope, ref)));
  }
  if (Array.isArray(v)) return v.map((x) => interpolate(x, scope));
  if (typeof v === 'object' && v !== null)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, interpolate(x, scope)]));
  return v;
}

/** A number where both sides read as one (`"4"` and 4 compare equal), else the values as they are. */
function comparable(a: unknown, b: unknown): [unknown, unknown] {
  const num = (x: unknown) => (typeof x === 'number' ? x : typeof x === 'string' && x.trim() !== '' ? Number(x) : NaN);
  const [x, y] = [num(a), num(b)];
  return Number.isFinite(x) && Number.isFinite(y) ? [x, y] : [a, b];
}

const same = (a: unknown, b: unknown): boolean => {
  const [x, y] = comparable(a, b);
  return typeof x === 'object' || typeof y === 'object' ? JSON.stringify(x) === JSON.stringify(y) : x === y;
};

/** Whether the condition holds once interpolated; an order comparison of values that are not numbers is false. */
export function holds(c: Condition, scope: Scope): boolean {
  const left = interpolate(c.left, scope);
  const right = interpolate(c.right, scope);
  switch (c.op) {
    case 'exists':
      return left !== undefined && left !== null && left !== '';
    case 'eq':
      return same(left, right);
    case 'ne':
      return !same(left, right);
    case 'contains':
      if (typeof left === 'string') return left.includes(asText(right));
      return Array.isArray(left) && left.some((x) => same(x, right));
    case 'in':
      return Array.isArray(right) ? right.some((x) => same(left, x)) : asText(right).includes(asText(left));
    default: {
      const [x, y] = comparable(left, right);
      if (typeof x !== 'number' || typeof y !== 'number') return false;
      return c.op === 'gt' ? x > y : c.op === 'gte' ? x >= y : c.op === 'lt' ? x < y : x <= y;
    }
  }
}

const readsIncident = new WeakMap<object, boolean>();
/**
 * Whether a task's values may name the incident beyond its id (a `${incident…}` placeholder other than
 * `${incident.id}`): a task that does not is given only what its run holds (the id, and the site it started at),
 * which saves reading the incident for it (bench/playbook-runs.ts). Kept per task object: a playbook's definition is
 * parsed once per version and never changed (parsed-playbooks.ts).
 */
export function mentionsIncident(task: object): boolean {
  let v = readsIncident.get(task);
  if (v === undefined) {
    const refs = [...JSON.stringify(task).matchAll(PLACEHOLDER)].map((m) => m[1].trim());
    v = refs.some((r) => r.split('.')[0] === 'incident' && r !== 'incident.id');
    readsIncident.set(task, v);
  }
  return v;
}
