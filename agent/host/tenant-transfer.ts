/**
 * Moving a tenant between hosts, host side. The source suspends the tenant (so its LevelDB is closed and
 * the copy is consistent), packs its directory into one .tar.gz and serves it in checksummed chunks;
 * the target receives chunks in order, checks each and the whole, unpacks and adopts the tenant. Main
 * drives both ends and only ever holds one chunk in memory. Any failure leaves the source able to resume.
 *
 * The snapshot holds the tenant's secret key, so it is sealed for the target: the target makes a
 * one-time X25519 key pair per transfer, the source another, and each chunk is sealed with
 * ChaCha20-Poly1305 under a key derived from both (bound to the tenant, the chunk's index and the chunk
 * count, so chunks can be neither swapped nor dropped; the format is in transfer-sealing.ts). Main relays
 * ciphertext only.
 *
 * The target trusts the sealing, not the content: snapshot-archive.ts checks every entry and unpacks into a
 * staging directory (`.import-NAME` in the tenants directory), renamed into place only when complete. From
 * that rename until the tenant runs, a marker (`.adopting-NAME`) says the tenant is not yet this host's: a
 * host that crashes meanwhile deletes it at its next start (with any staging left over) instead of starting
 * it, as main has by then resumed the tenant at the source.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm, stat, access, appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { BadParameterError, ConflictError, ProtocolError } from '#common/errors.js';
import { isName } from '#common/names.js';
import type { TenantSupervisor } from './tenant-supervisor.js';
import type { TenantStatus } from './tenant-process.js';
import { packTenant, unpackSnapshot } from './snapshot-archive.js';
import {
  SEALED_CHUNK_BYTES,
  TRANSFER_CHUNK_BYTES,
  boxKey,
  openChunk,
  sealChunk,
  sealingKey,
} from './transfer-sealing.js';

/** In the tenants directory, beside the tenants: never a tenant name (those start with a letter or digit). */
const STAGING_PREFIX = '.import-';
const ADOPTING_PREFIX = '.adopting-';

export interface ExportInfo {
  size: number;
  sha256: string;
  chunks: number;
  chunkBytes: number;
  senderKey: string;
}

/**
 * An import under way: chunks received so far; `finishing` once importFinish runs, `aborted` if main gave up meanwhile.
 */
interface Incoming {
  next: number;
  hash: ReturnType<typeof createHash>;
  secretKey: Uint8Array;
  finishing?: boolean;
  aborted?: boolean;
}

export class TenantTransfer {
  private readonly incoming = new Map<string, Incoming>();

  constructor(
    private readonly sup: TenantSupervisor,
    private readonly spoolDir: string,
  ) {}

  private spool(name: string, side: 'out' | 'in' | 'plain'): string {
    return join(this.spoolDir, `${name}.${side}.tar.gz${side === 'plain' ? '' : '.sealed'}`);
  }

  /** Suspends the tenant and seals its snapshot for `recipientKey` (the target's one-time key). */
  async exportBegin(name: string, args: { recipientKey?: unknown }): Promise<ExportInfo> {
    const recipient = boxKey(args.recipientKey, 'recipientKey');
    await this.sup.suspend(name);
    await mkdir(this.spoolDir, { recursive: true, mode: 0o700 });
    const plain = this.spool(name, 'plain'),
      out = this.spool(name, 'out');
    await rm(out, { force: true });
    try {
      await packTenant(this.sup.tenantDir(name), name, plain);
      const bytes = await readFile(plain);
      const chunks = Math.max(1, Math.ceil(bytes.length / TRANSFER_CHUNK_BYTES));
      const sender = nacl.box.keyPair();
      const key = sealingKey(recipient, sender.secretKey, name);
      const hash = createHash('sha256');
      let size = 0;
      for (let i = 0; i < chunks; i++) {
        const sealed = sealChunk(
          key,
          name,
          i,
          chunks,
          bytes.subarray(i * TRANSFER_CHUNK_BYTES, (i + 1) * TRANSFER_CHUNK_BYTES),
        );
        await appendFile(out, sealed, { mode: 0o600 });
        hash.update(sealed);
        size += sealed.length;
      }
      return {
        size,
        sha256: hash.digest('hex'),
        chunks,
        chunkBytes: SEALED_CHUNK_BYTES,
        senderKey: Buffer.from(sender.publicKey).toString('base64'),
      };
    } finally {
      await rm(plain, { force: true });
    }
  }

