/** Schema checking for config files: every problem reported at once, in one line naming each path. */
import { Ajv } from 'ajv';
import { BadParameterError } from './errors.js';

export function configChecker<T>(schema: object): (raw: unknown, source: string) => T {
  const validate = new Ajv({ allErrors: true }).compile(schema);
  return (raw, source) => {
    if (!validate(raw)) {
      const problems = (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
      throw new BadParameterError('ERR_CONFIG_INVALID', `${source}: ${problems}`);
    }
    return raw as T;
  };
}
