/**
 * Turns what the AWS SDK throws into Palisade's typed errors, each with a message a person can act on:
 * which key, which role and ExternalId, which host, which IAM action. Branches on the SDK's error names
 * (AWS's error codes) and Node's socket codes, never on message text. What is not an SDK or socket error
 * (a bug of ours) is rethrown as it is, so it is not dressed up as AWS's fault.
 * Not retries: the SDK retried throttling and 5xx up to maxAttempts before anything reaches here.
 */
import {
  AccessDeniedError,
  BadParameterError,
  DependencyError,
  type PalisadeError,
  RateLimitedError,
} from '#common/errors.js';
import type { CredentialStep } from './credentials.js';

/** What the failing call was doing, for the message. */
export interface FailureContext {
  step: CredentialStep | 'call';
  /** The host the failing request went to. */
  host: string;
  region: string;
  /** True when the host is AWS's default for the region (so a name that does not resolve means the region). */
  defaultHost: boolean;
  accessKeyId?: string;
  roleArn?: string;
  externalId?: string;
  action?: string;
  timeoutMs: number;
  maxAttempts: number;
}

const BAD_KEY = new Set([
  'InvalidClientTokenId',
  'SignatureDoesNotMatch',
  'InvalidAccessKeyId',
  'AuthFailure',
  'UnrecognizedClientException',
]);
const BAD_TOKEN = new Set(['ExpiredToken', 'ExpiredTokenException', 'InvalidToken', 'TokenRefreshRequired']);
const DENIED = new Set(['AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'AllAccessDisabled']);
const THROTTLED = new Set([
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
  'SlowDown',
  'TooManyRequestsException',
  'RequestThrottled',
]);
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ECONNABORTED']);
const NO_NAME = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME']);
/** Node's TLS failures: its own codes and OpenSSL's verification results (CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_…). */
const TLS_FAILURE = /^ERR_TLS_|^ERR_SSL_|CERT|UNABLE_TO_VERIFY/;

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number };
}

/** The PalisadeError for an SDK failure; rethrows what is not one. */
export function awsFailure(e: unknown, ctx: FailureContext): PalisadeError {
  const err = (e ?? {}) as SdkError;
  const name = err.name ?? '';
  const network = networkFailure(err, ctx);
  if (network) return network;
  if (err.$metadata === undefined && err.$fault === undefined) throw e;
  const said = `${name}: ${err.message ?? ''}`.trim();
  if (BAD_KEY.has(name)) return badKey(name, ctx, e);
  if (BAD_TOKEN.has(name))
    return new AccessDeniedError(
      'ERR_AWS_TOKEN_EXPIRED',
      `AWS refused the session token of ${who(ctx)} (${name}): give fresh temporary credentials as SECRET@@@SESSIONTOKEN`,
      { cause: e },
    );
  if (ctx.step === 'assume-role' && DENIED.has(name))
    return new AccessDeniedError(
      'ERR_AWS_ASSUME_ROLE_DENIED',
      `AssumeRole denied for ${ctx.roleArn} — is ExternalId ${ctx.externalId} in the role's trust policy, ` +
        `and does it trust ${who(ctx)}? (${said})`,
      { cause: e },
    );
  if (DENIED.has(name))
    return new AccessDeniedError(
      'ERR_AWS_ACCESS_DENIED',
      `${who(ctx)} may not call ${ctx.action} (${name}): grant it in that identity's IAM policy`,
      { cause: e },
    );
  if (name === 'RegionDisabledException')
    return new BadParameterError('ERR_AWS_REGION', `STS is not activated in ${ctx.region} for this account (${said})`, {
      cause: e,
    });
  if (THROTTLED.has(name))
    return new RateLimitedError(
      'ERR_AWS_THROTTLED',
      `AWS throttled ${ctx.action ?? 'the call'} through ${ctx.maxAttempts} attempt(s) (${name}): retry later`,
      { cause: e },
    );
  if (err.$fault === 'server' || (err.$metadata?.httpStatusCode ?? 0) >= 500)
    return new DependencyError(
      'ERR_AWS_SERVICE',
      `${ctx.host} answered a server error through ${ctx.maxAttempts} attempt(s) (${said})`,
      { cause: e },
    );
  return new BadParameterError('ERR_AWS_REQUEST', `AWS refused the request to ${ctx.host} (${said})`, { cause: e });
}

function networkFailure(err: SdkError, ctx: FailureContext): PalisadeError | undefined {
  const code = err.code ?? '';
  if (err.name === 'TimeoutError' || err.name === 'AbortError' || code === 'ETIMEDOUT')
    return new DependencyError(
      'ERR_AWS_TIMEOUT',
      `no answer from ${ctx.host} within ${ctx.timeoutMs} ms (timeoutMs; ${ctx.maxAttempts} attempt(s) allowed)`,
      { cause: err },
    );
  if (NO_NAME.has(code) && ctx.defaultHost)
    return new BadParameterError(
      'ERR_AWS_REGION',
      `${ctx.host} does not resolve: is ${ctx.region} an AWS region (and enabled for this account)?`,
      { cause: err, field: 'region' },
    );
  if (NO_NAME.has(code))
    return new DependencyError('ERR_AWS_UNREACHABLE', `${ctx.host} does not resolve: check the endpoint URL`, {
      cause: err,
    });
  if (UNREACHABLE.has(code) || TLS_FAILURE.test(code))
    return new DependencyError('ERR_AWS_UNREACHABLE', `cannot reach ${ctx.host} (${code})`, { cause: err });
  return undefined;
}

function badKey(name: string, ctx: FailureContext, cause: unknown): PalisadeError {
  if (ctx.step === 'call' && ctx.roleArn)
    return new AccessDeniedError('ERR_AWS_KEYS', `AWS refused the credentials of role ${ctx.roleArn} (${name})`, {
      cause,
    });
  const msg =
    ctx.accessKeyId === undefined
      ? `AWS refused the instance role's credentials (${name})`
      : `AWS does not accept access key ${ctx.accessKeyId} (${name}): check that the key is active in IAM ` +
        `and that the connection's secret is this key's`;
  return new AccessDeniedError('ERR_AWS_KEYS', msg, { cause });
}

/** The identity a call was made as, in words. */
function who(ctx: FailureContext): string {
  if (ctx.step === 'call' && ctx.roleArn) return `role ${ctx.roleArn}`;
  return ctx.accessKeyId ? `access key ${ctx.accessKeyId}` : 'the instance role';
}

/** Any failure of the IMDSv2 step: the instance role is unreachable. */
export function imdsFailure(e: unknown): PalisadeError {
  const endpoint = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT ?? 'http://169.254.169.254';
  return new BadParameterError(
    'ERR_AWS_IMDS_UNREACHABLE',
    `no access keys are set, so the EC2 instance role is used, and instance metadata at ${endpoint} gave no ` +
      'credentials over IMDSv2: on EC2, attach a role and allow IMDSv2 (hop limit 2 from a container); ' +
      'elsewhere, set accessKeyId and secret',
    { cause: e },
  );
}
