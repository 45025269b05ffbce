/** Schema checking for config files: every problem reported at once, in one line naming each path. */
import { Ajv, type ErrorObject } from 'ajv';
import { BadParameterError } from './errors.js';

export function configChecker<T>(schema: object): (raw: unknown, source: string) => T {
  const validate = new Ajv({ allErrors: true }).compile(schema);
  return (raw, source) => {
    if (!validate(raw)) {
      const problems = (validate.errors ?? []).map(describe).join('; ');
      throw new BadParameterError('ERR_CONFIG_INVALID', `${source}: ${problems}`);
    }
    return raw as T;
  };
}

/** Ajv says only "must NOT have additional properties" for an unknown key; name the key, it is the typo. */
function describe(e: ErrorObject): string {
  if (e.keyword === 'additionalProperties') return `${e.instancePath}/${String(e.params.additionalProperty)} is an unknown key (additional properties are refused)`;
  return `${e.instancePath || '/'} ${e.message}`;
}
