/**
 * An AWS connection's settings, checked and given their defaults (`checkAndSetDefaults`): what a tenant's
 * connection of type `aws` holds, turned into the frozen value the rest of this folder trusts. Settings may
 * arrive as strings (`--set sessionDuration=900`), so numbers and booleans are parsed here. Every problem is
 * reported at once, as ERR_AWS_CONFIG (or ERR_AWS_REGION for the region), naming the setting.
 * Not storage: where a connection and its secret live is the connections feature's business; this module
 * only reads what it is given and never puts the secret in a message.
 */
import { BadParameterError } from '#common/errors.js';

/** AWS allows 900 s to 12 h for AssumeRole; the default is the shortest, so leaked credentials expire soonest. */
export const SESSION_DURATION_DEFAULT_S = 900;
const SESSION_DURATION_MIN_S = 900;
const SESSION_DURATION_MAX_S = 43_200;
/** Under the 30 s a relayed tenant request waits (main/tenants/tenants.ts): our error arrives, not a relay timeout. */
export const TIMEOUT_DEFAULT_MS = 20_000;
/** The SDK's own default (standard retry mode): one call and two retries on throttling and 5xx. */
export const MAX_ATTEMPTS_DEFAULT = 3;
/** `SECRET@@@SESSIONTOKEN` in the secret field means temporary credentials (the XSOAR integration's form). */
const SESSION_TOKEN_SEPARATOR = '@@@';

/** What a connection of type `aws` holds, as stored (values may be strings). */
export interface AwsConnectionInput {
  region?: unknown;
  accessKeyId?: unknown;
  /** The write-only secret: the secret access key, or `SECRET@@@SESSIONTOKEN`. */
  secret?: unknown;
  roleArn?: unknown;
  roleSessionName?: unknown;
  sessionDuration?: unknown;
  stsRegionalEndpoints?: unknown;
  endpointUrl?: unknown;
  stsEndpointUrl?: unknown;
  timeoutMs?: unknown;
  maxAttempts?: unknown;
  /** Anything else is refused by name (a typo in `--set`). */
  [other: string]: unknown;
}

