/**
 * Keeps the AWS SDK in an agent process from using anything of the machine's own AWS setup. The SDK reads
 * ~/.aws/config and ~/.aws/credentials (region, retries, endpoints, profiles with keys) and AWS_* variables
 * (keys, AWS_ENDPOINT_URL, AWS_PROFILE) on its own, wherever an explicit setting is missing: on a host that is
 * the MSSP's account, and a tenant running as the host's user (`tenantUsers: false`) would otherwise reach it
 * through os.homedir() even without HOME. On an engine it is whatever its operator's shell held. A connection
 * says everything a call needs; the machine adds nothing.
 * The host builds each tenant's environment with SHARED_FILES_NOWHERE (tenant-isolation.ts passes no AWS_*
 * variable); an engine scrubs its own at start (`isolateAwsSdk`). Not credentials: credentials.ts.
 */

/** The shared files' paths under /dev/null, which is no directory: no file can ever exist there. */
export const SHARED_FILES_NOWHERE: Readonly<Record<string, string>> = Object.freeze({
  AWS_CONFIG_FILE: '/dev/null/palisade-no-aws-config',
  AWS_SHARED_CREDENTIALS_FILE: '/dev/null/palisade-no-aws-credentials',
});

/**
 * What an engine keeps: where instance metadata answers. An engine may use its instance role, and an instance
 * reached over IPv6 only (http://[fd00:ec2::254]) or a test's fake needs it said; it carries no credential.
 */
export const ENGINE_KEEPS: readonly string[] = ['AWS_EC2_METADATA_SERVICE_ENDPOINT'];

/** Removes every AWS_* variable of `env` but `keep`, and points the shared files nowhere. Changes `env` itself. */
export function isolateAwsSdk(env: NodeJS.ProcessEnv, keep: readonly string[] = []): void {
  for (const k of Object.keys(env)) if (k.startsWith('AWS_') && !keep.includes(k)) delete env[k];
  Object.assign(env, SHARED_FILES_NOWHERE);
}
