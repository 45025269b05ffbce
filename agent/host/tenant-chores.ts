/**
 * The host's chores inside one tenant's directory, as a short program the host runs as the tenant's own user
 * (agent/host/as-tenant.ts): an installed host holds neither CAP_DAC_OVERRIDE, CAP_FOWNER nor CAP_KILL, so
 * it cannot open a tenant's 0700 directory or signal its processes itself, and under ProtectProc=invisible
 * it cannot even see them. Run with the tenant's directory as its working directory, it does one of:
 *
 *   read-config         prints tenant.json (never through a link, nor anything but a plain file)
 *   write-config        replaces tenant.json with its standard input, crash-safe
 *   pack NAME           writes a gzipped tar of the directory (entries under NAME/, logs left out) to stdout
 *   kill PID            SIGKILLs one process (the tenant's, which its host started)
 *   end-processes       kills every process of this user, until /proc shows none; prints their pids (JSON)
 *   clear               deletes everything in the directory, and this user's files in the shared temporary
 *                       directories (the host then removes the empty directory itself)
 *
 * It is not a shell: no other operation, no path from its arguments. Whatever it does, the tenant itself
 * could do; it exists because the host may not.
 */
import { constants } from 'node:fs';
import { lstat, open, readdir, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import * as tar from 'tar';
import { writeFileAtomic } from '#common/atomic-file.js';
import { notLogs } from './snapshot-archive.js';

/** How long ending this user's processes may take: SIGKILL, then their parents reap them. */
const END_PROCESSES_MS = 10_000;
const END_PROCESSES_POLL_MS = 50;
/** Where a tenant can write outside its directory (its unit's PrivateTmp and private /dev): its files there go. */
const SHARED_TMP = ['/tmp', '/var/tmp', '/dev/shm'];

async function readConfig(): Promise<void> {
  const fh = await open('tenant.json', constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile()) throw new Error('tenant.json is not a regular file');
    process.stdout.write(await fh.readFile('utf8'));
  } finally {
    await fh.close();
  }
}

async function writeConfig(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  JSON.parse(text); // never a half-sent file in place of the tenant's config
  await writeFileAtomic('tenant.json', text, 0o600);
}

/**
 * Through /proc/self/cwd, and its entries rather than `.`: tar makes every path absolute, and the way from / to
 * the tenant's directory is closed to its user (the tenants directory is the host's, 0700), while the link
 * leads straight in. tar.x makes NAME/ from its entries.
 */
async function pack(name: string): Promise<void> {
  const entries = await readdir('.');
  await new Promise<void>((resolve, reject) => {
    const out = tar.c({ gzip: true, portable: true, cwd: '/proc/self/cwd', prefix: name, filter: notLogs }, entries);
    out.on('error', reject).pipe(process.stdout).on('error', reject);
    out.on('end', resolve);
  });
}

/**
 * This user's other processes, zombies included (userdel counts them too): a process sees its own user's in
 * /proc, under hidepid too.
 */
async function myProcesses(): Promise<{ pid: number; zombie: boolean }[]> {
  const uid = process.getuid!();
  const found: { pid: number; zombie: boolean }[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const status = await readFile(`/proc/${entry}/status`, 'utf8').catch(() => ''); // gone meanwhile
    const uids = /^Uid:\s+(.*)$/m.exec(status)?.[1].trim().split(/\s+/).map(Number) ?? [];
    if (uids.includes(uid)) found.push({ pid: Number(entry), zombie: /^State:\s+Z/m.test(status) });
  }
  return found;
}

/** Kills them all and waits until none is left, zombies reaped, or END_PROCESSES_MS passed; prints their pids. */
async function endProcesses(): Promise<void> {
  const found = await myProcesses();
  const deadline = Date.now() + END_PROCESSES_MS;
  for (let left = found; left.length && Date.now() < deadline; left = await myProcesses()) {
    // kill(-1) from an unprivileged process reaches exactly this user's processes (not itself), in one step a
    // fork cannot outrun; "none left" is no error.
    if (left.some((p) => !p.zombie)) {
      try {
        process.kill(-1, 'SIGKILL');
      } catch {
        /* nothing left to signal */
      }
    }
    await sleep(END_PROCESSES_POLL_MS);
  }
  process.stdout.write(JSON.stringify(found.filter((p) => !p.zombie).map((p) => p.pid)));
}

function killOne(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    /* exited meanwhile */
  }
}

async function clear(): Promise<void> {
  for (const e of await readdir('.')) await rm(e, { recursive: true, force: true });
  const uid = process.getuid!();
  for (const dir of SHARED_TMP) {
    for (const e of await readdir(dir).catch(() => [] as string[])) {
      const st = await lstat(join(dir, e)).catch(() => undefined);
      if (st?.uid === uid) await rm(join(dir, e), { recursive: true, force: true });
    }
  }
}

async function main(op: string | undefined, arg: string | undefined): Promise<void> {
  if (op === 'read-config') return readConfig();
  if (op === 'write-config') return writeConfig();
  if (op === 'pack' && arg) return pack(arg);
  if (op === 'kill' && arg && /^\d+$/.test(arg)) return killOne(Number(arg));
  if (op === 'end-processes') return endProcesses();
  if (op === 'clear') return clear();
  throw new Error(`unknown chore ${op ?? ''}`);
}

main(process.argv[2], process.argv[3]).catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
