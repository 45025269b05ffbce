/**
 * Main's backup socket and the backup and restore around it, in one process with a real registry and socket
 * (main/backup/): the socket is 0600; a snapshot is the registry as it was when main began sending it, whatever is
 * written or deleted while it streams; a restore gives back every registry entry and state file byte for byte; and a
 * main that stops mid-snapshot leaves no backup file behind (ERR_BACKUP_INCOMPLETE).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '#common/logging.js';
import { initMain } from '../../main/init.js';
import { mainPaths } from '../../main/data-dir.js';
import { Registry } from '../../main/registry.js';
import { AuditLog } from '../../main/access/audit.js';
import { BackupSocket, requestSnapshot } from '../../main/backup/backup-socket.js';
import { EntryDecoder } from '../../main/backup/archive-entries.js';
import { EntryTally } from '../../main/backup/entry-tally.js';
import { backupMain } from '../../main/backup/backup.js';
import { restoreMain } from '../../main/backup/restore.js';
import { stateFiles } from '../../main/backup/snapshot.js';

const CHEAP = { log2N: 10, r: 1, p: 1 };
const SEEDED = 20_000;
let dir = '';
let data = '';
let pass = '';
let registry: Registry;
let socket: BackupSocket;

/** Every registry entry as its bytes (latin1: one character per byte), in key order. */
async function rawEntries(r: Registry): Promise<string[]> {
  const out: string[] = [];
  for await (const [k, v] of r.db.iterator({ keyEncoding: 'buffer', valueEncoding: 'buffer' }) as AsyncIterable<
    [Buffer, Buffer]
  >)
    out.push(`${k.toString('latin1')}=${v.toString('latin1')}`);
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'palisade-backup-'));
  data = join(dir, 'main');
  await initMain({ data, hostname: '127.0.0.1', port: 0 });
  pass = join(dir, 'pass');
  await writeFile(pass, 'a passphrase of some length\n');
  registry = new Registry(mainPaths(data).registry);
  await registry.open();
  const detail = { note: 'x'.repeat(150) };
  for (let b = 0; b < SEEDED / 1000; b++)
    await registry.audit.batch(
      Array.from({ length: 1000 }, (_, i) => ({
        type: 'put' as const,
        key: `seed!${String(b * 1000 + i).padStart(6, '0')}`,
        value: { at: '', actor: 'seed', action: 'seed', outcome: 'ok' as const, detail },
      })),
    );
  socket = new BackupSocket(data, registry, new AuditLog(registry, silentLogger()), silentLogger());
  await socket.start();
}, 60_000);
afterAll(async () => {
  await socket?.close();
  await registry?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("main's backup socket", () => {
  it('is a socket only its owner can open', async () => {
    const s = await stat(mainPaths(data).backupSocket);
    expect(s.isSocket()).toBe(true);
    expect(s.mode & 0o777).toBe(0o600);
  });

  it('sends the registry as it was when the snapshot began, whatever is written meanwhile', async () => {
    const before = (await registry.audit.keys().all()).length;
    const stream = (await requestSnapshot(data, { op: 'snapshot', actor: 'os:test' }))!;
    const decoder = new EntryDecoder();
    const tally = new EntryTally();
    let changed = false;
    for await (const bytes of stream.bytes) {
      for (const e of decoder.push(bytes)) tally.add(e);
      if (!changed) {
        changed = true;
        await registry.audit.batch(
          Array.from({ length: 1000 }, (_, i) => ({ type: 'del' as const, key: `seed!${String(i).padStart(6, '0')}` })),
        );
        await registry.users.put('usr_later', { id: 'usr_later', name: 'later', roles: [], createdAt: '' });
      }
    }
    expect(decoder.finish().source).toBe('running');
    expect(tally.result().records).toMatchObject({ audit: before, users: 1 });
    // No main ever ran here, so there are no ticket keys yet.
    expect(tally.result().files).toEqual(
      stateFiles(data)
        .filter((f) => f.required)
        .map((f) => f.name),
    );
  });

  it('round-trips: a restore holds every registry entry and state file byte for byte', async () => {
    const out = join(dir, 'full.backup');
    // Nothing but the backup writes meanwhile; its own audit entry comes after its snapshot.
    const orig = await rawEntries(registry);
    const r = await backupMain({ data, out, passphraseFile: pass, kdf: CHEAP });
    expect(r.from).toBe('running');
    const restored = join(dir, 'restored');
    await restoreMain({ in: out, data: restored, passphraseFile: pass });
    const copy = new Registry(mainPaths(restored).registry);
    await copy.open();
    try {
      const back = await rawEntries(copy);
      const restoreEntry = (e: string) => e.includes('"action":"main.restore"');
      expect(back.filter((e) => !restoreEntry(e))).toEqual(orig);
      expect(back.filter(restoreEntry)).toHaveLength(1);
      expect(orig.length).toBeGreaterThan(SEEDED - 1000);
    } finally {
      await copy.close();
    }
    for (const f of stateFiles(data).filter((x) => x.required))
      expect(await readFile(join(restored, f.name)), f.name).toEqual(await readFile(f.path));
  });

  it('writes no backup when main stops while sending the snapshot', async () => {
    const out = join(dir, 'cut.backup');
    const progress = (line: string) => {
      if (line.includes('running main')) void socket.close();
    };
    await expect(backupMain({ data, out, passphraseFile: pass, kdf: CHEAP, progress })).rejects.toMatchObject({
      code: 'ERR_BACKUP_INCOMPLETE',
    });
    expect((await readdir(dir)).filter((n) => n.includes('cut.backup'))).toEqual([]);
  });
});
