/**
 * What a connection is (a tenant's credentials and settings for one outside service): its types, the
 * settings each type takes and their forms, and the one check both the CLI and the tenant run, so a bad
 * `--set` fails on the admin's machine with the same words the tenant's 400 would use.
 *
 * A connection is `{name, type, settings, hasSecret}`; the secret itself is never part of it (it travels
 * sealed, see sealed-secret.ts, and rests sealed in the tenant). Not the store or the sealing at rest:
 * agent/tenant/connection-store.ts.
 *
 * Settings are flat: a name and a string, whole number or boolean. Unknown names are refused rather than
 * kept, because a misspelt `roleArn` that is silently ignored would authenticate some other way.
 */
import { BadParameterError } from './errors.js';

export const CONNECTION_TYPES = ['aws', 'http'] as const;
export type ConnectionType = (typeof CONNECTION_TYPES)[number];
export type SettingValue = string | number | boolean;
export type ConnectionSettings = Record<string, SettingValue>;

/** What list and show answer: never the secret, only whether there is one. */
export interface ConnectionView {
  name: string;
  type: ConnectionType;
  settings: ConnectionSettings;
  hasSecret: boolean;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
  updatedBy: string;
}

/**
 * Longest secret accepted: an AWS secret key with a session token (`SECRET@@@TOKEN`, tokens run to ~2 KiB)
 * or an HTTP token fits many times over; a larger one is a wrong file, not a credential.
 */
export const MAX_SECRET_BYTES = 16 * 1024;
/** Most settings one connection holds (each type knows fewer; the bound is for the REST schema). */
export const MAX_SETTINGS = 32;

interface FieldSpec {
  /** `switch`: on or off (true/false taken too), as `on`/`off`. */
  kind: 'string' | 'integer' | 'boolean' | 'switch';
  /** For strings: the form, and how to say it in an error. */
  pattern?: RegExp;
  form?: string;
  min?: number;
  max?: number;
  required?: boolean;
  default?: SettingValue;
}

