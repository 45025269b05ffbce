/**
 * The release statement main signs and the checks an agent makes before it swaps a release in
 * (common/agent-release.ts): golden statement bytes, and each way an archive or its args can be wrong.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  releaseEntryRefusal,
  checkReleaseVersion,
  checkUpgradeArgs,
  releaseStatement,
  verifyRelease,
  type UpgradeArgs,
} from '#common/agent-release.js';
import { PalisadeError } from '#common/errors.js';

const SHA = 'ab'.repeat(32);
const mainKey = generateKeyPairSync('ed25519');
const otherKey = generateKeyPairSync('ed25519');
const rawPublic = (k: typeof mainKey) =>
  Buffer.from(k.publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('base64');

function signed(version: string, sha256 = SHA, size = 1234, key = mainKey): UpgradeArgs {
  return {
    version,
    sha256,
    size,
    signature: sign(null, releaseStatement(version, sha256, size), key.privateKey).toString('base64'),
    attempt: '0123456789abcdef',
    deadlineMs: 60_000,
  };
}

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof PalisadeError ? e.code : 'not a PalisadeError';
  }
  return undefined;
}

describe('release statement', () => {
  it('is the tag, version, digest and size, one per line', () => {
    expect(releaseStatement('1.2.0', SHA, 42).toString('utf8')).toBe(`palisade-agent-release/v1\n1.2.0\n${SHA}\n42\n`);
  });
});

describe('verifyRelease', () => {
  const args = signed('1.2.0');
  it('accepts the archive main signed, checked with the key main gave', () => {
    expect(codeOf(() => verifyRelease(args, { sha256: SHA, size: 1234 }, rawPublic(mainKey)))).toBeUndefined();
  });
  it('refuses other bytes (digest) and a longer or shorter archive (size)', () => {
    const other = 'cd'.repeat(32);
    expect(codeOf(() => verifyRelease(args, { sha256: other, size: 1234 }, rawPublic(mainKey)))).toBe(
      'ERR_RELEASE_DIGEST',
    );
    expect(codeOf(() => verifyRelease(args, { sha256: SHA, size: 1235 }, rawPublic(mainKey)))).toBe(
      'ERR_RELEASE_DIGEST',
    );
  });
  it("refuses a signature by another key, and args that match the bytes but not main's signature", () => {
    expect(
      codeOf(() =>
        verifyRelease(signed('1.2.0', SHA, 1234, otherKey), { sha256: SHA, size: 1234 }, rawPublic(mainKey)),
      ),
    ).toBe('ERR_RELEASE_SIGNATURE');
    // A release signed as 1.1.0 passed off as 1.2.0: the version is signed too.
    const relabelled = { ...signed('1.1.0'), version: '1.2.0' };
    expect(codeOf(() => verifyRelease(relabelled, { sha256: SHA, size: 1234 }, rawPublic(mainKey)))).toBe(
      'ERR_RELEASE_SIGNATURE',
    );
    expect(codeOf(() => verifyRelease(args, { sha256: SHA, size: 1234 }, ''))).toBe('ERR_RELEASE_SIGNATURE');
  });
});

describe('checkUpgradeArgs and versions', () => {
  it('accepts well-formed args and refuses each malformed field by name', () => {
    const good = signed('2.0.0-rc.1');
    expect(checkUpgradeArgs(good)).toEqual(good);
    for (const [field, value] of [
      ['sha256', 'AB'.repeat(32)],
      ['size', 0],
      ['signature', ''],
      ['attempt', 'x'],
      ['deadlineMs', 1000],
    ] as const) {
      expect(
        codeOf(() => checkUpgradeArgs({ ...good, [field]: value })),
        field,
      ).toBe('ERR_BAD_ARGS');
    }
  });
  it('refuses versions that are not one safe directory name', () => {
    for (const v of ['', '..', '.hidden', 'a/b', 'x'.repeat(65), '1.0 beta'])
      expect(
        codeOf(() => checkReleaseVersion(v)),
        v,
      ).toBe('ERR_RELEASE_INVALID');
    expect(checkReleaseVersion('1.0.0+build.7')).toBe('1.0.0+build.7');
  });

  it('takes files, folders and links inside the release; refuses other types and anything that leaves it', () => {
    expect(releaseEntryRefusal('./app/palisade-agent.mjs', 'File')).toBeUndefined();
    expect(releaseEntryRefusal('./bin/', 'Directory')).toBeUndefined();
    expect(releaseEntryRefusal('./bin/node', 'SymbolicLink', '../runtime/node')).toMatch(/points outside/);
    expect(releaseEntryRefusal('./app/current', 'SymbolicLink', 'chunk-1.mjs')).toBeUndefined();
    expect(releaseEntryRefusal('./bin/node', 'SymbolicLink', '/usr/bin/node')).toMatch(/points outside/);
    expect(releaseEntryRefusal('./dev/sda', 'BlockDevice')).toMatch(/is a BlockDevice/);
    expect(releaseEntryRefusal('./x', 'Link', 'app/y')).toMatch(/is a Link/);
    expect(releaseEntryRefusal('../etc/passwd', 'File')).toMatch(/outside the release/);
    expect(releaseEntryRefusal('/etc/passwd', 'File')).toMatch(/outside the release/);
  });
});
