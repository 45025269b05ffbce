/**
 * File logs rotate by size: past the limit FILE becomes FILE.1 (and FILE.1 FILE.2 …), at most `keep` rotated files
 * stay, nothing written in the kept window is lost, and every line is still escaped (common/terminal-text.ts).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRootLogger } from '#common/logging.js';
import { until } from '../harness/processes.js';

let dir = '';
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('log rotation', () => {
  it('rotates past maxBytes, keeps at most `keep` old files, and keeps the newest lines in order', async () => {
    dir = await mkdtemp(join(tmpdir(), 'palisade-logrot-'));
    const file = join(dir, 'main.log');
    const log = createRootLogger({ file, name: 'main', rotation: { maxBytes: 4096, keep: 2 } });
    const total = 200; // ~150 bytes a line: about 30 KiB, seven files' worth, so the oldest must have gone
    for (let i = 0; i < total; i++) log.info({ i, name: `host\u202e${i}` }, 'line');
    await new Promise<void>((res, rej) => log.flush((e) => (e ? rej(e) : res())));
    const read = async () =>
      (await Promise.all(['main.log.2', 'main.log.1', 'main.log'].map((f) => readFile(join(dir, f), 'utf8'))))
        .join('')
        .trim()
        .split('\n');
    // A rotated-out stream ends asynchronously: poll until its last lines are in, oldest first and gap-free.
    const gapFree = (seq: number[]) => seq.at(-1) === total - 1 && seq.every((v, k) => v === seq[0] + k);
    const lines = await until('three gap-free log files', async () => {
      const l = await read();
      return gapFree(l.map((x) => (JSON.parse(x) as { i: number }).i)) && l;
    });
    expect((await readdir(dir)).sort()).toEqual(['main.log', 'main.log.1', 'main.log.2']);
    const seq = lines.map((l) => (JSON.parse(l) as { i: number }).i);
    expect(seq.at(-1)).toBe(total - 1);
    expect(seq[0]).toBeGreaterThan(0);
    for (const f of ['main.log.1', 'main.log.2'])
      expect((await readFile(join(dir, f))).length, f).toBeLessThanOrEqual(4096);
    expect(lines.join('\n')).not.toContain('\u202e');
    expect(lines[0]).toContain('\\u202e');
  });
});
