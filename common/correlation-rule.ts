/**
 * What a correlation rule is (a content item of type `rule`, docs/events.md#correlation-rules) and the one check
 * main runs when one is published and a tenant runs before it uses one. The body is YAML or JSON:
 *
 *   {name?, active?: bool, match: {q?: TEXT, field?: {NAME: VALUE}, domain?: D}, count: N, within: "5m",
 *    by: "sourceAddress", incident: {name, type, severity}}
 *
 * N events that match (every condition given holds) within `within`, from one source address in one domain, make one
 * incident. `q` is a case-insensitive substring of the message; `field` compares normalised fields (sourceAddress,
 * host, app, logSource…), custom properties and vendor fields exactly. Pure: the counting is the tenant's
 * (agent/tenant/events/correlation.ts). A refusal is a 400 `ERR_CORRELATION_RULE_INVALID` naming the field.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { parseDuration } from './duration.js';
import { BadParameterError } from './errors.js';
import { DOMAIN_NAME_PATTERN } from './events.js';

/** What events are grouped by: one source address (the event's normalised `sourceAddress`). */
export const CORRELATION_BY = ['sourceAddress'] as const;
/** The longest window a rule may count over: state is in memory, so a day at most. */
export const MAX_WINDOW_MS = 86_400_000;
/** The most events a rule may ask for: the window keeps the last `count` times per key. */
export const MAX_COUNT = 10_000;

export interface CorrelationRule {
  name?: string;
  active?: boolean;
  match: { q?: string; field?: Record<string, string>; domain?: string };
  count: number;
  within: string;
  by: (typeof CORRELATION_BY)[number];
  incident: { name: string; type: string; severity: number };
}
/** A checked rule with its window in milliseconds. */
export type ParsedCorrelationRule = CorrelationRule & { withinMs: number };

const text = (max: number) => ({ type: 'string', minLength: 1, maxLength: max });
const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['match', 'count', 'within', 'by', 'incident'],
  properties: {
    name: text(200),
    active: { type: 'boolean' },
    match: {
      type: 'object',
      additionalProperties: false,
      properties: {
        q: text(200),
        field: {
          type: 'object',
          maxProperties: 10,
          propertyNames: { pattern: '^[A-Za-z][A-Za-z0-9_.-]{0,63}$' },
          additionalProperties: text(256),
        },
        domain: { type: 'string', pattern: DOMAIN_NAME_PATTERN },
      },
    },
    count: { type: 'integer', minimum: 1, maximum: MAX_COUNT },
    within: text(20),
    by: { enum: CORRELATION_BY },
    incident: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'type', 'severity'],
      properties: { name: text(200), type: text(100), severity: { type: 'integer', minimum: 0, maximum: 4 } },
    },
  },
} as const;

const check = new Ajv({ allErrors: false, strict: false }).compile(schema);

const bad = (field: string, why: string) =>
  new BadParameterError('ERR_CORRELATION_RULE_INVALID', `${field}: ${why}`, { field });

function fieldOf(path: string): string {
  return path.split('/').filter(Boolean).join('.') || 'body';
}

function refusal(e: ErrorObject): BadParameterError {
  if (e.keyword === 'additionalProperties')
    return bad(fieldOf(`${e.instancePath}/${String(e.params.additionalProperty)}`), 'is not a field');
  if (e.keyword === 'required')
    return bad(fieldOf(`${e.instancePath}/${String(e.params.missingProperty)}`), 'is required');
  if (e.keyword === 'enum')
    return bad(fieldOf(e.instancePath), `must be one of ${(e.params.allowedValues as string[]).join(', ')}`);
  return bad(fieldOf(e.instancePath), e.message ?? 'is not valid');
}

/** A rule's body checked whole, or a 400 naming the field at fault. */
export function parseCorrelationRule(body: string): ParsedCorrelationRule {
  let raw: unknown;
  try {
    raw = parseYaml(body, { uniqueKeys: true, maxAliasCount: 100, prettyErrors: false });
  } catch (e) {
    throw bad('body', `is not YAML or JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (!check(raw)) throw refusal(check.errors![0]);
  const rule = raw as CorrelationRule;
  let withinMs: number;
  try {
    withinMs = parseDuration(rule.within, 'within');
  } catch (e) {
    throw bad('within', (e as Error).message.replace(/^within: /, ''));
  }
  if (withinMs > MAX_WINDOW_MS) throw bad('within', 'at most 24h');
  return { ...rule, withinMs };
}
