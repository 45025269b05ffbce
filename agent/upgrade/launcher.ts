/**
 * The launcher: what an installed agent's unit runs, from the last known-good release
 * (`committed/bin/node committed/app/launcher.mjs --root ROOT`). It starts the agent of `current` as its
 * child and is the only code that can undo an upgrade, which is why it never runs from the release being
 * tried. Its loop, each time round:
 *
 *   no upgrade in flight  `current` must be `committed` (if not, a swap was cut short: point it back); run
 *                         the agent; exit code 75 means "I swapped current, start me again", any other ends
 *                         the launcher with that code (systemd restarts it).
 *   upgrade to V in flight (state/upgrade.json, current -> V): run V's agent and wait for the first of
 *     - its IPC message that main accepted it: point `committed` at V, record {ok}, carry on running it;
 *     - its exit, or the deadline: stop it, point `current` back at `committed`, record {failed: why},
 *       and start the good one, which reports the failure to main in its Hello.
 *
 * Every decision is written before it is acted on, with links swapped atomically (release-files.ts), so a
 * launcher killed at any point resumes correctly. Not the fetch or the swap (release-install.ts).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import { join, resolve } from 'node:path';
import { AGENT_NODE_FLAGS } from '#common/agent-runtime.js';
import { createRootLogger, type Logger } from '#common/logging.js';
import type { AcceptedMessage } from './agent-upgrades.js';
import {
  clearPending,
  installPaths,
  LAUNCH_ENV,
  linkedVersion,
  pointAt,
  readPending,
  RESTART_EXIT_CODE,
  writeResult,
  type InstallPaths,
  type PendingUpgrade,
} from './release-files.js';

/** How long the new release's launcher has to load and exit when checked before its release is committed. */
const LAUNCHER_CHECK_MS = 30_000;
/** How long a child has to exit after SIGTERM before SIGKILL: an agent stops its tenants within ~5 s. */
const STOP_GRACE_MS = 15_000;

type Round = number | 'again';

export class Launcher {
  private child?: ChildProcess;
  private stopping = false;

  constructor(
    private readonly paths: InstallPaths,
    private readonly log: Logger,
  ) {}

  /** Runs agents until one ends for good or the launcher is told to stop; resolves with the exit code. */
  async run(): Promise<number> {
    if (!(await linkedVersion(this.paths.committed))) {
      // First start after install: what was installed is known-good until an upgrade says otherwise.
      const v = await linkedVersion(this.paths.current);
      if (!v) throw new Error(`${this.paths.current} does not point at releases/<version>`);
      await pointAt(this.paths.committed, v);
    }
    for (;;) {
      const r = await this.round();
      if (r !== 'again') return r;
    }
  }

  /** SIGTERM: stop the agent (it stops its tenants), then exit; a second signal kills it at once. */
  stop(): void {
    if (this.stopping) this.child?.kill('SIGKILL');
    this.stopping = true;
    this.child?.kill('SIGTERM');
  }

  private async round(): Promise<Round> {
    const good = (await linkedVersion(this.paths.committed))!;
    const current = await linkedVersion(this.paths.current);
    const pending = await readPending(this.paths);
    if (pending && pending.to === current && current !== good) return this.trial(pending, good);
    if (pending) await clearPending(this.paths);
    if (current !== good) {
      this.log.warn(
        { current, committed: good },
        'current is not the committed release and no upgrade is in flight: back to committed',
      );
      await pointAt(this.paths.current, good);
    }
    return this.ended(await exitOf(this.start(good)));
  }

  /** Runs the version being tried until main accepts it (commit) or it fails (rollback). */
  private async trial(p: PendingUpgrade, good: string): Promise<Round> {
    this.log.info({ from: p.from, to: p.to, deadline: new Date(p.deadline).toISOString() }, 'trying upgrade');
    const child = this.start(p.to);
    const exited = exitOf(child);
    const failed = await firstOf(child, exited, p);
    const refused = failed ?? (await launcherRefusal(join(this.paths.releases, p.to)));
    if (!refused) {
      await pointAt(this.paths.committed, p.to);
      await writeResult(this.paths, { attempt: p.attempt, version: p.to, ok: true, at: Date.now() });
      await clearPending(this.paths);
      this.log.info({ version: p.to }, 'upgrade committed');
      return this.ended(await exited);
    }
    await this.kill(child, exited);
    if (this.stopping) return 0; // stopped while trying: the next start tries again until the deadline
    // The result first: killed after it, the next round retries the trial past its deadline (failing again) or, the
    // pending record gone, points current back; killed before, the trial runs again. Never a rollback unreported.
    await writeResult(this.paths, { attempt: p.attempt, version: p.to, ok: false, failed: refused, at: Date.now() });
    await clearPending(this.paths);
    await pointAt(this.paths.current, good);
    this.log.warn({ version: p.to, back: good, reason: refused }, 'upgrade rolled back');
    return 'again';
  }

