/**
 * A snapshot of everything main keeps, as archive entries (archive-entries.ts): the files of its data directory
 * that are state (config, CA, server certificate, signing key, TLS ticket keys, secrets key) and every entry of its
 * registry — agents, enrolment keys, users, API keys, commands and outbox, audit log, tenants, content library
 * (custom roles are content items). Logs are not state and are left out.
 *
 * Consistent because the registry is read through one LevelDB iterator, which reads a snapshot taken when it is
 * made: writes main makes meanwhile are not seen, half of a batch never is. The files are each replaced whole
 * (atomic-file.ts), and a server key that does not match its certificate is renewed at start (server-certificate.ts).
 * Runs inside a running main (backup-socket.ts) or in the CLI on a stopped main's directory. Not the encryption.
 */
import { readFile } from 'node:fs/promises';
import { relative, sep } from 'node:path';
import type { Registry } from '../registry.js';
import { mainPaths } from '../data-dir.js';
import { encodeEnd, encodeEntry, ENTRY_FILE, ENTRY_RECORD, type EndSummary } from './archive-entries.js';

/** The data directory's state files, with the mode each is written with on restore. */
export function stateFiles(dir: string): { path: string; name: string; mode: number; required: boolean }[] {
  const p = mainPaths(dir);
  const file = (path: string, mode: number, required = true) => ({
    path,
    name: relative(dir, path).split(sep).join('/'),
    mode,
    required,
  });
  return [
    file(p.config, 0o644),
    file(p.caCert, 0o644),
    file(p.caKey, 0o600),
    file(p.serverCert, 0o644),
    file(p.serverKey, 0o600),
    file(p.signingKey, 0o600),
    // Made at main's first start: a directory that never ran main has none.
    file(p.ticketKeys, 0o600, false),
    // Seals TOTP secrets in the registry (access/secret-box.ts); made at first start like the ticket keys.
    file(p.secretsKey, 0o600, false),
  ];
}

/** Entries batched up to about this size, so the socket and the cipher see few large writes. */
const BATCH_BYTES = 64 * 1024;

/** The snapshot as encoded entries, END last. */
export async function* snapshotEntries(
  dir: string,
  registry: Registry,
  source: EndSummary['source'],
): AsyncGenerator<Buffer> {
  // Made first: the registry is read as it is now, whatever is written while the files are read.
  const it = registry.db.iterator({ keyEncoding: 'buffer', valueEncoding: 'buffer' });
  let files = 0,
    records = 0;
  try {
    for (const f of stateFiles(dir)) {
      const bytes = await readFile(f.path).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT' && !f.required) return undefined;
        throw e;
      });
      if (bytes === undefined) continue;
      files++;
      yield encodeEntry(ENTRY_FILE, Buffer.from(f.name), bytes);
    }
    let batch: Buffer[] = [];
    let size = 0;
    for await (const [k, v] of it as AsyncIterable<[Buffer, Buffer]>) {
      const e = encodeEntry(ENTRY_RECORD, k, v);
      batch.push(e);
      size += e.length;
      records++;
      if (size >= BATCH_BYTES) {
        yield Buffer.concat(batch);
        batch = [];
        size = 0;
      }
    }
    if (batch.length) yield Buffer.concat(batch);
  } finally {
    await it.close();
  }
  yield encodeEnd({ createdAt: new Date().toISOString(), source, files, records });
}
