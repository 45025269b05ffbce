/**
 * The agent releases main serves for upgrades, kept as files in DATA/agent-releases: `<version>.tar.gz`
 * as uploaded and `<version>.json`, its record (version, runtime, size, SHA-256 and main's signature over
 * them, common/agent-release.ts). The version comes from the archive's own release.json, so what an agent
 * unpacks names the version it was sent as. A version is stored once: the same bytes again are accepted as
 * they are, other bytes under that version are refused (an agent may already run them).
 * Not the rollout (upgrades.ts) or the HTTP routes (http/routes-releases.ts).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar';
import { checkReleaseVersion, releaseEntryRefusal, releaseStatement } from '#common/agent-release.js';
import { writeFileAtomic } from '#common/atomic-file.js';
import { BadParameterError, ConflictError, NotFoundError, errorMessage } from '#common/errors.js';
import type { SigningKey } from '../tenants/signing-key.js';

/** release.json is a few fields; a bigger one is not ours. */
const MAX_RELEASE_JSON_BYTES = 16 * 1024;

export interface ReleaseRecord {
  version: string;
  /** The Node.js runtime the release carries (release.json `node`), for the listing. */
  node: string | null;
  size: number;
  sha256: string;
  /** base64 ed25519 signature over releaseStatement(version, sha256, size). */
  signature: string;
  addedAt: string;
  addedBy: string;
}

export class ReleaseStore {
  private adding: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly dir: string,
    private readonly signingKey: SigningKey,
  ) {}

  /**
   * Stores an uploaded archive; returns its record (and whether it was new). One add at a time: two adds of one
   * version with different bytes would both find none, and the record could end up naming the other's digest.
   */
  add(archive: Buffer, by: string): Promise<{ record: ReleaseRecord; created: boolean }> {
    const run = this.adding.then(() => this.addNow(archive, by));
    this.adding = run.catch(() => undefined);
    return run;
  }

  private async addNow(archive: Buffer, by: string): Promise<{ record: ReleaseRecord; created: boolean }> {
    await mkdir(this.dir, { recursive: true });
    const sha256 = createHash('sha256').update(archive).digest('hex');
    const upload = join(this.dir, `.upload-${randomBytes(6).toString('hex')}.tar.gz`);
    await writeFile(upload, archive, { mode: 0o600 });
    try {
      const meta = await readReleaseJson(upload);
      const version = checkReleaseVersion(meta.version, 'release.json version');
      const prior = await this.find(version);
      if (prior) {
        if (prior.sha256 === sha256) return { record: prior, created: false };
        throw new ConflictError(
          'ERR_RELEASE_EXISTS',
          `main already holds release ${version} with other contents (SHA-256 ${prior.sha256.slice(0, 16)}…); give the new build a new version`,
        );
      }
      const record: ReleaseRecord = {
        version,
        node: typeof meta.node === 'string' ? meta.node.slice(0, 64) : null,
        size: archive.length,
        sha256,
        signature: this.signingKey.sign(releaseStatement(version, sha256, archive.length)).toString('base64'),
        addedAt: new Date().toISOString(),
        addedBy: by,
      };
      // The archive first: a record never names bytes that are not there.
      await rename(upload, this.archivePath(version));
      await writeFileAtomic(join(this.dir, `${version}.json`), JSON.stringify(record, null, 2));
      return { record, created: true };
    } finally {
      await rm(upload, { force: true });
    }
  }

  async list(): Promise<ReleaseRecord[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const records = await Promise.all(
      names.filter((n) => n.endsWith('.json')).map((n) => this.find(n.slice(0, -'.json'.length))),
    );
    return records
      .filter((r): r is ReleaseRecord => r !== undefined)
      .sort((a, b) => a.addedAt.localeCompare(b.addedAt));
  }

  async find(version: string): Promise<ReleaseRecord | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir, `${version}.json`), 'utf8')) as ReleaseRecord;
    } catch {
      return undefined;
    }
  }

  async get(version: string): Promise<ReleaseRecord> {
    const r = await this.find(checkReleaseVersion(version));
    if (!r)
      throw new NotFoundError(
        'ERR_RELEASE_NOT_FOUND',
        `main holds no agent release ${version}; add it with 'palisade agents releases add FILE.tar.gz'`,
        { field: 'version' },
      );
    return r;
  }

  archivePath(version: string): string {
    return join(this.dir, `${checkReleaseVersion(version)}.tar.gz`);
  }
}

/** release.json at the archive's root (`release.json` or `./release.json`), parsed. */
async function readReleaseJson(file: string): Promise<Record<string, unknown>> {
  const invalid = (why: string, cause?: unknown) =>
    new BadParameterError('ERR_RELEASE_INVALID', `the archive is not an agent release: ${why}`, { cause });
  const chunks: Buffer[] = [];
  let bytes = 0;
  let refusal: string | undefined;
  try {
    await tar.t({
      file,
      strict: true,
      onReadEntry: (e) => {
        refusal ??= releaseEntryRefusal(e.path, e.type, e.linkpath);
        if (e.type !== 'File' || (e.path !== 'release.json' && e.path !== './release.json')) return;
        e.on('data', (c: Buffer) => {
          bytes += c.length;
          if (bytes <= MAX_RELEASE_JSON_BYTES) chunks.push(c);
        });
      },
    });
  } catch (e) {
    throw invalid(`not a readable .tar.gz (${errorMessage(e)})`, e);
  }
  if (refusal) throw invalid(refusal);
  if (!chunks.length) throw invalid('no release.json at its root (pack the release directory: tar czf F -C DIR .)');
  if (bytes > MAX_RELEASE_JSON_BYTES) throw invalid('release.json is too large');
  try {
    const o = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (o && typeof o === 'object' && !Array.isArray(o)) return o as Record<string, unknown>;
  } catch (e) {
    throw invalid('release.json is not JSON', e);
  }
  throw invalid('release.json is not a JSON object');
}
