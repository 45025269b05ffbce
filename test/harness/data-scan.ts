/**
 * Searches a data directory byte by byte (LevelDB .log/.ldb files included) for a marker string, to
 * show where a record was written — and where it never was.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

export async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...await filesUnder(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
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
  for (const f of await filesUnder(dir)) {
    const bytes = await readFile(f).catch(() => Buffer.alloc(0)); // a LevelDB file may vanish in a compaction
    if (ns.some((n) => bytes.includes(n))) hits.push(f);
  }
  return hits;
}
