/**
 * Searches a data directory byte by byte (LevelDB .log/.ldb files included) for a marker string, to
 * show where a record was written — and where it never was; and measures how much a directory holds.
 */
import { cp, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { Level } from 'level';

export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else if (e.isFile()) out.push(p);
  }
  return out;
}

/** Bytes of all files under `dir` (what `du --apparent-size` counts); a file gone mid-scan counts 0. */
export async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  for (const f of await filesUnder(dir))
    total += await stat(f).then(
      (s) => s.size,
      () => 0,
    );
  return total;
}

/** The marker as UTF-8, and as it looks base64-encoded at each alignment (relay frames carry bodies in base64). */
function needles(marker: string): Buffer[] {
  const b64 = [0, 1, 2].map((shift) => {
    const enc = Buffer.concat([Buffer.alloc(shift, 0x20), Buffer.from(marker)]).toString('base64');
    // Only the characters that depend on the marker's bytes alone: drop both ends.
    return Buffer.from(enc.slice(Math.ceil((shift * 4) / 3) + 1, -4));
  });
  return [Buffer.from(marker, 'utf8'), ...b64];
}

/** Files under `dir` whose bytes contain the marker in any of its forms. */
export async function filesContaining(dir: string, marker: string): Promise<string[]> {
  const ns = needles(marker);
  const hits: string[] = [];
  const files = await filesUnder(dir);
  for (const f of files) {
    const bytes = await readFile(f).catch(() => Buffer.alloc(0)); // a LevelDB file may vanish in a compaction
    if (ns.some((n) => bytes.includes(n))) hits.push(f);
  }
  // LevelDB compresses its table files (snappy), and the tenant its event blocks (zstd), which hides a marker on
  // disk: also read every store through LevelDB itself, from a copy (the live one is locked by its process), with
  // compressed values decompressed.
  for (const current of files.filter((f) => basename(f) === 'CURRENT')) {
    const store = dirname(current);
    if (await storeContains(store, ns)) hits.push(`${store} (LevelDB contents)`);
  }
  return [...new Set(hits)];
}

/** The tenant stores event blocks as zstd frames (RFC 8878): a value opening with the frame's magic, decompressed. */
function unpacked(v: Buffer): Buffer {
  if (v.length < 4 || v.readUInt32LE(0) !== 0xfd2fb528) return v;
  try {
    return zstdDecompressSync(v);
  } catch {
    return v; // not a frame after all: its bytes as they are
  }
}

async function storeContains(store: string, ns: Buffer[]): Promise<boolean> {
  const copy = await mkdtemp(join(tmpdir(), 'palisade-scan-'));
  try {
    await cp(store, copy, { recursive: true, filter: (src) => basename(src) !== 'LOCK' });
    const db = new Level<Buffer, Buffer>(copy, {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
      createIfMissing: false,
    });
    try {
      await db.open();
    } catch {
      return false; // caught mid-compaction (a file vanished while copying): the raw scan above still ran
    }
    try {
      for await (const [k, v] of db.iterator()) {
        const value = unpacked(v);
        if (ns.some((n) => k.includes(n) || value.includes(n))) return true;
      }
      return false;
    } finally {
      await db.close();
    }
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
}
