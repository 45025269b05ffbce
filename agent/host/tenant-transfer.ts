/**
 * Moving a tenant between hosts, host side. The source suspends the tenant (so its LevelDB is closed and
 * the copy is consistent), packs its directory into one .tar.gz and serves it in checksummed chunks;
 * the target receives chunks in order, checks each and the whole, unpacks and adopts the tenant. Main
 * drives both ends and only ever holds one chunk in memory. Any failure leaves the source able to resume.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rm, stat, access, appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tar from 'tar';
import { BadParameterError, ConflictError, ProtocolError } from '#common/errors.js';
import type { TenantSupervisor, TenantStatus } from './tenant-supervisor.js';

/** 512 KiB: base64 of a chunk plus framing stays well under the 1 MiB frame limit. */
export const TRANSFER_CHUNK_BYTES = 512 * 1024;

export interface ExportInfo { size: number; sha256: string; chunks: number; chunkBytes: number }

export class TenantTransfer {
  private readonly incoming = new Map<string, { next: number; hash: ReturnType<typeof createHash>; size: number; sha256: string }>();

  constructor(private readonly sup: TenantSupervisor, private readonly spoolDir: string) {}

  private spool(name: string, side: 'out' | 'in'): string { return join(this.spoolDir, `${name}.${side}.tar.gz`); }

  async exportBegin(name: string): Promise<ExportInfo> {
    await this.sup.suspend(name);
    await mkdir(this.spoolDir, { recursive: true, mode: 0o700 });
    const file = this.spool(name, 'out');
    await tar.c({ gzip: true, cwd: join(this.sup.tenantDir(name), '..'), file, portable: true, filter: (p) => !p.includes('/logs/') }, [name]);
    const bytes = await readFile(file);
    return { size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), chunks: Math.ceil(bytes.length / TRANSFER_CHUNK_BYTES), chunkBytes: TRANSFER_CHUNK_BYTES };
  }

  async exportChunk(name: string, index: number): Promise<{ data: string; sha256: string }> {
    const fh = await open(this.spool(name, 'out'), 'r');
    try {
      const buf = Buffer.alloc(TRANSFER_CHUNK_BYTES);
      const { bytesRead } = await fh.read(buf, 0, TRANSFER_CHUNK_BYTES, index * TRANSFER_CHUNK_BYTES);
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

  async importBegin(name: string, size: number, sha256: string): Promise<void> {
    if (this.sup.has(name) || await access(this.sup.tenantDir(name)).then(() => true, () => false)) {
      throw new ConflictError('ERR_TENANT_EXISTS', `tenant "${name}" already exists on this host`);
    }
    await mkdir(this.spoolDir, { recursive: true, mode: 0o700 });
    await rm(this.spool(name, 'in'), { force: true });
    this.incoming.set(name, { next: 0, hash: createHash('sha256'), size, sha256 });
  }

  async importChunk(name: string, index: number, data: string, sha256: string): Promise<void> {
    const st = this.incoming.get(name);
    if (!st) throw new ProtocolError('ERR_TRANSFER_STATE', `no transfer of "${name}" in progress`);
    if (index !== st.next) throw new ProtocolError('ERR_TRANSFER_ORDER', `expected chunk ${st.next}, got ${index}`);
    const chunk = Buffer.from(data, 'base64');
    if (createHash('sha256').update(chunk).digest('hex') !== sha256) throw new BadParameterError('ERR_TRANSFER_CHECKSUM', `chunk ${index} of "${name}" failed its checksum`);
    await appendFile(this.spool(name, 'in'), chunk, { mode: 0o600 });
    st.hash.update(chunk);
    st.next++;
  }

  async importFinish(name: string, mainPublicKey: string): Promise<TenantStatus> {
    const st = this.incoming.get(name);
    if (!st) throw new ProtocolError('ERR_TRANSFER_STATE', `no transfer of "${name}" in progress`);
    this.incoming.delete(name);
    const file = this.spool(name, 'in');
    const size = (await stat(file)).size;
    if (size !== st.size || st.hash.digest('hex') !== st.sha256) throw new BadParameterError('ERR_TRANSFER_CHECKSUM', `snapshot of "${name}" arrived damaged (size or sha256 differ)`);
    const root = join(this.sup.tenantDir(name), '..');
    await mkdir(root, { recursive: true });
    // Only this tenant's own directory may come out of the archive.
    await tar.x({ file, cwd: root, strict: true, filter: (p) => p === name || p.startsWith(`${name}/`) });
    await rm(file, { force: true });
    try {
      return await this.sup.adopt(name, mainPublicKey);
    } catch (e) {
      await rm(this.sup.tenantDir(name), { recursive: true, force: true });
      throw e;
    }
  }

  /** Drops a half-received snapshot. The tenant directory is not touched: importFinish cleans up its own. */
  async importAbort(name: string): Promise<void> {
    this.incoming.delete(name);
    await rm(this.spool(name, 'in'), { force: true });
  }
}
