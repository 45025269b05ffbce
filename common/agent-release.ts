/**
 * What main and an agent agree on about agent releases: the version grammar, the statement main signs for
 * each release archive, and the args of the `agent.upgrade` command. Pure: no files, no network.
 *
 * Trust: main signs `palisade-agent-release/v1`, the version, the archive's SHA-256 and its size with its
 * ed25519 signing key (main/tenants/signing-key.ts), the same key it signs tenant requests with. An agent
 * learns that key's public half in main's Welcome, over the connection whose server it checks against the
 * CA pinned at install: so a release is trusted only if the main the agent pinned signed it, whoever served
 * the bytes. Version, digest and size are all signed, so an archive cannot be passed off as another version.
 * Not here: fetching, unpacking or swapping (agent/upgrade/), storing releases (main/agents/releases.ts).
 */
import { createPublicKey, verify } from 'node:crypto';
import { AccessDeniedError, BadParameterError } from './errors.js';

/** A release version names a directory (releases/<version>): no slash, no leading dot, short. */
const VERSION_RE = /^[0-9A-Za-z][0-9A-Za-z._+-]{0,63}$/;
const SHA256_RE = /^[0-9a-f]{64}$/;
const STATEMENT_TAG = 'palisade-agent-release/v1';

/** How long a started upgrade has to connect and be accepted before its launcher rolls it back. */
export const DEFAULT_UPGRADE_DEADLINE_MS = 120_000;
/**
 * Bounds of that deadline: a new agent on a loaded host needs a few seconds to start its runtime, load its
 * store and dial main (3-8 s measured on the 2-core CI machine); an hour is as long as any rollout waits.
 */
export const MIN_UPGRADE_DEADLINE_MS = 10_000;
export const MAX_UPGRADE_DEADLINE_MS = 3_600_000;

export function isReleaseVersion(v: unknown): v is string {
  return typeof v === 'string' && VERSION_RE.test(v);
}

/** An upgrade attempt id: main makes 16 hex digits (upgrades.ts); agents echo it in their reports. */
export function isUpgradeAttempt(v: unknown): v is string {
  return typeof v === 'string' && /^[0-9a-f]{8,32}$/.test(v);
}

export function checkReleaseVersion(v: unknown, field = 'version'): string {
  if (!isReleaseVersion(v))
    throw new BadParameterError(
      'ERR_RELEASE_INVALID',
      `${field}: a release version is 1-64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit`,
      { field },
    );
  return v;
}

/** The bytes main signs for one release archive. */
/** Entry types a release holds: files, folders, and links that stay below their own folder (no "..", no "/"). */
const RELEASE_ENTRY_TYPES: ReadonlySet<string> = new Set(['File', 'Directory', 'SymbolicLink']);

/**
 * Why an archive entry has no place in a release (another type, or a path or link target that leaves the release's
 * directory), or undefined. Main checks at `releases add`, the agent again before it unpacks.
 */
export function releaseEntryRefusal(path: string, type: string, linkpath?: string): string | undefined {
  const name = JSON.stringify(path.slice(0, 200));
  if (!RELEASE_ENTRY_TYPES.has(type)) return `entry ${name} is a ${type}`;
  const leaves = (p: string) => p.startsWith('/') || p.split('/').includes('..');
  if (leaves(path)) return `entry ${name} is outside the release`;
  if (type === 'SymbolicLink' && (!linkpath || leaves(linkpath))) return `link ${name} points outside the release`;
  return undefined;
}

export function releaseStatement(version: string, sha256: string, size: number): Buffer {
  return Buffer.from(`${STATEMENT_TAG}\n${version}\n${sha256}\n${size}\n`, 'utf8');
}

/** What `agent.upgrade` carries: the release, main's signature over it, and the agent's deadline to connect. */
export interface UpgradeArgs {
  version: string;
  /** Lower-case hex SHA-256 of the archive. */
  sha256: string;
  size: number;
  /** base64 ed25519 signature over releaseStatement(version, sha256, size). */
  signature: string;
  /** Names this attempt, so a report of an earlier attempt at the same version is not taken for this one. */
  attempt: string;
  deadlineMs: number;
}

/** Checks the shape of `agent.upgrade` args as they came off the wire. */
export function checkUpgradeArgs(a: unknown): UpgradeArgs {
  const o = (a ?? {}) as Record<string, unknown>;
  const bad = (field: string) =>
    new BadParameterError('ERR_BAD_ARGS', `agent.upgrade: ${field} is missing or malformed`, { field });
  checkReleaseVersion(o.version);
  if (typeof o.sha256 !== 'string' || !SHA256_RE.test(o.sha256)) throw bad('sha256');
  if (!Number.isSafeInteger(o.size) || (o.size as number) <= 0) throw bad('size');
  if (typeof o.signature !== 'string' || !o.signature) throw bad('signature');
  if (!isUpgradeAttempt(o.attempt)) throw bad('attempt');
  const d = o.deadlineMs;
  if (!Number.isSafeInteger(d) || (d as number) < MIN_UPGRADE_DEADLINE_MS || (d as number) > MAX_UPGRADE_DEADLINE_MS)
    throw bad('deadlineMs');
  return o as unknown as UpgradeArgs;
}

/**
 * Checks a fetched archive against the args main signed: its size and SHA-256 first (cheap, and they name
 * what the signature covers), then main's signature with `signingPublicKey` (base64, raw 32 bytes).
 */
export function verifyRelease(
  args: UpgradeArgs,
  fetched: { sha256: string; size: number },
  signingPublicKey: string,
): void {
  if (fetched.size !== args.size || fetched.sha256 !== args.sha256)
    throw new AccessDeniedError(
      'ERR_RELEASE_DIGEST',
      `release ${args.version}: fetched ${fetched.size} bytes with SHA-256 ${fetched.sha256.slice(0, 16)}…, ` +
        `main signed ${args.size} bytes with ${args.sha256.slice(0, 16)}…`,
    );
  const raw = Buffer.from(signingPublicKey, 'base64');
  const sig = Buffer.from(args.signature, 'base64');
  let ok = false;
  if (raw.length === 32 && sig.length === 64) {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' });
    ok = verify(null, releaseStatement(args.version, args.sha256, args.size), key, sig);
  }
  if (!ok)
    throw new AccessDeniedError(
      'ERR_RELEASE_SIGNATURE',
      `release ${args.version}: main's signature does not verify with the key main gave this agent`,
    );
}
