/** Names of hosts, engines and tenants: DNS-label-like so they are safe in paths, URLs and file names. */
import { BadParameterError } from './errors.js';
import { describedPattern } from './pattern-text.js';

export const NAME_PATTERN = describedPattern(
  '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$',
  'a name of 1 to 63 lowercase letters, digits or -, starting and ending with a letter or digit',
);
/** A comma-separated list of names (a query's `tenants=a,b`); each name is checked where it is used. */
export const NAME_LIST_PATTERN = describedPattern(
  '^[a-z0-9-]+(,[a-z0-9-]+)*$',
  'a comma-separated list of names (lowercase letters, digits or -)',
);
const NAME_RE = new RegExp(NAME_PATTERN);

/** Whether `name` is a valid name (checkName without the error: for directory entries that may be anything). */
export function isName(name: string): boolean {
  return NAME_RE.test(name);
}

export function checkName(name: unknown, field = 'name'): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new BadParameterError(
      'ERR_BAD_NAME',
      `${field}: must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit`,
      { field },
    );
  }
  return name;
}

/** The JSON schema of a route's `:name` parameter, a name as above (a tenant's connections, integrations). */
export const NAME_PARAMS = {
  type: 'object',
  required: ['name'],
  additionalProperties: false,
  properties: { name: { type: 'string', pattern: NAME_PATTERN } },
} as const;
