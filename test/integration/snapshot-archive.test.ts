/**
 * A tenant snapshot from a hostile source host (agent/host/snapshot-archive.ts): archives built entry by
 * entry with the `tar` package's own header writer, so they hold what a compromised host could send and our
 * exporter never writes. Each is refused with its code before anything is written, in the staging
 * directory or outside it; a good one unpacks.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { access, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Header, type HeaderData } from 'tar';
import { unpackSnapshot } from '../../agent/host/snapshot-archive.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

interface Entry {
  path: string;
  type?: HeaderData['type'];
  body?: string;
  linkpath?: string;
}

/** A .tar.gz of exactly these entries, as a hostile host would write it. */
function archive(entries: Entry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? 'File';
    const body = Buffer.from(type === 'File' ? (e.body ?? '') : '');
    const h = new Header({
      path: e.path,
      type,
      size: body.length,
      mode: type === 'Directory' ? 0o755 : 0o644,
      uid: 0,
      gid: 0,
      mtime: new Date(0),
      linkpath: e.linkpath,
    });
    h.encode();
    blocks.push(h.block!, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  return gzipSync(Buffer.concat([...blocks, Buffer.alloc(1024)]));
}

/**
 * A work directory: the archive file, an empty staging directory, and `outside` (beside staging) where an escape would
 * land.
 */
async function setup(entries: Entry[] | Buffer) {
  const work = await mkdtemp(join(tmpdir(), 'palisade-snapshot-'));
  dirs.push(work);
  const file = join(work, 'snapshot.tar.gz');
  await writeFile(file, Buffer.isBuffer(entries) ? entries : archive(entries));
  const staging = join(work, 'staging');
  await mkdir(staging);
  return { work, file, staging, outside: join(work, 'outside') };
}

const good: Entry[] = [
  { path: 'acme/', type: 'Directory' },
  { path: 'acme/tenant.json', body: '{"name":"acme"}' },
  { path: 'acme/store/', type: 'Directory' },
  { path: 'acme/store/CURRENT', body: 'MANIFEST-000001\n' },
];

describe('unpacking a tenant snapshot', () => {
  it('unpacks regular files and directories inside the tenant directory', async () => {
    const s = await setup(good);
    const dir = await unpackSnapshot(s.file, s.staging, 'acme');
    expect(dir).toBe(join(s.staging, 'acme'));
    expect(await readFile(join(dir, 'store', 'CURRENT'), 'utf8')).toBe('MANIFEST-000001\n');
  });

  const escape = (w: { outside: string }) => w.outside;
  const hostile: { what: string; code: string; entries: (w: { outside: string }) => Entry[] }[] = [
    {
      what: 'a symbolic link',
      code: 'ERR_TRANSFER_ENTRY_TYPE',
      entries: (w) => [{ path: 'acme/leak', type: 'SymbolicLink', linkpath: escape(w) }],
    },
    {
      what: 'a hard link',
      code: 'ERR_TRANSFER_ENTRY_TYPE',
      entries: (w) => [{ path: 'acme/leak', type: 'Link', linkpath: escape(w) }],
    },
    {
      what: 'a character device',
      code: 'ERR_TRANSFER_ENTRY_TYPE',
      entries: () => [{ path: 'acme/mem', type: 'CharacterDevice' }],
    },
    {
      what: 'a block device',
      code: 'ERR_TRANSFER_ENTRY_TYPE',
      entries: () => [{ path: 'acme/sda', type: 'BlockDevice' }],
    },
    { what: 'a FIFO', code: 'ERR_TRANSFER_ENTRY_TYPE', entries: () => [{ path: 'acme/fifo', type: 'FIFO' }] },
    { what: 'a ../ path', code: 'ERR_TRANSFER_ENTRY_PATH', entries: () => [{ path: '../outside', body: 'x' }] },
    {
      what: 'a ../ path starting in the tenant',
      code: 'ERR_TRANSFER_ENTRY_PATH',
      entries: () => [{ path: 'acme/../../outside', body: 'x' }],
    },
    { what: 'an absolute path', code: 'ERR_TRANSFER_ENTRY_PATH', entries: (w) => [{ path: escape(w), body: 'x' }] },
    {
      what: "another tenant's directory",
      code: 'ERR_TRANSFER_ENTRY_PATH',
      entries: () => [{ path: 'globex/tenant.json', body: 'x' }],
    },
    {
      what: 'a path through a symlinked directory',
      code: 'ERR_TRANSFER_ENTRY_TYPE',
      entries: (w) => [
        { path: 'acme/d', type: 'SymbolicLink', linkpath: w.outside },
        { path: 'acme/d/evil', body: 'x' },
      ],
    },
  ];
  for (const h of hostile) {
    it(`refuses ${h.what} (${h.code}) and writes nothing anywhere`, async () => {
      const s = await setup([]);
      await writeFile(s.file, archive([...good, ...h.entries(s)]));
      await expect(unpackSnapshot(s.file, s.staging, 'acme')).rejects.toMatchObject({
        code: h.code,
        message: expect.stringMatching(/^snapshot of "acme": entry /),
      });
      expect(await readdir(s.staging)).toEqual([]);
      expect((await readdir(s.work)).sort()).toEqual(['snapshot.tar.gz', 'staging']);
      await expect(access(s.outside)).rejects.toThrow();
    });
  }

  it('refuses what is not an archive, and one without the tenant configuration', async () => {
    const junk = await setup(Buffer.from('not a tar archive at all'));
    await expect(unpackSnapshot(junk.file, junk.staging, 'acme')).rejects.toMatchObject({
      code: 'ERR_TRANSFER_ARCHIVE',
    });
    expect(await readdir(junk.staging)).toEqual([]);
    const empty = await setup([{ path: 'acme/', type: 'Directory' }]);
    await expect(unpackSnapshot(empty.file, empty.staging, 'acme')).rejects.toMatchObject({
      code: 'ERR_TRANSFER_ARCHIVE',
    });
  });
});
