/** Schema checking for config files: every problem reported at once, in one line naming each path. */
import { Ajv, type ErrorObject } from 'ajv';
import { BadParameterError } from './errors.js';

/** A string format a schema may name (`format: 'dial-address'`): its test, and what a good value looks like. */
export interface StringFormat {
  test(value: string): boolean;
  expected: string;
}

/**
 * A rule across keys that a schema can state only in words no operator would follow ("must match exactly
 * one schema in oneOf"): the problem in plain words, or undefined. Runs on objects only, beside the schema.
 */
export type ConfigRule = (raw: Readonly<Record<string, unknown>>) => string | undefined;

export function configChecker<T>(
  schema: object,
  formats: Readonly<Record<string, StringFormat>> = {},
  rules: readonly ConfigRule[] = [],
): (raw: unknown, source: string) => T {
  const validate = new Ajv({
    allErrors: true,
    formats: Object.fromEntries(Object.entries(formats).map(([name, f]) => [name, (s: string) => f.test(s)])),
  }).compile(schema);
  const describe = (e: ErrorObject): string => {
    const format = e.keyword === 'format' ? formats[String(e.params.format)] : undefined;
    return format ? `${e.instancePath} must be ${format.expected}` : describeError(e);
  };
  return (raw, source) => {
    const problems = validate(raw) ? [] : (validate.errors ?? []).map(describe);
    if (typeof raw === 'object' && raw !== null && !Array.isArray(raw))
      for (const rule of rules) {
        const problem = rule(raw as Record<string, unknown>);
        if (problem) problems.push(problem);
      }
    if (problems.length) throw new BadParameterError('ERR_CONFIG_INVALID', `${source}: ${problems.join('; ')}`);
    return raw as T;
  };
}

/** Ajv says only "must NOT have additional properties" for an unknown key; name the key, it is the typo. */
function describeError(e: ErrorObject): string {
  if (e.keyword === 'additionalProperties')
    return `${e.instancePath}/${String(e.params.additionalProperty)} is an unknown key (additional properties are refused)`;
  return `${e.instancePath || '/'} ${e.message}`;
}