/** Keys given in the connection; absent when the instance role (IMDSv2) is to be used. */
export interface AwsStaticKeys {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface AwsConnection {
  readonly region: string;
  readonly keys?: AwsStaticKeys;
  readonly roleArn?: string;
  readonly roleSessionName: string;
  readonly sessionDuration: number;
  readonly stsRegionalEndpoints: boolean;
  readonly endpointUrl?: string;
  readonly stsEndpointUrl?: string;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
}

const KNOWN = new Set<string>([
  'region',
  'accessKeyId',
  'secret',
  'roleArn',
  'roleSessionName',
  'sessionDuration',
  'stsRegionalEndpoints',
  'endpointUrl',
  'stsEndpointUrl',
  'timeoutMs',
  'maxAttempts',
]);
// Partitions' regions: us-east-1, eu-central-2, us-gov-west-1, cn-north-1, ap-southeast-5, us-isob-east-1.
const REGION = /^[a-z]{2}(-[a-z]+)+-\d{1,2}$/;
const ACCESS_KEY_ID = /^[A-Z0-9]{16,128}$/;
export const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;

/** A role ARN from a setting or a per-call argument, or a message saying what is wrong with it. */
export function roleArnProblem(arn: unknown): string | undefined {
  if (typeof arn !== 'string' || !ROLE_ARN.test(arn))
    return `is not a role ARN like arn:aws:iam::123456789012:role/NAME (got ${JSON.stringify(arn)})`;
  return undefined;
}

/** Checks a connection's settings and applies defaults; throws one error listing every problem. */
export function checkAwsConnection(input: AwsConnectionInput, tenant: string): AwsConnection {
  const problems: string[] = [];
  const bad = (key: string, why: string): undefined => void problems.push(`${key} ${why}`);
  for (const key of Object.keys(input)) if (!KNOWN.has(key)) bad(key, 'is not an AWS connection setting');

  const region = text(input.region) ?? '';
  const regionProblem =
    region === ''
      ? 'is missing: set region=eu-west-1 or the like'
      : REGION.test(region)
        ? undefined
        : `${JSON.stringify(region)} is not an AWS region name like eu-west-1`;
  if (regionProblem) bad('region', regionProblem);

  const keys = staticKeys(input, bad);
  const roleArn = text(input.roleArn);
  if (roleArn !== undefined && roleArnProblem(roleArn)) bad('roleArn', roleArnProblem(roleArn)!);
  const roleSessionName = text(input.roleSessionName) ?? `palisade-${tenant}`.slice(0, 64);
  if (!SESSION_NAME.test(roleSessionName)) bad('roleSessionName', 'is not 2-64 of letters, digits and +=,.@_-');
  const connection: AwsConnection = {
    region,
    keys,
    roleArn,
    roleSessionName,
    sessionDuration: whole(input.sessionDuration, SESSION_DURATION_DEFAULT_S, 'sessionDuration', bad, [
      SESSION_DURATION_MIN_S,
      SESSION_DURATION_MAX_S,
    ]),
    stsRegionalEndpoints: flag(input.stsRegionalEndpoints, true, 'stsRegionalEndpoints', bad),
    endpointUrl: endpoint(input.endpointUrl, 'endpointUrl', bad),
    stsEndpointUrl: endpoint(input.stsEndpointUrl, 'stsEndpointUrl', bad),
    timeoutMs: whole(input.timeoutMs, TIMEOUT_DEFAULT_MS, 'timeoutMs', bad, [100, 300_000]),
    maxAttempts: whole(input.maxAttempts, MAX_ATTEMPTS_DEFAULT, 'maxAttempts', bad, [1, 10]),
  };
  if (problems.length > 0)
    throw new BadParameterError(
      regionProblem && problems.length === 1 ? 'ERR_AWS_REGION' : 'ERR_AWS_CONFIG',
      `AWS connection: ${problems.join('; ')}`,
      { field: problems[0].split(' ')[0] },
    );
  return Object.freeze(connection);
}

function staticKeys(input: AwsConnectionInput, bad: (k: string, why: string) => undefined): AwsStaticKeys | undefined {
  const accessKeyId = text(input.accessKeyId);
  const secret = text(input.secret);
  if (accessKeyId === undefined && secret === undefined) return undefined; // the instance role, through IMDSv2
  if (accessKeyId === undefined) return bad('accessKeyId', 'is missing: a secret was given without its key id');
  if (secret === undefined) return bad('secret', `is missing for access key ${accessKeyId}`);
  if (!ACCESS_KEY_ID.test(accessKeyId))
    return bad('accessKeyId', `${JSON.stringify(accessKeyId)} is not an access key id`);
  const at = secret.indexOf(SESSION_TOKEN_SEPARATOR);
  if (at < 0) return { accessKeyId, secretAccessKey: secret };
  const secretAccessKey = secret.slice(0, at);
  const sessionToken = secret.slice(at + SESSION_TOKEN_SEPARATOR.length);
  if (secretAccessKey === '' || sessionToken === '')
    return bad('secret', 'is SECRET@@@SESSIONTOKEN with an empty part');
  return { accessKeyId, secretAccessKey, sessionToken };
}

function text(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  const s = String(v).trim();
  return s === '' ? undefined : s;
}

function whole(
  v: unknown,
  fallback: number,
  key: string,
  bad: (k: string, why: string) => undefined,
  [min, max]: [number, number],
): number {
  const s = text(v);
  if (s === undefined) return fallback;
  const n = Number(s);
  if (Number.isInteger(n) && n >= min && n <= max) return n;
  bad(key, `must be a whole number from ${min} to ${max} (got ${JSON.stringify(s)})`);
  return fallback;
}

function flag(v: unknown, fallback: boolean, key: string, bad: (k: string, why: string) => undefined): boolean {
  const s = text(v);
  if (s === undefined) return fallback;
  if (s === 'true' || s === 'false') return s === 'true';
  bad(key, `must be true or false (got ${JSON.stringify(s)})`);
  return fallback;
}

function endpoint(v: unknown, key: string, bad: (k: string, why: string) => undefined): string | undefined {
  const s = text(v);
  if (s === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(s);
  } catch {
    url = undefined;
  }
  if (url && (url.protocol === 'https:' || url.protocol === 'http:') && url.username === '' && url.password === '')
    return s;
  return bad(key, `must be an http(s) URL such as https://vpce-0abc.sts.eu-west-1.vpce.amazonaws.com (got ${s})`);
}
