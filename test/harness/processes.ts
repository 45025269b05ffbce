/**
 * Test harness: real palisade processes (the built CLI) with captured output, ready-line waits with
 * deadlines, and logs printed only when a test fails.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CLI = join(REPO, 'bin', 'palisade.js');

export async function tempDir(prefix = 'palisade-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A free loopback port (listen on 0, close). Tests that restart main need a fixed port. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer()
      .once('error', rej)
      .listen(0, '127.0.0.1', () => {
        const a = s.address();
        s.close(() => res(typeof a === 'object' && a ? a.port : 0));
      });
  });
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json?: unknown;
}

/** Runs one palisade CLI command to completion; `stdin`, if given, is its input (else it reads nothing). */
export function runCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 60_000,
  stdin?: string,
): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdin.end(stdin ?? '');
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`palisade ${args.join(' ')} timed out\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        /* not JSON */
      }
      res({ code: code ?? -1, stdout, stderr, json });
    });
  });
}

/** How a process ended: its exit code, or the signal that ended it. */
export interface Ending {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A palisade process with its output captured. It remembers how it ended and which signals it was sent,
 * so that whoever stops it can check the end was clean (uncleanEnd).
 */
export class Proc {
  readonly child: ChildProcess;
  output = '';
  /** Set once the process has exited. */
  ending?: Ending;
  private readonly exited: Promise<number | null>;
  /** Signals sent through kill() or stop(), in order. */
  private readonly sent: NodeJS.Signals[] = [];
  /** stop() had to SIGKILL it at its deadline. */
  private forced = false;
  /** A test awaited waitExit(): an exit on its own is that test's to judge. */
  private awaited = false;

  /**
   * `as`: run as this user and group instead of the test's (a host that is not root). `entry`: the script
   * node runs, the palisade CLI unless told (an installed release's launcher).
   */
  constructor(
    readonly label: string,
    args: string[],
    env: NodeJS.ProcessEnv = {},
    nodeFlags: readonly string[] = [],
    as?: { uid: number; gid: number },
    entry: string = CLI,
  ) {
    // BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", which NODE_OPTIONS refuses) profiles the
    // long-lived processes; a host's tenant children inherit it through fork's execArgv.
    const nodeArgs = [...nodeFlags, ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean)];
    this.child = spawn(process.execPath, [...nodeArgs, entry, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...as,
    });
    this.child.stdout!.on('data', (d: Buffer) => {
      this.output += d;
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.output += d;
    });
    this.exited = new Promise((r) =>
      this.child.once('exit', (code, signal) => {
        this.ending = { code, signal };
        r(code ?? (signal ? 128 : null));
      }),
    );
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits until the output (from `from` on) matches, or fails with the output so far. */
  async waitFor(re: RegExp, timeoutMs = 30_000, from = 0): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.output.slice(from).match(re);
      if (m) return m;
      if (!this.running)
        throw new Error(`${this.label} exited (${this.child.exitCode}) before printing ${re}:\n${this.output}`);
      if (Date.now() > deadline)
        throw new Error(`${this.label} did not print ${re} within ${timeoutMs} ms:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Sends a signal on purpose (kill -9, SIGSTOP): how the process ends after that is the test's to judge,
   * not the clean-exit check's. Stopping it is stop()'s.
   */
  kill(signal: NodeJS.Signals): void {
    this.sent.push(signal);
    this.child.kill(signal);
  }

  /** Sends a signal (SIGKILL after `timeoutMs`) and resolves with the exit code (128 if a signal ended it). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<number | null> {
    if (this.running) {
      this.sent.push(signal);
      this.child.kill(signal);
    }
    const t = setTimeout(() => {
      this.forced = true;
      this.child.kill('SIGKILL');
    }, timeoutMs);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }

  /** Resolves with the exit code once the process exits by itself; the test awaiting it judges that code. */
  waitExit(): Promise<number | null> {
    this.awaited = true;
    return this.exited;
  }

  /**
   * Why the process did not end cleanly, or undefined if it did. Clean: exit code 0 (or death by the very
   * signal) after SIGTERM, within stop()'s deadline. A signal other than SIGTERM sent on purpose (kill(),
   * stop('SIGKILL')) excuses any end; an exit on its own is excused only if a test awaited it.
   */
  uncleanEnd(): string | undefined {
    const e = this.ending;
    if (!e) return 'still running';
    if (this.sent.some((s) => s !== 'SIGTERM')) return undefined;
    if (this.forced) return 'did not exit within its deadline after SIGTERM: SIGKILLed';
    if (e.signal) return this.sent.includes(e.signal) ? undefined : `killed by ${e.signal}`;
    if (e.code === 0 || (this.awaited && !this.sent.length)) return undefined;
    return this.sent.length
      ? `exited with code ${e.code} after SIGTERM`
      : `exited on its own with code ${e.code}, and no test awaited it`;
  }
}

/** Polls `fn` until it returns a truthy value, or throws after the deadline. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Whether process `pid` exists (one of another user counts: signalling it is refused, not failed). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function readLog(path: string): Promise<string> {
  return readFile(path, 'utf8').catch(() => '');
}
