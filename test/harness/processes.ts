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
    const s = createServer().once('error', rej).listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => res(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

export interface CliResult { code: number; stdout: string; stderr: string; json?: unknown }

/** Runs one palisade CLI command to completion. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d; });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    const timer = setTimeout(() => { child.kill('SIGKILL'); rej(new Error(`palisade ${args.join(' ')} timed out\n${stdout}\n${stderr}`)); }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      let json: unknown;
      try { json = JSON.parse(stdout); } catch { /* not JSON */ }
      res({ code: code ?? -1, stdout, stderr, json });
    });
  });
}

export class Proc {
  readonly child: ChildProcess;
  output = '';
  private exited?: Promise<number | null>;

  /** `as`: run as this user and group instead of the test's (a host that is not root). */
  constructor(readonly label: string, args: string[], env: NodeJS.ProcessEnv = {}, nodeFlags: readonly string[] = [], as?: { uid: number; gid: number }) {
    // BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", which NODE_OPTIONS refuses) profiles the
    // long-lived processes; a host's tenant children inherit it through fork's execArgv.
    const nodeArgs = [...nodeFlags, ...(process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean)];
    this.child = spawn(process.execPath, [...nodeArgs, CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], ...as });
    this.child.stdout!.on('data', (d: Buffer) => { this.output += d; });
    this.child.stderr!.on('data', (d: Buffer) => { this.output += d; });
    this.exited = new Promise((r) => this.child.once('exit', (code, sig) => r(code ?? (sig ? 128 : null))));
  }

  get running(): boolean { return this.child.exitCode === null && this.child.signalCode === null; }

  /** Waits until the output (from `from` on) matches, or fails with the output so far. */
  async waitFor(re: RegExp, timeoutMs = 30_000, from = 0): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.output.slice(from).match(re);
      if (m) return m;
      if (!this.running) throw new Error(`${this.label} exited (${this.child.exitCode}) before printing ${re}:\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`${this.label} did not print ${re} within ${timeoutMs} ms:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends a signal and resolves with the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 20_000): Promise<number | null> {
    if (this.running) this.child.kill(signal);
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited!;
    clearTimeout(t);
    return code;
  }

  waitExit(): Promise<number | null> { return this.exited!; }
}

/** Polls `fn` until it returns a truthy value, or throws after the deadline. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function readLog(path: string): Promise<string> {
  return readFile(path, 'utf8').catch(() => '');
}
