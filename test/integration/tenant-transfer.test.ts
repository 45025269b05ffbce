/**
 * A tenant's snapshot in a move (agent/host/tenant-transfer.ts) is sealed for the target host: what
 * leaves the source (and crosses main) is not the archive, the target unpacks exactly the source's
 * files, and a chunk altered, swapped or sealed for another target is refused. The target trusts the
 * sealing, not the content: a snapshot holding links is refused, and a refused, failed or aborted import,
 * or one cut short by a crash, leaves nothing. Real files, a real tar; the supervisor around it is
 * reduced to the directory calls the transfer makes.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, readdir, readFile, rm, symlink, writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { TenantTransfer } from '../../agent/host/tenant-transfer.js';
import type { TenantSupervisor } from '../../agent/host/tenant-supervisor.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/**
 * A host directory with (optionally) tenant `acme`, and a transfer over it; `adopt` stands in for starting the tenant.
 */
async function host(withTenant: boolean, adopt: (name: string) => Promise<void> = async () => undefined) {
  const root = await mkdtemp(join(tmpdir(), 'palisade-transfer-'));
  dirs.push(root);
  const tenants = join(root, 'tenants');
  await mkdir(tenants, { recursive: true });
  const files: Record<string, Buffer> = {};
  if (withTenant) {
    files['tenant.json'] = Buffer.from(JSON.stringify({ name: 'acme', port: 18501 }));
    files['tenant-key.json'] = Buffer.from(JSON.stringify({ secretKey: randomBytes(32).toString('base64') }));
    files['store/000005.ldb'] = randomBytes(1_300_000); // incompressible: three chunks
    for (const [f, b] of Object.entries(files)) {
      await mkdir(join(tenants, 'acme', f, '..'), { recursive: true });
      await writeFile(join(tenants, 'acme', f), b);
    }
  }
  const adopted: string[] = [];
  const sup = {
    root: tenants,
    tenantDir: (n: string) => join(tenants, n),
    has: (n: string) => withTenant && n === 'acme',
    suspend: async () => join(tenants, 'acme'),
    resume: async () => ({}),
    adopt: async (n: string) => {
      await adopt(n);
      adopted.push(n);
      return { name: n };
    },
    remove: async (n: string) => {
      await rm(join(tenants, n), { recursive: true, force: true });
      return { name: n, removed: [] };
    },
  } as unknown as TenantSupervisor;
  return { t: new TenantTransfer(sup, join(root, 'spool')), tenants, spool: join(root, 'spool'), files, adopted };
}

async function exportAll(src: Awaited<ReturnType<typeof host>>, recipientKey: string) {
  const info = await src.t.exportBegin('acme', { recipientKey });
  const chunks: Buffer[] = [];
  for (let i = 0; i < info.chunks; i++) {
    const c = await src.t.exportChunk('acme', i);
    expect(createHash('sha256').update(Buffer.from(c.data, 'base64')).digest('hex')).toBe(c.sha256);
    chunks.push(Buffer.from(c.data, 'base64'));
  }
  return { info, chunks };
}

async function importAll(
  dst: Awaited<ReturnType<typeof host>>,
  chunks: Buffer[],
  info: { size: number; chunks: number; senderKey: string },
  sha256?: string,
) {
  for (const [i, c] of chunks.entries())
    await dst.t.importChunk('acme', i, c.toString('base64'), createHash('sha256').update(c).digest('hex'));
  const whole = createHash('sha256');
  for (const c of chunks) whole.update(c);
  return dst.t.importFinish(
    'acme',
    {
      size: chunks.reduce((n, c) => n + c.length, 0),
      sha256: sha256 ?? whole.digest('hex'),
      chunks: info.chunks,
      senderKey: info.senderKey,
    },
    'main-key',
  );
}

describe('tenant snapshot in a move', () => {
  it('leaves the source sealed, and arrives at the target file for file', async () => {
    const src = await host(true),
      dst = await host(false);
    const { recipientKey } = await dst.t.importBegin('acme');
    const { info, chunks } = await exportAll(src, recipientKey);
    expect(chunks.length).toBe(3);
    const stream = Buffer.concat(chunks);
    expect(stream.subarray(0, 2).equals(Buffer.from([0x1f, 0x8b]))).toBe(false); // not a gzip archive
    expect(() => gunzipSync(stream)).toThrow();
    expect(stream.includes(src.files['store/000005.ldb'].subarray(0, 64))).toBe(false);
    await importAll(dst, chunks, info);
    expect(dst.adopted).toEqual(['acme']);
    for (const [f, b] of Object.entries(src.files))
      expect((await readFile(join(dst.tenants, 'acme', f))).equals(b), f).toBe(true);
  });

  it('refuses a chunk altered in transit, even with matching checksums, and unpacks nothing', async () => {
    const src = await host(true),
      dst = await host(false);
    const { recipientKey } = await dst.t.importBegin('acme');
    const { info, chunks } = await exportAll(src, recipientKey);
    chunks[1] = Buffer.from(chunks[1]);
    chunks[1][100] ^= 1;
    await expect(importAll(dst, chunks, info)).rejects.toMatchObject({ code: 'ERR_TRANSFER_CHECKSUM' });
    await expect(readFile(join(dst.tenants, 'acme', 'tenant-key.json'))).rejects.toThrow();
  });

  it('refuses swapped chunks and a snapshot sealed for another target', async () => {
    const src = await host(true),
      dst = await host(false),
      other = await host(false);
    const { recipientKey } = await dst.t.importBegin('acme');
    const { info, chunks } = await exportAll(src, recipientKey);
    await expect(importAll(dst, [chunks[0], chunks[2], chunks[1]], info)).rejects.toMatchObject({
      code: 'ERR_TRANSFER_CHECKSUM',
    });

    const { recipientKey: otherKey } = await other.t.importBegin('acme');
    const src2 = await host(true);
    const sealedForOther = await exportAll(src2, otherKey);
    await dst.t.importBegin('acme');
    await expect(importAll(dst, sealedForOther.chunks, sealedForOther.info)).rejects.toMatchObject({
      code: 'ERR_TRANSFER_CHECKSUM',
    });
    expect(dst.adopted).toEqual([]);
  });

  it('refuses to seal for something that is not a key', async () => {
    const src = await host(true);
    await expect(src.t.exportBegin('acme', { recipientKey: 'not-a-key' })).rejects.toMatchObject({
      code: 'ERR_TRANSFER_KEY',
    });
  });
});

