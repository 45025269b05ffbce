/**
 * The agent's side of upgrades: which release it runs (from its launcher), the `agent.upgrade` command,
 * and the one message it sends its launcher over IPC — "connected and accepted by main" — which lets the
 * launcher commit an upgrade in flight. It reports how its last upgrade ended (state/upgrade-result.json,
 * written by the launcher) in every Hello. An agent started without the launcher (`agent start` by hand, in
 * tests, in development) reports the package version and refuses upgrades: nothing could roll it back.
 * Not the fetch and swap (release-install.ts) nor the rollback (launcher.ts).
 */
import { checkUpgradeArgs } from '#common/agent-release.js';
import { BadParameterError, ConflictError } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import { AGENT_VERSION } from '#common/protocol-version.js';
import type { CommandHandler } from '../command-runner.js';
import { installUpgrade, type AgentTls } from './release-install.js';
import {
  installPaths,
  LAUNCH_ENV,
  readPending,
  readResult,
  type InstallPaths,
  type UpgradeResult,
} from './release-files.js';

/** What the agent tells its launcher (launcher.ts reads exactly this). */
export interface AcceptedMessage {
  type: 'palisade.accepted';
  version: string;
}

export class AgentUpgrades {
  /** Set once `current` points at a new release: the agent answers the command, then exits to be restarted. */
  restartDue = false;
  private busy = false;

  private constructor(
    /** Undefined when not run by the launcher. */
    private readonly paths: InstallPaths | undefined,
    readonly version: string,
    readonly lastResult: UpgradeResult | undefined,
    private readonly log: Logger,
  ) {}

  static async load(env: NodeJS.ProcessEnv, log: Logger): Promise<AgentUpgrades> {
    const root = env[LAUNCH_ENV.root];
    const version = env[LAUNCH_ENV.version];
    if (!root || !version || !process.send) return new AgentUpgrades(undefined, AGENT_VERSION, undefined, log);
    const paths = installPaths(root);
    // The launcher gone (killed, crashed) would leave this agent running unsupervised, and the next launcher would
    // start a second one with the same certificate: stop as at SIGTERM instead.
    process.once('disconnect', () => {
      log.warn('the launcher is gone: stopping');
      process.kill(process.pid, 'SIGTERM');
    });
    return new AgentUpgrades(paths, version, await readResult(paths), log);
  }

  /** Tells the launcher main accepted this agent (each time; the launcher acts on the first while it waits). */
  accepted(): void {
    if (!this.paths) return;
    const m: AcceptedMessage = { type: 'palisade.accepted', version: this.version };
    process.send?.(m);
  }

  /** The `agent.upgrade` handler; `mainUrl` and `signingPublicKey` are read when it runs (the live connection's). */
  handler(o: { tls: AgentTls; mainUrl: () => string; signingPublicKey: () => string | undefined }): CommandHandler {
    return async (raw) => {
      const args = checkUpgradeArgs(raw);
      if (args.version === this.version) return { from: this.version, to: args.version, restarting: false };
      const paths = this.paths;
      if (!paths)
        throw new BadParameterError(
          'ERR_UPGRADE_UNSUPPORTED',
          'this agent was started without the launcher of an installed release (agent start by hand): it cannot upgrade itself',
        );
      // Main re-sends a durable command whose answer was lost; an attempt that already rolled back is not tried again.
      const last = this.lastResult;
      if (last && last.attempt === args.attempt && !last.ok)
        throw new ConflictError(
          'ERR_UPGRADE_ROLLED_BACK',
          `this upgrade to ${args.version} was tried and rolled back: ${last.failed ?? 'no reason recorded'}`,
        );
      const pending = await readPending(paths);
      if (this.busy || this.restartDue || pending)
        throw new ConflictError(
          'ERR_UPGRADE_PENDING',
          `this agent is already upgrading to ${pending?.to ?? 'another version'}`,
        );
      this.busy = true;
      try {
        this.log.info({ from: this.version, to: args.version, attempt: args.attempt }, 'upgrade started');
        await installUpgrade({
          paths,
          args,
          from: this.version,
          mainUrl: o.mainUrl(),
          tls: o.tls,
          signingPublicKey: o.signingPublicKey() ?? '',
        });
        this.restartDue = true;
        this.log.info({ from: this.version, to: args.version }, 'upgrade swapped in; restarting');
        return { from: this.version, to: args.version, restarting: true };
      } finally {
        this.busy = false;
      }
    };
  }
}
