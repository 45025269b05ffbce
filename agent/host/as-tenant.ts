/**
 * Runs the host's chores in a tenant's directory (tenant-chores.ts) as the user that owns that directory — the
 * tenant's — whenever that is not the host's own: reading and rewriting tenant.json, packing the directory
 * for a move, clearing it, ending the user's processes. An installed host holds only CAP_CHOWN, CAP_SETUID
 * and CAP_SETGID (common/host-capabilities.ts), so the tenant's 0700 directory is closed to it and the
 * tenant's processes are beyond its signals and out of its sight (ProtectProc=invisible); a short process as
 * the tenant's user can do all of that. A host as root does the same, though it could do without: one path.
 * Not here: making or choosing the user (tenant-isolation.ts, tenant-user-pool.ts).
 */
import { spawn } from 'node:child_process';
import { lstat } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { UnavailableError } from '#common/errors.js';
import { TENANT_CHORES } from '../program-files.js';
import { capabilityDrop, passwdEntries } from './tenant-isolation.js';

/** A chore is small (a config, a kill), except a pack, which is bounded by the tenant's disk. */
const CHORE_TIMEOUT_MS = 30_000;
const PACK_TIMEOUT_MS = 10 * 60_000;

export type Chore = 'read-config' | 'write-config' | 'pack' | 'kill' | 'end-processes' | 'clear';

/**
 * The owner of `dir` when it is not this process's user (the chore must run as it), with that user's own group
 * (the directory's may be the host's: tenant-isolation.ts ownTenantDir); undefined when it is the host's.
 */
export async function foreignOwner(dir: string): Promise<{ uid: number; gid: number } | undefined> {
  const st = await lstat(dir);
  if (st.uid === process.getuid?.()) return undefined;
  const user = (await passwdEntries()).find((e) => e.uid === st.uid);
  return { uid: st.uid, gid: user?.gid ?? st.gid };
}

/**
 * Runs `chore` in `dir` as `ids`, with `input` on its standard input; resolves with its standard output (or
 * pipes it into `out`, for a pack).
 */
export function runChore(
  dir: string,
  ids: { uid: number; gid: number },
  chore: Chore,
  o: { arg?: string; input?: string; out?: Writable } = {},
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // The user's own environment is none of ours to pass, and the chore needs none; nor any capability.
    const [file, ...pre] = [...(capabilityDrop() ?? []), process.execPath];
    const child = spawn(file, [...pre, TENANT_CHORES, chore, ...(o.arg ? [o.arg] : [])], {
      cwd: dir,
      uid: ids.uid,
      gid: ids.gid,
      env: {},
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: chore === 'pack' ? PACK_TIMEOUT_MS : CHORE_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    const stdout: Buffer[] = [];
    let stderr = '';
    if (o.out) child.stdout.pipe(o.out);
    else child.stdout.on('data', (d: Buffer) => stdout.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    child.stdin.end(o.input ?? '');
    child.on('error', (e) => reject(choreError(chore, dir, e.message)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve(Buffer.concat(stdout));
      else reject(choreError(chore, dir, stderr.trim().split('\n').pop() || `exit ${code ?? signal}`));
    });
  });
}

function choreError(chore: Chore, dir: string, why: string): UnavailableError {
  return new UnavailableError('ERR_TENANT_CHORE', `${chore} in ${dir} as its owner failed: ${why}`);
}
