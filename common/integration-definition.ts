/**
 * What an integration definition is (a content item of type `integration`, docs/content.md) and the one
 * check main runs when one is published and a tenant runs when it resolves one: the body is JSON
 *
 *   {"name", "description"?, "connectionType": "aws"|"http",
 *    "commands": [{"name", "description"?, "readOnly", "args": <JSON Schema of an object>,
 *                  "runs": <a command of the built-in integration of that connection type>,
 *                  "with"?: {fixed args, merged over the caller's}}],
 *    "fetch"?: {"command": <one of its read-only commands>, "items"?, "id"?, "name"?, "severity"?,
 *               "details"?, "type"?}}
 *
 * `fetch` says how an instance pulls new items into incidents (docs/integrations.md#fetching-incidents):
 * which command to call and where in its result the list and each item's fields are (FetchSpec).
 * A custom integration adds no code: each of its commands runs a built-in command (`aws`'s, or `http`'s
 * `request`) with the caller's args, checked against its own schema, and its fixed `with` args on top. So
 * `readOnly` can be checked rather than trusted: a command may say it only reads when what it runs only reads
 * (for `request`, when `with` fixes the method to GET or HEAD). Also the args checker both sides use.
 * Not the built-ins' implementations (agent/integrations/) nor instances (agent/tenant/integration-*.ts).
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { BadParameterError } from './errors.js';
import { describedPattern } from './pattern-text.js';
import { CONNECTION_TYPES, type ConnectionType } from './connections.js';

export interface IntegrationCommand {
  name: string;
  description?: string;
  readOnly: boolean;
  /** JSON Schema of the args object the caller gives. */
  args: Record<string, unknown>;
  /** The built-in command it runs (for a built-in, its own name). */
  runs: string;
  with?: Record<string, unknown>;
}

/**
 * How an instance of the definition fetches incidents. Paths are dotted keys into the command's result
 * (`body.items`); `items` may end at the array itself or at an object holding an `items` array.
 */
export interface FetchSpec {
  /** A read-only command of the same definition; the instance's fetchArgs are its args. */
  command: string;
  /** Where the list is; default: the result itself. */
  items?: string;
  /** Each item's source id (a string or number; the de-duplication key); default `id`. */
  id?: string;
  /** Each item's incident name; default `name`. */
  name?: string;
  /** Each item's severity: 0-4, or info, low, medium, high, critical; default `severity`. */
  severity?: string;
  /** Each item's details; default `details` (the whole item as JSON where absent). */
  details?: string;
  /** The incidents' type; default the integration's name. */
  type?: string;
}

export interface IntegrationDefinition {
  name: string;
  description?: string;
  connectionType: ConnectionType;
  commands: IntegrationCommand[];
  fetch?: FetchSpec;
}

/**
 * The built-in integrations' commands and whether each only reads; agent/integrations/ implements them
 * (test/unit/integration-definition.test.ts holds this list to those tables).
 */
export const BUILT_IN_COMMANDS: Readonly<Record<ConnectionType, Readonly<Record<string, { readOnly: boolean }>>>> = {
  aws: {
    'sts.get-caller-identity': { readOnly: true },
    's3.list-buckets': { readOnly: true },
    'ec2.describe-instances': { readOnly: true },
    'iam.list-users': { readOnly: true },
  },
  http: { request: { readOnly: false } },
};
/** The built-ins are named for their connection type; no shared definition may take those names. */
export const BUILT_IN_INTEGRATIONS: readonly string[] = CONNECTION_TYPES;

const NAME = '^[a-z][a-z0-9-]{0,62}$';
const COMMAND_NAME = describedPattern(
  '^[a-z][a-z0-9-]{0,62}(\\.[a-z][a-z0-9-]{0,62})?$',
  'a command name: a lowercase letter, then up to 62 lowercase letters, digits or -; optionally a dot and another such',
);
/** A dotted path of keys into a result (`body.items`); empty for the result itself. */
const FIELD_PATH = describedPattern(
  '^(?:[A-Za-z0-9_$@-]{1,100}(?:\\.[A-Za-z0-9_$@-]{1,100}){0,9})?$',
  'empty, or up to 10 keys joined by dots, each 1 to 100 letters, digits, _, $, @ or -',
);
/** Enough for any real API surface; a definition is pushed inside one relay frame anyway (common/content.ts). */
const MAX_COMMANDS = 200;

const definitionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'connectionType', 'commands'],
  properties: {
    name: { type: 'string', pattern: NAME },
    description: { type: 'string', maxLength: 2000 },
    connectionType: { enum: CONNECTION_TYPES },
    commands: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_COMMANDS,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'readOnly', 'args', 'runs'],
        properties: {
          name: { type: 'string', pattern: COMMAND_NAME },
          description: { type: 'string', maxLength: 2000 },
          readOnly: { type: 'boolean' },
          args: { type: 'object' },
          runs: { type: 'string', maxLength: 128 },
          with: { type: 'object' },
        },
      },
    },
    fetch: {
      type: 'object',
      additionalProperties: false,
      required: ['command'],
      properties: {
        command: { type: 'string', pattern: COMMAND_NAME },
        items: { type: 'string', pattern: FIELD_PATH },
        id: { type: 'string', pattern: FIELD_PATH },
        name: { type: 'string', pattern: FIELD_PATH },
        severity: { type: 'string', pattern: FIELD_PATH },
        details: { type: 'string', pattern: FIELD_PATH },
        type: { type: 'string', minLength: 1, maxLength: 100 },
      },
    },
  },
} as const;

/** Schemas given by users: unknown keywords are refused (a typo would check nothing); nothing is logged. */
const newAjv = () => new Ajv({ allErrors: false, strictTypes: false, strictTuples: false, strictRequired: false });
const checkShape = newAjv().compile(definitionSchema);

/** `/commands/0/args` → `commands[0].args`: the field as a person reads it. */
function fieldOf(path: string, prefix = ''): string {
  const parts = path.split('/').filter(Boolean);
  const dotted = parts.reduce((acc, p) => (/^[0-9]+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), prefix);
  return dotted || prefix || 'body';
}

function describe(e: ErrorObject, prefix: string): { field: string; why: string } {
  if (e.keyword === 'additionalProperties') {
    const field = fieldOf(`${e.instancePath}/${String(e.params.additionalProperty)}`, prefix);
    return { field, why: 'is not a known field' };
  }
  if (e.keyword === 'required')
    return { field: fieldOf(`${e.instancePath}/${String(e.params.missingProperty)}`, prefix), why: 'is required' };
  return { field: fieldOf(e.instancePath, prefix), why: e.message ?? 'is not valid' };
}

const badDefinition = (field: string, why: string) =>
  new BadParameterError('ERR_INTEGRATION_DEFINITION', `${field}: ${why}`, { field });

/** An integration definition's body checked whole, or a 400 naming the first field at fault. */
export function parseIntegrationDefinition(body: string): IntegrationDefinition {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    throw badDefinition('body', 'an integration definition is a JSON object (docs/content.md)');
  }
  if (!checkShape(raw)) {
    const { field, why } = describe(checkShape.errors![0], '');
    throw badDefinition(field, why);
  }
  const def = raw as unknown as IntegrationDefinition;
  if (BUILT_IN_INTEGRATIONS.includes(def.name)) throw badDefinition('name', `"${def.name}" is a built-in integration`);
  const seen = new Set<string>();
  def.commands.forEach((c, i) => {
    const at = `commands[${i}]`;
    if (seen.has(c.name)) throw badDefinition(`${at}.name`, `"${c.name}" is defined twice`);
    seen.add(c.name);
    checkCommand(def.connectionType, c, at);
  });
  if (def.fetch) checkFetch(def, def.fetch);
  return def;
}

/** A fetch calls one of the definition's own commands, and only one that reads (it runs unattended). */
export function checkFetch(def: IntegrationDefinition, fetch: FetchSpec): void {
  const command = def.commands.find((c) => c.name === fetch.command);
  if (!command) throw badDefinition('fetch.command', `must be one of the definition's commands`);
  if (!command.readOnly)
    throw badDefinition('fetch.command', `${command.name} may write; a fetch runs a read-only one`);
}

function checkCommand(type: ConnectionType, c: IntegrationCommand, at: string): void {
  const builtIn = BUILT_IN_COMMANDS[type];
  if (!Object.hasOwn(builtIn, c.runs))
    throw badDefinition(
      `${at}.runs`,
      `must be a command of the ${type} integration: ${Object.keys(builtIn).join(', ')}`,
    );
  if (c.args.type !== 'object') throw badDefinition(`${at}.args`, 'must be a JSON Schema with "type": "object"');
  try {
    newAjv().compile(c.args);
  } catch (e) {
    throw badDefinition(`${at}.args`, `is not a valid JSON Schema (${(e as Error).message})`);
  }
  const method = typeof c.with?.method === 'string' ? c.with.method.toUpperCase() : undefined;
  const reads = builtIn[c.runs].readOnly || method === 'GET' || method === 'HEAD';
  if (c.readOnly && !reads)
    throw badDefinition(`${at}.readOnly`, `${c.runs} may write; fix "with": {"method": "GET"} to make it read-only`);
}

/** The checker of one command's args: a 400 naming the first field (`args.maxBuckets`) at fault. */
export function argsChecker(schema: Record<string, unknown>): (args: unknown) => Record<string, unknown> {
  const validate: ValidateFunction = newAjv().compile(schema);
  return (args) => {
    if (validate(args)) return args as Record<string, unknown>;
    const { field, why } = describe(validate.errors![0], 'args');
    throw new BadParameterError('ERR_INTEGRATION_ARGS', `${field}: ${why}`, { field });
  };
}