/**
 * What a target host holds after an import that must have left nothing: no tenant, staging, marker or spooled chunk.
 */
async function leftovers(dst: Awaited<ReturnType<typeof host>>): Promise<string[]> {
  return [...(await readdir(dst.tenants)), ...(await readdir(dst.spool).catch(() => [])).map((f) => `spool/${f}`)];
}

/** A whole move of `acme` from `src` to `dst`, as main drives it. */
async function move(src: Awaited<ReturnType<typeof host>>, dst: Awaited<ReturnType<typeof host>>) {
  const { recipientKey } = await dst.t.importBegin('acme');
  const { info, chunks } = await exportAll(src, recipientKey);
  return importAll(dst, chunks, info);
}

describe('what a target host keeps of an import', () => {
  it('refuses a snapshot holding a symbolic link (ERR_TRANSFER_ENTRY_TYPE) and keeps nothing', async () => {
    const src = await host(true),
      dst = await host(false);
    // The tenant owns its directory: a compromised one can leave a link to a file of its next host.
    await symlink('/etc/shadow', join(src.tenants, 'acme', 'store', 'leak'));
    await expect(move(src, dst)).rejects.toMatchObject({
      code: 'ERR_TRANSFER_ENTRY_TYPE',
      message: expect.stringContaining('"acme/store/leak" is a SymbolicLink'),
    });
    expect(dst.adopted).toEqual([]);
    expect(await leftovers(dst)).toEqual([]);
  });

  it('refuses a snapshot holding a hard link (ERR_TRANSFER_ENTRY_TYPE) and keeps nothing', async () => {
    const src = await host(true),
      dst = await host(false);
    await link(join(src.tenants, 'acme', 'tenant-key.json'), join(src.tenants, 'acme', 'key-again'));
    await expect(move(src, dst)).rejects.toMatchObject({ code: 'ERR_TRANSFER_ENTRY_TYPE' });
    expect(dst.adopted).toEqual([]);
    expect(await leftovers(dst)).toEqual([]);
  });

  it('a tenant that does not start after unpacking is deleted again', async () => {
    const src = await host(true),
      dst = await host(false, async () => {
        throw Object.assign(new Error('tenant "acme" did not become ready'), { code: 'ERR_TENANT_START' });
      });
    await expect(move(src, dst)).rejects.toMatchObject({ code: 'ERR_TENANT_START' });
    expect(await leftovers(dst)).toEqual([]);
  });

  it('main aborting while the target unpacks and starts the tenant undoes the import there', async () => {
    let release!: () => void;
    const starting = new Promise<void>((r) => {
      release = r;
    });
    let reached!: () => void;
    const adopting = new Promise<void>((r) => {
      reached = r;
    });
    const src = await host(true),
      dst = await host(false, async () => {
        reached();
        await starting;
      });
    const finish = move(src, dst);
    await adopting;
    await dst.t.importAbort('acme');
    release();
    await expect(finish).rejects.toMatchObject({ code: 'ERR_TRANSFER_ABORTED' });
    expect(await leftovers(dst)).toEqual([]);
  });

  it('after a crash mid-import, the next start deletes staging, spool and a tenant never adopted, and keeps the others', async () => {
    const dst = await host(false);
    const plant = async (path: string, body = '{}') => {
      await mkdir(join(path, '..'), { recursive: true });
      await writeFile(path, body);
    };
    await plant(join(dst.tenants, '.import-acme', 'acme', 'tenant.json')); // crashed while unpacking
    await plant(join(dst.tenants, 'beta', 'tenant.json')); // renamed into place, crashed before it ran
    await plant(join(dst.tenants, '.adopting-beta'), '');
    await plant(join(dst.tenants, 'gamma', 'tenant.json')); // an ordinary tenant
    await plant(join(dst.spool, 'acme.in.tar.gz.sealed'), 'chunks');
    expect(await dst.t.cleanLeftovers()).toEqual(['beta']);
    expect(await leftovers(dst)).toEqual(['gamma']);
  });
});