// No user:password@ in the authority: a password there would sit in clear settings, and `http://a@b` hides its host.
const URL_FORM = {
  pattern: /^https?:\/\/[^\s/?#@]+(?:[/?#]\S*)?$/,
  form: 'an http:// or https:// URL without user or password in it',
};
const str = (pattern: RegExp, form: string, extra: Partial<FieldSpec> = {}): FieldSpec => ({
  kind: 'string',
  pattern,
  form,
  ...extra,
});
const int = (min: number, max: number): FieldSpec => ({ kind: 'integer', min, max });

const FIELDS: Readonly<Record<ConnectionType, Readonly<Record<string, FieldSpec>>>> = {
  aws: {
    region: str(/^[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}$/, 'an AWS region such as eu-west-1', { required: true }),
    roleArn: str(/^arn:aws[a-z-]*:iam::[0-9]{12}:role\/[\w+=,.@/-]{1,512}$/, 'an IAM role ARN'),
    // AWS's own limits: 2-64 characters of [\w+=,.@-]; 900 s to 12 h.
    roleSessionName: str(/^[\w+=,.@-]{2,64}$/, "2-64 of letters, digits and '+=,.@_-'"),
    sessionDuration: int(900, 43_200),
    stsRegionalEndpoints: { kind: 'boolean', default: true },
    endpointUrl: str(URL_FORM.pattern, URL_FORM.form, { max: 2048 }),
    stsEndpointUrl: str(URL_FORM.pattern, URL_FORM.form, { max: 2048 }),
    timeoutMs: int(100, 600_000),
    maxAttempts: int(1, 10),
    accessKeyId: str(/^[A-Z0-9]{16,128}$/, 'an AWS access key id (16-128 upper-case letters and digits)'),
  },
  http: {
    baseUrl: str(URL_FORM.pattern, URL_FORM.form, { required: true, max: 2048 }),
    authType: str(/^(?:none|header|basic|bearer)$/, 'one of none, header, basic, bearer', { default: 'none' }),
    headerName: str(/^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/, 'an HTTP header name'),
    username: str(/^[^\p{Cc}:]{1,256}$/u, 'a user name of 1-256 characters, no ":" or control characters'),
    tlsVerify: { kind: 'boolean', default: true },
  },
};

/**
 * The settings that decide where a connection's secret is sent (or in what form). Changing one while keeping a
 * stored secret is refused: whoever may edit settings must not be able to send a credential someone else put
 * there to a server of their choosing (connection-store.ts).
 */
export const SECRET_DESTINATION: Readonly<Record<ConnectionType, readonly string[]>> = {
  aws: ['endpointUrl', 'stsEndpointUrl'],
  http: ['baseUrl', 'authType', 'headerName', 'username', 'tlsVerify'],
};

/**
 * The settings a secret sealed on the CLI for a content connection is bound to (common/connection-content.ts
 * `sealedName`): where it goes and as whom. A new version that changes one needs the secret sealed again.
 */
export const SEALED_DESTINATION: Readonly<Record<ConnectionType, readonly string[]>> = {
  aws: [...SECRET_DESTINATION.aws, 'region', 'roleArn', 'accessKeyId'],
  http: SECRET_DESTINATION.http,
};

/** The SEALED_DESTINATION settings of a connection as `[name, value]`, defaults filled in, absent ones null. */
export function sealedDestination(type: ConnectionType, settings: Record<string, unknown>): [string, unknown][] {
  const given = new Map(
    Object.entries(settings).map(([k, v]) => {
      const a = aliasOf(type, k);
      // Unchecked values are hashed as given (a bad one is refused where the whole is checked).
      return a ? [a.name, a.toOurs && isSetting(v) ? a.toOurs(v) : v] : [k, v];
    }),
  );
  return SEALED_DESTINATION[type].map((k) => [k, given.get(k) ?? FIELDS[type][k]?.default ?? null]);
}

/**
 * DESIGN.md's name of a setting we name otherwise: `name` is ours. A value in another form has its own `spec` (checked
 * as given) and is converted to ours (`toOurs`, after the check) and back for views (`fromOurs`); without them it is
 * the same value under both names.
 */
export interface SettingAlias {
  name: string;
  spec?: FieldSpec;
  toOurs?: (v: SettingValue) => SettingValue;
  fromOurs?: (v: SettingValue) => SettingValue;
}
const plain = (name: string): SettingAlias => ({ name });

/**
 * DESIGN.md's names for settings and ours. Both are accepted wherever settings come in and mapped to ours (value
 * converted) before any check; what is stored is ours only, and views show both. `stsRegionalEndpoint` is `on|off`
 * (true/false taken too) for our boolean; `retries` counts the attempts after the first, `maxAttempts` (the SDK's)
 * counts them all.
 */
export const SETTING_ALIASES: Readonly<Record<ConnectionType, Readonly<Record<string, SettingAlias>>>> = {
  aws: {
    roleSessionDuration: plain('sessionDuration'),
    endpoint: plain('endpointUrl'),
    stsEndpoint: plain('stsEndpointUrl'),
    stsRegionalEndpoint: {
      name: 'stsRegionalEndpoints',
      spec: { kind: 'switch' },
      toOurs: (v) => v === 'on',
      fromOurs: (v) => (v ? 'on' : 'off'),
    },
    retries: {
      name: 'maxAttempts',
      spec: int(0, 9),
      toOurs: (v) => (v as number) + 1,
      fromOurs: (v) => (v as number) - 1,
    },
  },
  http: { auth: plain('authType'), header: plain('headerName'), verifyTls: plain('tlsVerify') },
};

function aliasOf(type: ConnectionType, key: string): SettingAlias | undefined {
  return Object.hasOwn(SETTING_ALIASES[type], key) ? SETTING_ALIASES[type][key] : undefined;
}

const isSetting = (v: unknown): v is SettingValue => ['string', 'number', 'boolean'].includes(typeof v);

/** Our name of a setting given under either name (an unknown name comes back as it is). */
export function canonicalName(type: ConnectionType, key: string): string {
  return aliasOf(type, key)?.name ?? key;
}

/** Names of settings that exist but are not the caller's to set, and why. */
const NOT_SETTABLE: Readonly<Record<string, string>> = {
  externalId: "is not settable: each tenant's ExternalId is derived for it, so no tenant can use another's",
};

const bad = (field: string, why: string) =>
  new BadParameterError('ERR_CONNECTION_SETTING', `${field}: ${why}`, { field });
const badSecret = (why: string) =>
  new BadParameterError('ERR_CONNECTION_SECRET', `secret: ${why}`, { field: 'secret' });

export function isConnectionType(t: unknown): t is ConnectionType {
  return typeof t === 'string' && (CONNECTION_TYPES as readonly string[]).includes(t);
}

export function checkConnectionType(t: unknown): ConnectionType {
  if (!isConnectionType(t))
    throw new BadParameterError('ERR_CONNECTION_TYPE', `type: must be one of ${CONNECTION_TYPES.join(', ')}`, {
      field: 'type',
    });
  return t;
}

/** The setting names of a type, for help and error text. */
export function settingNames(type: ConnectionType): string[] {
  return Object.keys(FIELDS[type]);
}

/** The form a setting is given in under `key` (an alias in another form has its own). */
function specOf(type: ConnectionType, key: string): FieldSpec {
  const field = `settings.${key}`;
  if (Object.hasOwn(NOT_SETTABLE, key)) throw bad(field, NOT_SETTABLE[key]);
  const alias = aliasOf(type, key);
  if (alias?.spec) return alias.spec;
  const name = alias?.name ?? key;
  const spec = Object.hasOwn(FIELDS[type], name) ? FIELDS[type][name] : undefined;
  if (!spec) {
    const aliases = Object.keys(SETTING_ALIASES[type]);
    const also = aliases.length ? `; also named ${aliases.join(', ')}` : '';
    throw bad(field, `not a setting of ${type} connections (${settingNames(type).join(', ')}${also})`);
  }
  return spec;
}

/** Refuses a name that is no setting of `type` (e.g. one given to unset), naming it. */
export function checkSettingName(type: ConnectionType, key: string): void {
  specOf(type, key);
}

/** A `--set key=value` value in its setting's kind (the CLI's strings; REST sends typed JSON). */
export function parseSetting(type: ConnectionType, key: string, raw: string): SettingValue {
  const spec = specOf(type, key);
  if (spec.kind === 'boolean') {
    if (raw === 'true' || raw === 'false') return raw === 'true';
    throw bad(`settings.${key}`, 'must be true or false');
  }
  if (spec.kind === 'switch') return checkValue(key, spec, raw);
  if (spec.kind === 'integer') {
    if (/^[0-9]{1,9}$/.test(raw)) return Number(raw);
    throw bad(`settings.${key}`, `must be a whole number from ${spec.min} to ${spec.max}`);
  }
  return raw;
}

function checkValue(key: string, spec: FieldSpec, v: unknown): SettingValue {
  const field = `settings.${key}`;
  if (spec.kind === 'boolean') {
    if (typeof v !== 'boolean') throw bad(field, 'must be true or false');
    return v;
  }
  if (spec.kind === 'switch') {
    if (v === 'on' || v === true || v === 'true') return 'on';
    if (v === 'off' || v === false || v === 'false') return 'off';
    throw bad(field, 'must be on or off');
  }
  if (spec.kind === 'integer') {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < spec.min! || v > spec.max!)
      throw bad(field, `must be a whole number from ${spec.min} to ${spec.max}`);
    return v;
  }
  if (typeof v !== 'string' || !spec.pattern!.test(v) || v.length > (spec.max ?? 512))
    throw bad(field, `must be ${spec.form}`);
  return v;
}