  private ended(code: number): Round {
    // Stopped before its own SIGTERM handler was in place, the agent dies of the signal we sent: a clean stop still.
    if (this.stopping) return code === 128 + constants.signals.SIGTERM ? 0 : code;
    return code === RESTART_EXIT_CODE ? 'again' : code;
  }

  private start(version: string): ChildProcess {
    const dir = join(this.paths.releases, version);
    const args = [
      ...AGENT_NODE_FLAGS,
      join(dir, 'app', 'palisade-agent.mjs'),
      'start',
      '--dir',
      this.paths.state,
      '--log',
      'stdout',
    ];
    const child = spawn(join(dir, 'bin', 'node'), args, {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      env: { ...process.env, [LAUNCH_ENV.root]: this.paths.root, [LAUNCH_ENV.version]: version },
    });
    this.child = child;
    this.log.info({ version, pid: child.pid }, 'agent started');
    if (this.stopping) child.kill('SIGTERM');
    return child;
  }

  private async kill(child: ChildProcess, exited: Promise<number>): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await exited;
    clearTimeout(t);
  }
}

/** The child's exit code (128 + n for signal n; 1 if it could not be started). */
function exitOf(child: ChildProcess): Promise<number> {
  return new Promise((r) => {
    child.once('error', () => r(1));
    child.once('exit', (code, signal) => r(code ?? (signal ? 128 + (constants.signals[signal] ?? 0) : 1)));
  });
}

/**
 * Why the release in `dir` could not launch the agent after the next restart, or undefined: its launcher is what
 * the unit runs once the release is committed, and then nothing would be left to roll back a broken one.
 */
function launcherRefusal(dir: string): Promise<string | undefined> {
  return new Promise((r) => {
    execFile(
      join(dir, 'bin', 'node'),
      [join(dir, 'app', 'launcher.mjs'), '--check'],
      { timeout: LAUNCHER_CHECK_MS },
      (e, _out, err) => {
        // Node prints the source line and a caret first; the error's own line is what says why.
        const lines = (err || e?.message || '').split('\n');
        const why = lines.find((l) => /Error\b/.test(l)) ?? lines.find((l) => l.trim()) ?? String(e);
        r(e ? `its launcher does not start: ${why.trim().slice(0, 300)}` : undefined);
      },
    );
  });
}

/** Undefined once the child says main accepted it; otherwise why it failed (exit or deadline). */
function firstOf(child: ChildProcess, exited: Promise<number>, p: PendingUpgrade): Promise<string | undefined> {
  return new Promise((r) => {
    const onMessage = (m: unknown) => {
      const a = m as Partial<AcceptedMessage>;
      if (a?.type === 'palisade.accepted' && a.version === p.to) done(undefined);
    };
    const by = new Date(p.deadline).toISOString();
    const timer = setTimeout(
      () => done(`not connected and accepted by main within the deadline (${by})`),
      Math.max(0, p.deadline - Date.now()),
    );
    const done = (why: string | undefined) => {
      clearTimeout(timer);
      child.off('message', onMessage);
      r(why);
    };
    child.on('message', onMessage);
    void exited.then((code) => done(`version ${p.to} exited with code ${code} before main accepted it`));
  });
}

/** `launcher.mjs --root ROOT`: runs the launcher of the install at ROOT and exits with its code. */
export function launcherMain(argv: readonly string[] = process.argv.slice(2)): void {
  // `--check`: loaded (every import resolved), nothing to do — how a launcher tells a new release's works.
  if (argv.includes('--check')) process.exit(0);
  const i = argv.indexOf('--root');
  if (i < 0 || !argv[i + 1]) {
    process.stderr.write('usage: launcher.mjs --root DIR (the install: DIR/releases, DIR/current, DIR/state)\n');
    process.exit(2);
  }
  const log = createRootLogger({ name: 'launcher' });
  const launcher = new Launcher(installPaths(resolve(argv[i + 1])), log);
  process.on('SIGTERM', () => launcher.stop());
  process.on('SIGINT', () => launcher.stop());
  launcher.run().then(
    (code) => {
      log.info({ code }, 'launcher stopped');
      log.flush(() => process.exit(code));
    },
    (e: unknown) => {
      log.error({ err: String(e) }, 'launcher failed');
      launcher.stop(); // and its agent with it (it also stops when the IPC channel closes)
      log.flush(() => process.exit(1));
    },
  );
}