  async exportChunk(name: string, index: number): Promise<{ data: string; sha256: string }> {
    const fh = await open(this.spool(name, 'out'), 'r');
    try {
      const buf = Buffer.alloc(SEALED_CHUNK_BYTES);
      const { bytesRead } = await fh.read(buf, 0, SEALED_CHUNK_BYTES, index * SEALED_CHUNK_BYTES);
      const chunk = buf.subarray(0, bytesRead);
      return { data: chunk.toString('base64'), sha256: createHash('sha256').update(chunk).digest('hex') };
    } finally {
      await fh.close();
    }
  }

  /** The move failed: start the tenant again where it was. */
  async exportAbort(name: string): Promise<TenantStatus> {
    await rm(this.spool(name, 'out'), { force: true });
    return this.sup.resume(name);
  }

  async exportDone(name: string): Promise<void> {
    await rm(this.spool(name, 'out'), { force: true });
  }

  /** Makes room for an incoming tenant; answers the one-time key the source must seal its snapshot for. */
  async importBegin(name: string): Promise<{ recipientKey: string }> {
    if (
      this.sup.has(name) ||
      (await access(this.sup.tenantDir(name)).then(
        () => true,
        () => false,
      ))
    ) {
      throw new ConflictError('ERR_TENANT_EXISTS', `tenant "${name}" already exists on this host`);
    }
    await mkdir(this.spoolDir, { recursive: true, mode: 0o700 });
    await rm(this.spool(name, 'in'), { force: true });
    const kp = nacl.box.keyPair();
    this.incoming.set(name, { next: 0, hash: createHash('sha256'), secretKey: kp.secretKey });
    return { recipientKey: Buffer.from(kp.publicKey).toString('base64') };
  }

  async importChunk(name: string, index: number, data: string, sha256: string): Promise<void> {
    const st = this.incoming.get(name);
    if (!st || st.finishing) throw new ProtocolError('ERR_TRANSFER_STATE', `no transfer of "${name}" in progress`);
    if (index !== st.next) throw new ProtocolError('ERR_TRANSFER_ORDER', `expected chunk ${st.next}, got ${index}`);
    const chunk = Buffer.from(data, 'base64');
    if (createHash('sha256').update(chunk).digest('hex') !== sha256)
      throw new BadParameterError('ERR_TRANSFER_CHECKSUM', `chunk ${index} of "${name}" failed its checksum`);
    await appendFile(this.spool(name, 'in'), chunk, { mode: 0o600 });
    st.hash.update(chunk);
    st.next++;
  }

  /**
   * Checks the whole sealed snapshot (size, sha256 as the source reported them), opens it, unpacks it
   * (snapshot-archive.ts) and adopts the tenant. A refusal or failure at any step leaves nothing: no
   * directory, no user, no process.
   */
  async importFinish(
    name: string,
    args: { size?: unknown; sha256?: unknown; chunks?: unknown; senderKey?: unknown },
    mainPublicKey: string,
  ): Promise<TenantStatus> {
    const st = this.incoming.get(name);
    if (!st || st.finishing) throw new ProtocolError('ERR_TRANSFER_STATE', `no transfer of "${name}" in progress`);
    st.finishing = true;
    try {
      await this.place(name, st, args);
      try {
        const status = await this.sup.adopt(name, mainPublicKey);
        if (st.aborted) throw abortedError(name);
        return status;
      } catch (e) {
        await this.sup.remove(name);
        throw e;
      } finally {
        await rm(this.marker(name), { force: true });
      }
    } finally {
      this.incoming.delete(name);
    }
  }

