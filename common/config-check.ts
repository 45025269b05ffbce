/** Schema checking for config files: every problem reported at once, in one line naming each path. */
import { Ajv, type ErrorObject } from 'ajv';
import { BadParameterError } from './errors.js';

/** A string format a schema may name (`format: 'dial-address'`): its test, and what a good value looks like. */
export interface StringFormat {
  test(value: string): boolean;
  expected: string;
}

export function configChecker<T>(
  schema: object,
  formats: Readonly<Record<string, StringFormat>> = {},
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
    if (!validate(raw)) {
      const problems = (validate.errors ?? []).map(describe).join('; ');
      throw new BadParameterError('ERR_CONFIG_INVALID', `${source}: ${problems}`);
    }
    return raw as T;
  };
}

/** Ajv says only "must NOT have additional properties" for an unknown key; name the key, it is the typo. */
function describeError(e: ErrorObject): string {
  if (e.keyword === 'additionalProperties')
    return `${e.instancePath}/${String(e.params.additionalProperty)} is an unknown key (additional properties are refused)`;
  return `${e.instancePath || '/'} ${e.message}`;
}
