/**
 * The tunnel benchmark's baselines (bench/tunnel.ts), measured in the same run against the same target
 * servers: raw TCP straight to them, and `ssh -L -c aes128-gcm@openssh.com` through a throwaway sshd with
 * its own keys, one ssh client forwarding the three ports. Where ssh cannot run (no binaries, no
 * /run/sshd), it says why and the benchmark reports its rows as skipped rather than failing. Set-up and
 * tear-down only: the loops that time these paths are in bench/tunnel-rounds.ts.
 */
import { connect } from 'node:net';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import { copyFile, rm, writeFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort, tempDir } from '../test/harness/processes.js';
import { withDescendants } from './tunnel-cpu.js';
import type { Path } from './tunnel-rounds.js';
import type { Ports } from './tunnel-traffic.js';

/** Raw TCP: the client straight to the target servers, no process in between. */
export const rawTcpPath = (targets: Ports): Path => ({ name: 'raw TCP', ports: targets, pids: () => ({}) });

// ── the ssh -L baseline: a throwaway sshd with its own keys, one ssh client forwarding the three ports ─

export interface SshForward {
  path: Path;
  close(): Promise<void>;
}
interface Logged {
  child: ChildProcess;
  output(): string;
}

/** sshd lives in /usr/sbin, which is not always on PATH. */
function which(name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/bin']) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      /* next */
    }
  }
  return undefined;
}

function spawnLogged(cmd: string, args: string[]): Logged {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (b: Buffer) => {
    if (out.length < 20_000) out += b;
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, output: () => out };
}

async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  const t = setTimeout(() => c.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(t);
}

const accepts = (port: number) =>
  new Promise<boolean>((r) => {
    const s = connect(port, '127.0.0.1', () => {
      s.destroy();
      r(true);
    }).once('error', () => r(false));
  });

/** Polls `ok` until true; fails early, with the process's output, if `p` exits. */
async function waitUntil(p: Logged, what: string, ok: () => boolean | Promise<boolean>): Promise<void> {
  for (const end = Date.now() + 15_000; !(await ok());) {
    if (p.child.exitCode !== null || Date.now() > end)
      throw new Error(`${what} not ready: ${p.output().trim() || `exit ${p.child.exitCode}`}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sshdConfig = (dir: string) =>
  [
    'ListenAddress 127.0.0.1',
    `HostKey ${join(dir, 'host')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    'StrictModes no',
    'UsePAM no',
    'PidFile none',
    'PermitRootLogin prohibit-password',
    '',
  ].join('\n');

/** The ssh -L path, or why it cannot run here: its rows then say skipped instead of failing the benchmark. */
export async function startSshForward(targets: Ports): Promise<SshForward | string> {
  const bins = { sshd: which('sshd'), ssh: which('ssh'), 'ssh-keygen': which('ssh-keygen') };
  const missing = Object.keys(bins).filter((k) => !bins[k as keyof typeof bins]);
  if (missing.length) return `${missing.join(', ')} not found (apt-get install openssh-server openssh-client)`;
  // As root, sshd refuses to start without its privilege-separation directory, which systemd normally creates.
  try {
    if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  } catch (e) {
    return `cannot create /run/sshd: ${(e as Error).message}`;
  }
  const dir = await tempDir('palisade-bench-ssh-');
  const procs: Logged[] = [];
  const close = async () => {
    for (const p of procs.reverse()) await stopChild(p.child); // the client first: sshd's session ends with it
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const k of ['host', 'client'])
      execFileSync(bins['ssh-keygen']!, ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, k)]);
    await copyFile(join(dir, 'client.pub'), join(dir, 'authorized_keys'));
    await writeFile(join(dir, 'sshd_config'), sshdConfig(dir));
    const port = await freePort();
    const daemon = spawnLogged(bins.sshd!, ['-D', '-e', '-f', join(dir, 'sshd_config'), '-p', String(port)]);
    procs.push(daemon);
    await waitUntil(daemon, 'sshd', () => /Server listening on/.test(daemon.output()));
    const local: Ports = { sink: await freePort(), source: await freePort(), echo: await freePort() };
    const forwards = (Object.keys(local) as (keyof Ports)[]).flatMap((k) => [
      '-L',
      `${local[k]}:127.0.0.1:${targets[k]}`,
    ]);
    const client = spawnLogged(bins.ssh!, [
      '-N',
      '-T',
      '-o',
      'StrictHostKeyChecking=no',
      '-o',
      'UserKnownHostsFile=/dev/null',
      '-o',
      'ExitOnForwardFailure=yes',
      '-o',
      'BatchMode=yes',
      '-o',
      'LogLevel=ERROR',
      '-c',
      'aes128-gcm@openssh.com',
      '-i',
      join(dir, 'client'),
      '-p',
      String(port),
      ...forwards,
      `${userInfo().username}@127.0.0.1`,
    ]);
    procs.push(client);
    await waitUntil(client, 'ssh -L', async () =>
      (await Promise.all(Object.values(local).map(accepts))).every(Boolean),
    );
    return {
      path: {
        name: 'ssh -L',
        ports: local,
        pids: () => ({ ssh: [client.child.pid!], sshd: withDescendants(daemon.child.pid!) }),
      },
      close,
    };
  } catch (e) {
    await close();
    return `set-up failed: ${(e as Error).message}`;
  }
}