/**
 * The settings of a connection of `type` checked and completed with defaults, or a BadParameterError naming
 * the first field at fault. `hasSecret` is whether the connection will hold a secret once the change is made:
 * some settings need one (an access key id, an HTTP auth type) and the others must not carry one.
 */
export function checkConnection(type: ConnectionType, settings: Record<string, unknown>, hasSecret: boolean) {
  const out: ConnectionSettings = {};
  for (const [key, v] of Object.entries(settings)) setOnce(out, type, key, ours(type, key, v, true));
  for (const [key, spec] of Object.entries(FIELDS[type])) {
    if (out[key] !== undefined) continue;
    if (spec.required) throw bad(`settings.${key}`, `is required for ${type} connections`);
    if (spec.default !== undefined) out[key] = spec.default;
  }
  if (type === 'aws') checkAwsSecret(out, hasSecret);
  else checkHttpAuth(out, hasSecret);
  return out;
}

/**
 * A value given under `key` as ours: checked (all when `check`; else only one that must be converted) and converted
 * from an alias's form.
 */
function ours(type: ConnectionType, key: string, v: unknown, check: boolean): unknown {
  const spec = specOf(type, key);
  const alias = aliasOf(type, key);
  if (!alias?.toOurs) return check ? checkValue(key, spec, v) : v;
  return alias.toOurs(checkValue(key, spec, v));
}

