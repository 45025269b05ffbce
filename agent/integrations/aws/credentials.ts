/**
 * The credentials one AWS call signs with, in the three ways a connection can give them, plus AssumeRole
 * on top of any of them:
 *   - access key + secret key; or key + `SECRET@@@SESSIONTOKEN` (temporary credentials, sent as
 *     X-Amz-Security-Token);
 *   - no keys: the EC2 instance role from instance metadata, IMDSv2 only. `ec2MetadataV1Disabled` makes
 *     the SDK fail rather than fall back to a token-less GET when the token PUT fails (IMDSv1 is what SSRF
 *     against a host steals credentials through). The endpoint is the SDK's own setting
 *     (AWS_EC2_METADATA_SERVICE_ENDPOINT; default http://169.254.169.254), which tests point at a fake;
 *   - a role (the connection's roleArn, or a per-call one that overrides it): STS AssumeRole with
 *     RoleSessionName, DurationSeconds and the tenant's ExternalId, signed with the credentials above.
 * The SDK's IMDS provider dials with node:http, not through the call's request handler: where traffic
 * must be confined (an engine's allow-list), the caller checks 169.254.169.254:80 before using this mode.
 * Not the service calls and not error translation (aws-errors.ts maps what this throws).
 */
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { fromInstanceMetadata } from '@aws-sdk/credential-providers';
import type { AwsCredentialIdentity } from '@smithy/types';
import { type CallHandler, stsSettings } from './client-config.js';
import type { AwsConnection } from './connection.js';

/** Instance metadata answers on the link in milliseconds; a second means it is not there (the SDK's default). */
const IMDS_TIMEOUT_MS = 1_000;

/** Which step of resolving credentials failed, so an error can say what was being done. */
export type CredentialStep = 'imds' | 'assume-role';

/** An SDK failure while getting credentials, with what was being attempted. */
export class CredentialStepFailure extends Error {
  constructor(
    readonly step: CredentialStep,
    readonly detail: { roleArn?: string; externalId?: string },
    cause: unknown,
  ) {
    super(`${step} failed`, { cause });
  }
}

export interface CredentialRequest {
  connection: AwsConnection;
  handler: CallHandler;
  externalId: string;
  /** The per-call roleArn, which overrides the connection's for this call. */
  roleArn?: string;
  abortSignal: AbortSignal;
}

/** The credentials the call's service request is signed with, and the role assumed, if any. */
export interface CallCredentials {
  credentials: AwsCredentialIdentity;
  assumedRoleArn?: string;
}

export async function callCredentials(req: CredentialRequest): Promise<CallCredentials> {
  const base = await baseCredentials(req.connection);
  const roleArn = req.roleArn ?? req.connection.roleArn;
  if (roleArn === undefined) return { credentials: base };
  return { credentials: await assumeRole(req, base, roleArn), assumedRoleArn: roleArn };
}

async function baseCredentials(connection: AwsConnection): Promise<AwsCredentialIdentity> {
  if (connection.keys) return { ...connection.keys };
  const provider = fromInstanceMetadata({ ec2MetadataV1Disabled: true, timeout: IMDS_TIMEOUT_MS, maxRetries: 0 });
  try {
    return await provider();
  } catch (e) {
    throw new CredentialStepFailure('imds', {}, e);
  }
}

async function assumeRole(
  req: CredentialRequest,
  base: AwsCredentialIdentity,
  roleArn: string,
): Promise<AwsCredentialIdentity> {
  const sts = new STSClient({ ...stsSettings(req.connection, req.handler), credentials: base });
  try {
    const out = await sts.send(
      new AssumeRoleCommand({
        RoleArn: roleArn,
        RoleSessionName: req.connection.roleSessionName,
        DurationSeconds: req.connection.sessionDuration,
        ExternalId: req.externalId,
      }),
      { abortSignal: req.abortSignal },
    );
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken)
      throw new Error('AssumeRole answered without credentials');
    return {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      sessionToken: c.SessionToken,
      expiration: c.Expiration,
    };
  } catch (e) {
    throw new CredentialStepFailure('assume-role', { roleArn, externalId: req.externalId }, e);
  }
}