  /** Opens the snapshot, unpacks it into staging and renames it into place, marked as not yet adopted. */
  private async place(
    name: string,
    st: Incoming,
    args: { size?: unknown; sha256?: unknown; chunks?: unknown; senderKey?: unknown },
  ): Promise<void> {
    const file = this.spool(name, 'in'),
      plain = this.spool(name, 'plain');
    const staging = join(this.sup.root, `${STAGING_PREFIX}${name}`);
    try {
      const size = (await stat(file)).size;
      const chunks = Number(args.chunks);
      if (size !== Number(args.size) || st.hash.digest('hex') !== args.sha256 || chunks !== st.next) {
        throw new BadParameterError(
          'ERR_TRANSFER_CHECKSUM',
          `snapshot of "${name}" arrived damaged (size, sha256 or chunk count differ)`,
        );
      }
      const key = sealingKey(boxKey(args.senderKey, 'senderKey'), st.secretKey, name);
      const sealed = await readFile(file);
      await rm(plain, { force: true });
      for (let i = 0; i < chunks; i++)
        await appendFile(
          plain,
          openChunk(key, name, i, chunks, sealed.subarray(i * SEALED_CHUNK_BYTES, (i + 1) * SEALED_CHUNK_BYTES)),
          { mode: 0o600 },
        );
      await rm(staging, { recursive: true, force: true });
      await mkdir(staging, { recursive: true, mode: 0o700 });
      const unpacked = await unpackSnapshot(plain, staging, name);
      if (st.aborted) throw abortedError(name);
      if (
        await access(this.sup.tenantDir(name)).then(
          () => true,
          () => false,
        )
      ) {
        throw new ConflictError('ERR_TENANT_EXISTS', `tenant "${name}" already exists on this host`); // not ours: left as it is
      }
      await writeFile(this.marker(name), '', { mode: 0o600 });
      await rename(unpacked, this.sup.tenantDir(name)).catch(async (e: unknown) => {
        await rm(this.marker(name), { force: true });
        throw e;
      });
    } finally {
      await rm(file, { force: true });
      await rm(plain, { force: true });
      await rm(staging, { recursive: true, force: true });
    }
  }

  private marker(name: string): string {
    return join(this.sup.root, `${ADOPTING_PREFIX}${name}`);
  }

  /**
   * Main gave up on this import. Before importFinish: the chunks go. During it: importFinish undoes what it
   * did when it gets there (main resumes the tenant at the source, so it must not run here too).
   */
  async importAbort(name: string): Promise<void> {
    const st = this.incoming.get(name);
    if (st?.finishing) {
      st.aborted = true;
      return;
    }
    this.incoming.delete(name);
    await rm(this.spool(name, 'in'), { force: true });
    await rm(this.spool(name, 'plain'), { force: true });
  }

  /**
   * At host start, before any tenant starts: what moves cut short by a crash left behind (spooled chunks,
   * staging directories, tenants renamed into place but never adopted) goes. Returns the tenants removed.
   */
  async cleanLeftovers(): Promise<string[]> {
    await rm(this.spoolDir, { recursive: true, force: true });
    const dropped: string[] = [];
    for (const entry of await readdir(this.sup.root).catch(() => [] as string[])) {
      if (entry.startsWith(STAGING_PREFIX)) await rm(join(this.sup.root, entry), { recursive: true, force: true });
      if (!entry.startsWith(ADOPTING_PREFIX)) continue;
      const name = entry.slice(ADOPTING_PREFIX.length);
      if (isName(name)) {
        await this.sup.remove(name);
        dropped.push(name);
      }
      await rm(join(this.sup.root, entry), { force: true });
    }
    return dropped;
  }
}

function abortedError(name: string): ConflictError {
  return new ConflictError(
    'ERR_TRANSFER_ABORTED',
    `the move of "${name}" was aborted by main while this host unpacked it`,
  );
}
