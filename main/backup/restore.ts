/**
 * `palisade main restore`: a backup (backup.ts) back into a new data directory, which `main start` then serves with
 * the same CA, server certificate, signing key and registry — so agents reconnect with the certificates they have.
 *
 * Nothing is written unless the whole backup authenticates: the passphrase is checked on the header first, then
 * everything is unpacked into a staging directory beside the target, renamed into place only after the END entry
 * came and matched; any failure removes the staging directory. Only the data directory's known state files are
 * written (snapshot.ts `stateFiles`, with their modes), whatever names a backup holds. Not the backup itself.
 */
import { mkdir, readdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { BadParameterError, ConflictError } from '#common/errors.js';
import { silentLogger } from '#common/logging.js';
import { mainPaths } from '../data-dir.js';
import { Registry } from '../registry.js';
import { AuditLog } from '../access/audit.js';
import { openArchive } from './archive-file.js';
import { EntryDecoder, ENTRY_FILE, ENTRY_RECORD, type EndSummary, type Entry } from './archive-entries.js';
import { stateFiles } from './snapshot.js';
import { readPassphrase } from './passphrase-file.js';
import { EntryTally, type Tally } from './entry-tally.js';

export interface RestoreOptions {
  in: string;
  data: string;
  passphraseFile: string;
  progress?: (line: string) => void;
}

export interface RestoreResult extends Tally {
  dataDir: string;
  /** When the backup was taken, and from a running or a stopped main. */
  createdAt: string;
  from: EndSummary['source'];
}

/** Registry entries written per batch: large enough to be quick, small enough to hold in memory. */
const BATCH_ENTRIES = 1000;

export async function restoreMain(o: RestoreOptions): Promise<RestoreResult> {
  const passphrase = await readPassphrase(o.passphraseFile);
  const target = resolve(o.data);
  const existing = await readdir(target).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    if (e.code === 'ENOTDIR') return ['(a file)'];
    throw e;
  });
  if (existing?.length)
    throw new ConflictError('ERR_RESTORE_TARGET_NOT_EMPTY', `${target} is not empty; restore into a new directory`, {
      field: 'data',
    });
  const archive = await openArchive(resolve(o.in), passphrase);
  const progress = o.progress ?? (() => undefined);
  progress('restore: passphrase accepted; unpacking');
  const staging = join(dirname(target), `.${basename(target)}.restoring-${randomBytes(4).toString('hex')}`);
  try {
    await mkdir(dirname(target), { recursive: true });
    await mkdir(staging, { mode: 0o700 });
    const { end, tally } = await unpack(archive.chunks(), staging, progress);
    await recordRestore(staging, resolve(o.in), end);
    if (existing) await rmdir(target);
    await rename(staging, target);
    progress(`restore: ${tally.line()}`);
    return { dataDir: target, createdAt: end.createdAt, from: end.source, ...tally.result() };
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  } finally {
    await archive.close();
  }
}

async function unpack(
  chunks: AsyncIterable<Buffer>,
  staging: string,
  progress: (line: string) => void,
): Promise<{ end: EndSummary; tally: EntryTally }> {
  const files = new Map(stateFiles(staging).map((f) => [f.name, f]));
  const registry = new Registry(mainPaths(staging).registry);
  await registry.open();
  const decoder = new EntryDecoder();
  const tally = new EntryTally();
  const written = new Set<string>();
  let batch: { type: 'put'; key: Buffer; value: Buffer }[] = [];
  const flush = async () => {
    if (batch.length) await registry.db.batch(batch as never, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    batch = [];
  };
  try {
    for await (const chunk of chunks) {
      for (const e of decoder.push(chunk)) {
        tally.add(e);
        if (e.type === ENTRY_RECORD) batch.push({ type: 'put', key: e.key, value: e.value });
        else if (e.type === ENTRY_FILE) written.add(await writeStateFile(e, files));
        if (batch.length >= BATCH_ENTRIES) await flush();
      }
      if (tally.progressDue()) progress(`restore: ${tally.line()}`);
    }
    const end = decoder.finish();
    await flush();
    const missing = [...files.values()].filter((f) => f.required && !written.has(f.name)).map((f) => f.name);
    if (missing.length) throw damaged(`it lacks ${missing.join(', ')}`);
    return { end, tally };
  } finally {
    await registry.close();
  }
}

async function writeStateFile(e: Entry, files: Map<string, ReturnType<typeof stateFiles>[number]>): Promise<string> {
  const name = e.key.toString('utf8');
  const f = files.get(name);
  if (!f) throw damaged(`a file ${JSON.stringify(name.slice(0, 200))} that is no part of a main data directory`);
  await mkdir(dirname(f.path), { recursive: true, mode: 0o700 });
  // 'wx': a name twice in one backup is damage, not something to overwrite.
  await writeFile(f.path, e.value, { mode: f.mode, flag: 'wx' }).catch((err: NodeJS.ErrnoException) => {
    throw err.code === 'EEXIST' ? damaged(`${name} twice`) : err;
  });
  return name;
}

/** The restore goes into the restored main's own audit log, before it is put in place. */
async function recordRestore(staging: string, from: string, end: EndSummary): Promise<void> {
  const registry = new Registry(mainPaths(staging).registry);
  await registry.open();
  try {
    await new AuditLog(registry, silentLogger()).record({
      actor: `os:${userInfo().username}`,
      action: 'main.restore',
      target: from,
      outcome: 'ok',
      detail: { backupCreatedAt: end.createdAt, from: `${end.source} main` },
    });
  } finally {
    await registry.close();
  }
}

const damaged = (why: string) => new BadParameterError('ERR_BACKUP_DAMAGED', `the backup is not whole: ${why}`);
