/**
 * `palisade main backup`: one encrypted file with everything main keeps (snapshot.ts), taken while main runs (from
 * its backup socket, backup-socket.ts) or, when no main runs on the directory, from the directory itself — the CLI
 * then takes the registry's lock, so no main can start and write meanwhile. Either way the backup is recorded in
 * main's audit log (who, which file; never the passphrase). The file appears whole or not at all (archive-file.ts).
 * Not the restore (restore.ts).
 */
import { access, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import { BadParameterError, errorMessage, isPalisadeError, UnavailableError } from '#common/errors.js';
import { silentLogger } from '#common/logging.js';
import { mainPaths } from '../data-dir.js';
import { loadMainConfig } from '../config.js';
import { Registry } from '../registry.js';
import { AuditLog } from '../access/audit.js';
import { ArchiveWriter, outExists } from './archive-file.js';
import type { KdfParams } from './archive-format.js';
import { EntryDecoder, type EndSummary } from './archive-entries.js';
import { requestSnapshot } from './backup-socket.js';
import { snapshotEntries } from './snapshot.js';
import { readPassphrase, MIN_PASSPHRASE_CHARS } from './passphrase-file.js';
import { EntryTally, type Tally } from './entry-tally.js';

export interface BackupOptions {
  data: string;
  out: string;
  passphraseFile: string;
  /** A line of progress for stderr. */
  progress?: (line: string) => void;
  /** Tests only: a cheaper key derivation. */
  kdf?: KdfParams;
}

export interface BackupResult extends Tally {
  out: string;
  /** Whether a running main made the snapshot or the CLI read a stopped main's directory. */
  from: EndSummary['source'];
  createdAt: string;
  /** Size of the backup file. */
  bytes: number;
}

export async function backupMain(o: BackupOptions): Promise<BackupResult> {
  const dir = resolve(o.data);
  await loadMainConfig(mainPaths(dir).config);
  const passphrase = await readPassphrase(o.passphraseFile, MIN_PASSPHRASE_CHARS);
  const out = resolve(o.out);
  if (await exists(out)) throw outExists(out);
  const progress = o.progress ?? (() => undefined);
  const actor = `os:${userInfo().username}`;
  // Before main is asked: a bad --out fails here, and the key derivation does not hold up main's stream.
  const writer = await ArchiveWriter.create(out, passphrase, { kdf: o.kdf });
  try {
    const running = await requestSnapshot(dir, { op: 'snapshot', actor, target: out });
    if (!running) return await backupStopped(dir, writer, actor, progress);
    progress('backup: taking a snapshot from the running main');
    try {
      return await seal(running.bytes, writer, progress);
    } finally {
      running.close();
    }
  } catch (e) {
    await writer.abort();
    throw e;
  }
}

async function backupStopped(
  dir: string,
  writer: ArchiveWriter,
  actor: string,
  progress: (line: string) => void,
): Promise<BackupResult> {
  progress('backup: no main runs on this directory; reading it directly');
  await checkOwner(dir);
  const registry = new Registry(mainPaths(dir).registry);
  try {
    await registry.open();
  } catch (e) {
    // The lock is held but the socket did not answer: a main too old to have one, or one starting or stopping.
    throw new UnavailableError(
      'ERR_BACKUP_MAIN_UNREACHABLE',
      `a main holds ${dir} but does not answer on its backup socket; try again, or stop it first`,
      { cause: e },
    );
  }
  const audit = new AuditLog(registry, silentLogger());
  const entry = { actor, action: 'main.backup', target: writer.path, detail: { from: 'stopped main' } };
  try {
    const r = await seal(snapshotEntries(dir, registry, 'stopped'), writer, progress);
    await audit.record({ ...entry, outcome: 'ok' });
    return r;
  } catch (e) {
    await audit.record({ ...entry, outcome: 'failed' }).catch(() => undefined);
    throw e;
  } finally {
    await registry.close();
  }
}

/**
 * Opening a LevelDB store writes new files into it (log, manifest); opened by another account (root, typically) it
 * would leave files main's own account cannot open. A running main has no such problem: the CLI writes nothing there.
 */
async function checkOwner(dir: string): Promise<void> {
  const owner = (await stat(mainPaths(dir).registry)).uid;
  if (process.getuid && process.getuid() !== owner)
    throw new BadParameterError(
      'ERR_BACKUP_DATA_OWNER',
      `main is stopped, so the backup opens ${dir} itself: run it as the directory's owner (uid ${owner}), ` +
        'as another account it would leave registry files main cannot open',
      { field: 'data' },
    );
}

/** Seals the entry stream into the backup file; checks it is whole (END, counts) before the file is put in place. */
async function seal(
  entries: AsyncIterable<Buffer>,
  writer: ArchiveWriter,
  progress: (line: string) => void,
): Promise<BackupResult> {
  const decoder = new EntryDecoder();
  const tally = new EntryTally();
  try {
    for await (const bytes of entries) {
      for (const e of decoder.push(bytes)) tally.add(e);
      await writer.write(bytes);
      if (tally.progressDue()) progress(`backup: ${tally.line()}`);
    }
    decoder.finish();
  } catch (e) {
    // A stream that stops before its END entry: main stopped or failed while sending.
    if (!isPalisadeError(e) || e.code !== 'ERR_BACKUP_DAMAGED') throw e;
    throw new UnavailableError('ERR_BACKUP_INCOMPLETE', `the snapshot ended early: ${errorMessage(e)}`, { cause: e });
  }
  const bytes = await writer.commit();
  progress(`backup: ${tally.line()}; ${bytes} bytes written`);
  const end = decoder.end!;
  return { out: writer.path, from: end.source, createdAt: end.createdAt, ...tally.result(), bytes };
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );
