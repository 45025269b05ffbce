/**
 * What an automation rule is (a content item of type `automation-rule`, docs/playbooks.md#automation-rules) and the
 * one check main runs when one is published and a tenant runs before it uses one. The body is YAML or JSON:
 *
 *   {name, active: bool, when: {event: incident.created, type?, match?: [{field, op, value?}]},
 *    run: {playbook: ID_OR_NAME, inputs?}}
 *
 * A rule matches an incident when every condition holds (`type` is one more condition, `type eq X`). Fields are
 * the incident's readable ones or `labels.NAME`; ops are a playbook condition's. The check is pure and whole: a
 * refusal is a 400 naming the field (`when.match[0].op: must be equal to one of the allowed values: eq, …`).
 * Not the matching (agent/tenant/playbooks/rule-matcher.ts) nor when rules fire (automation-rules.ts).
 */
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { BadParameterError } from './errors.js';
import { CONDITION_OPS, READABLE_FIELDS, type ConditionOp } from './playbook.js';

/** The one event rules react to for now; the field exists so that others can come without a new format. */
export const RULE_EVENTS = ['incident.created'] as const;
/** Enough for any real rule: a rule that needs more conditions is a playbook's condition task. */
const MAX_MATCH = 20;

export interface RuleMatch {
  field: string;
  op: ConditionOp;
  value?: unknown;
}
export interface AutomationRule {
  name: string;
  description?: string;
  active: boolean;
  when: { event: (typeof RULE_EVENTS)[number]; type?: string; match?: RuleMatch[] };
  run: { playbook: string; inputs?: Record<string, unknown> };
}

const text = (max: number) => ({ type: 'string', minLength: 1, maxLength: max });
const ruleSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'active', 'when', 'run'],
  properties: {
    name: text(200),
    description: { type: 'string', maxLength: 4000 },
    active: { type: 'boolean' },
    when: {
      type: 'object',
      additionalProperties: false,
      required: ['event'],
      properties: {
        event: { enum: RULE_EVENTS },
        type: text(100),
        match: {
          type: 'array',
          maxItems: MAX_MATCH,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['field', 'op'],
            properties: { field: text(120), op: { enum: CONDITION_OPS }, value: {} },
          },
        },
      },
    },
    run: {
      type: 'object',
      additionalProperties: false,
      required: ['playbook'],
      properties: { playbook: text(200), inputs: { type: 'object', maxProperties: 50 } },
    },
  },
} as const;

const check = new Ajv({ allErrors: false, strict: false }).compile(ruleSchema);

const badRule = (field: string, why: string) =>
  new BadParameterError('ERR_RULE_INVALID', `${field}: ${why}`, { field });

function fieldOf(path: string): string {
  const parts = path.split('/').filter(Boolean);
  return parts.reduce((acc, p) => (/^[0-9]+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '') || 'body';
}

function refusal(e: ErrorObject): BadParameterError {
  if (e.keyword === 'additionalProperties')
    return badRule(fieldOf(`${e.instancePath}/${String(e.params.additionalProperty)}`), 'is not a field');
  if (e.keyword === 'required')
    return badRule(fieldOf(`${e.instancePath}/${String(e.params.missingProperty)}`), 'is required');
  if (e.keyword === 'enum')
    return badRule(fieldOf(e.instancePath), `must be one of ${(e.params.allowedValues as string[]).join(', ')}`);
  return badRule(fieldOf(e.instancePath), e.message ?? 'is not valid');
}

/** A rule's body checked whole, or a 400 `ERR_RULE_INVALID` naming the field at fault. */
export function parseAutomationRule(body: string): AutomationRule {
  let raw: unknown;
  try {
    raw = parseYaml(body, { uniqueKeys: true, maxAliasCount: 100, prettyErrors: false });
  } catch (e) {
    throw badRule('body', `is not YAML or JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (!check(raw)) throw refusal(check.errors![0]);
  const rule = raw as AutomationRule;
  (rule.when.match ?? []).forEach((m, i) => {
    const at = `when.match[${i}]`;
    const label = /^labels\.[A-Za-z0-9_.:-]{1,100}$/.test(m.field);
    if (!label && !(READABLE_FIELDS as readonly string[]).includes(m.field))
      throw badRule(`${at}.field`, `must be one of ${READABLE_FIELDS.join(', ')} or labels.NAME`);
    if (m.op !== 'exists' && !Object.hasOwn(m, 'value')) throw badRule(`${at}.value`, `is required with op ${m.op}`);
  });
  return rule;
}