/** Sets `v` (ours) given under `key` (either name) in `out`, refusing a second, different value for the setting. */
function setOnce(out: Record<string, unknown>, type: ConnectionType, key: string, v: unknown): void {
  const name = canonicalName(type, key);
  if (Object.hasOwn(out, name) && JSON.stringify(out[name]) !== JSON.stringify(v)) {
    const alias = key === name ? Object.keys(SETTING_ALIASES[type]).find((a) => canonicalName(type, a) === name)! : key;
    const back = SETTING_ALIASES[type][alias].fromOurs;
    const was = key === name ? v : out[name];
    const hint = back && isSetting(was) ? ` (${name} ${String(was)} is ${alias} ${String(back(was))})` : '';
    throw bad(`settings.${alias}`, `is ${name} by another name, and the two values differ${hint}`);
  }
  out[name] = v;
}

/**
 * Settings given under either name as ours (values unchecked but for those converted from an alias's form: for a
 * change merged before the whole is checked), or a 400 naming an unknown setting, a bad value of an alias in another
 * form, or one setting given twice with different values.
 */
export function canonicalSettings(
  type: ConnectionType,
  settings: Record<string, unknown>,
  current?: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const given = new Map(Object.entries(settings).map(([k, v]) => [k, ours(type, k, v, false)]));
  // A view sent back with one name of a pair changed (views show both): the one still holding the stored value is
  // an echo, not a second value.
  if (current)
    for (const [alias, { name }] of Object.entries(SETTING_ALIASES[type]))
      if (given.has(alias) && given.has(name) && !same(given.get(alias), given.get(name))) {
        if (same(given.get(alias), current[name])) given.delete(alias);
        else if (same(given.get(name), current[name])) given.delete(name);
      }
  for (const [key, v] of given) setOnce(out, type, key, v);
  return out;
}

/** Settings as shown (REST, CLI): ours, and the same values under DESIGN.md's names too (in their form). */
export function withDesignNames(type: ConnectionType, settings: ConnectionSettings): ConnectionSettings {
  const out: ConnectionSettings = { ...settings };
  for (const [alias, { name, fromOurs }] of Object.entries(SETTING_ALIASES[type]))
    if (Object.hasOwn(settings, name)) out[alias] = fromOurs ? fromOurs(settings[name]) : settings[name];
  return out;
}

function checkAwsSecret(s: ConnectionSettings, hasSecret: boolean): void {
  // Without keys the SDK uses the instance role; a secret key without its id (or the reverse) is a mistake.
  if (s.accessKeyId !== undefined && !hasSecret)
    throw badSecret('accessKeyId needs the secret access key (SECRET, or SECRET@@@SESSIONTOKEN) as the secret');
  if (s.accessKeyId === undefined && hasSecret)
    throw badSecret('an aws secret needs settings.accessKeyId (without keys, the instance role is used)');
}

function checkHttpAuth(s: ConnectionSettings, hasSecret: boolean): void {
  const auth = s.authType as 'none' | 'header' | 'basic' | 'bearer';
  if (auth === 'header' && s.headerName === undefined)
    throw bad('settings.headerName', 'is required with authType header');
  if (auth !== 'header' && s.headerName !== undefined) throw bad('settings.headerName', 'is only for authType header');
  if (auth === 'basic' && s.username === undefined) throw bad('settings.username', 'is required with authType basic');
  if (auth !== 'basic' && s.username !== undefined) throw bad('settings.username', 'is only for authType basic');
  if (auth === 'none' && hasSecret) throw badSecret('authType none takes no secret');
  if (auth !== 'none' && !hasSecret)
    throw badSecret(`authType ${auth} needs the ${auth === 'basic' ? 'password' : 'token or header value'}`);
}

/** A secret as given (file, stdin or JSON): non-empty, bounded, one value. */
export function checkSecret(secret: string): string {
  if (secret.length === 0) throw badSecret('is empty');
  if (Buffer.byteLength(secret) > MAX_SECRET_BYTES) throw badSecret(`is larger than ${MAX_SECRET_BYTES} bytes`);
  return secret;
}
