/**
 * A running agent: loads its directory, enrols on first start, then keeps the connection to main and
 * answers commands. Host- and engine-specific parts (tenants, tunnels) plug in on top of this.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { agentPaths, loadAgentConfig, DEFAULT_ENGINE_LISTEN, type AgentConfig } from '#common/agent-dir.js';
import { createRootLogger, type LogDestination, type Logger } from '#common/logging.js';
import { errorMessage, type PalisadeError } from '#common/errors.js';
import { missingAgentRuntime } from '#common/agent-runtime.js';
import { enrol, isEnrolled } from './enrol.js';
import { MainConnection } from './main-connection.js';
import { CommandRunner, type CommandHandler } from './command-runner.js';
import { sysReport } from './sysinfo.js';
import { VOLATILE_HOST_COMMANDS } from '#common/host-commands.js';
import { HostRole } from './host/host-role.js';
import { EngineRole } from './engine/engine-role.js';
import { EngineSyslog } from './engine/syslog/engine-syslog.js';
import { AgentUpgrades } from './upgrade/agent-upgrades.js';
import { ENGINE_KEEPS, isolateAwsSdk } from './integrations/aws/sdk-environment.js';

export interface RunningAgent {
  config: Readonly<AgentConfig>;
  agentId: string;
  connection: MainConnection;
  runner: CommandRunner;
  /** Resolves with the permanent error that stopped the agent, if one does. */
  fatal: Promise<PalisadeError>;
  /** Resolves once an upgrade swapped `current` and was answered: the agent must exit to be restarted. */
  restart: Promise<void>;
  close(): Promise<void>;
}

export interface AgentEvents {
  onReady?(): void;
  onEnrolled?(agentId: string): void;
}

/**
 * `logTo`: DIR/logs/agent.log by default; 'stdout' with `agent start --log stdout` (for journald). Ignored when `log`
 * is given.
 */
export async function startAgent(
  dir: string,
  events: AgentEvents = {},
  log?: Logger,
  logTo: LogDestination = 'file',
): Promise<RunningAgent> {
  const paths = agentPaths(resolve(dir));
  const config = await loadAgentConfig(paths);
  // An engine runs the customer's integrations: its AWS calls use their connection, not its shell's AWS setup.
  if (config.kind === 'engine') isolateAwsSdk(process.env, ENGINE_KEEPS);
  const file = logTo === 'stdout' ? undefined : paths.logFile;
  const root = log ?? createRootLogger({ file, level: config.logLevel, name: 'agent' });
  const alog = root.child({ agent: config.name, kind: config.kind });
  const missing = missingAgentRuntime();
  if (missing.length)
    alog.warn(
      { missing },
      "started without the node flags or environment of the agent's systemd unit: tunnels run slower (see the unit's Environment= and ExecStart=)",
    );
  let agentId: string;
  if (await isEnrolled(paths)) {
    agentId = (JSON.parse(await readFile(paths.identity, 'utf8')) as { agentId: string }).agentId;
  } else {
    agentId = await enrol(paths, config, alog);
    events.onEnrolled?.(agentId);
  }
  const [ca, cert, key] = await Promise.all([paths.caCert, paths.cert, paths.key].map((p) => readFile(p, 'utf8')));

  const upgrades = await AgentUpgrades.load(process.env, alog.child({ component: 'upgrades' }));
  let signingPublicKey: string | undefined;
  const handlers: Record<string, CommandHandler> = {
    ping: async () => ({ pong: true, agent: config.name, kind: config.kind, at: new Date().toISOString() }),
    sysinfo: async () => sysReport(paths.dir),
    'agent.upgrade': upgrades.handler({
      tls: { ca, cert, key },
      mainUrl: () => connection.url,
      signingPublicKey: () => signingPublicKey,
    }),
  };
  const host =
    config.kind === 'host'
      ? new HostRole(join(paths.dir, 'tenants'), paths.dir, alog.child({ component: 'tenants' }), {
          tenantUsers: config.tenantUsers,
          integrationLoopbackAllow: config.integrationLoopbackAllow,
        })
      : undefined;
  if (host) Object.assign(handlers, host.handlers());
  // Engines relay through main when the direct path cannot open (port taken): degraded, not down.
  const engineEndpoint = await host
    ?.listenForEngines(config.engineListen ?? DEFAULT_ENGINE_LISTEN, config.engineAdvertise)
    .catch((e: unknown) => {
      alog.error(
        { err: errorMessage(e), code: (e as { code?: string }).code },
        'direct tunnel path unavailable; engines relay through main',
      );
      return undefined;
    });
  // Syslog listeners open before the first session: senders are accepted and spooled while the tenant is away.
  const syslog =
    config.kind === 'engine'
      ? await EngineSyslog.start(config, paths.dir, { cert, key }, alog.child({ component: 'syslog' }))
      : undefined;
  const engine =
    config.kind === 'engine'
      ? await EngineRole.load(config, paths.boxKey, alog.child({ component: 'tunnels' }), (s) => syslog?.setSession(s))
      : undefined;
  const runner = new CommandRunner(
    paths.state,
    handlers,
    alog.child({ component: 'commands' }),
    host ? VOLATILE_HOST_COMMANDS : undefined,
  );
  await runner.open();

  let reportFatal!: (e: PalisadeError) => void;
  const fatal = new Promise<PalisadeError>((r) => {
    reportFatal = r;
  });
  let requestRestart!: () => void;
  const restart = new Promise<void>((r) => {
    requestRestart = r;
  });
  const connection: MainConnection = new MainConnection({
    mainUrls: config.mainUrls,
    ca,
    cert,
    key,
    kind: config.kind,
    name: config.name,
    version: upgrades.version,
    lastUpgrade: upgrades.lastResult,
    log: alog.child({ component: 'connection' }),
    engineEndpoint,
    heartbeatPayload: async () => {
      host?.report(); // each tenant's CPU and memory travel beside the heartbeat, as a tenant.status event
      return { sentAtMs: Date.now(), sysinfo: await sysReport(paths.dir) };
    },
    onFrame: (env) => {
      if (env.tunnel) {
        host?.onTunnel(env);
        engine?.onTunnel(env);
        return;
      }
      if (env.engineRevocations) {
        host?.onRevocations(env.engineRevocations.engines ?? []);
        return;
      }
      if (!env.command) return;
      void runner
        .handle(env)
        .then((reply) => {
          connection.send(reply);
          // Answered first, so main records the swap before the agent goes (a lost answer is re-sent after restart).
          if (upgrades.restartDue) requestRestart();
        })
        .catch((e: unknown) => alog.error({ err: errorMessage(e), commandId: env.id }, 'command handling failed'));
    },
    onReady: (welcome) => {
      signingPublicKey = welcome.signingPublicKey || undefined;
      upgrades.accepted();
      host?.onWelcome(
        welcome.signingPublicKey ?? '',
        welcome.protocolMinor ?? 0,
        (env) => connection.send(env),
        welcome.revokedEngines?.engines ?? [],
      );
      engine?.onWelcome((env) => connection.send(env), connection);
      events.onReady?.();
    },
    onFatal: reportFatal,
  });
  connection.start();

  let closing: Promise<void> | undefined;
  return {
    config,
    agentId,
    connection,
    runner,
    fatal,
    restart,
    close: () =>
      (closing ??= (async () => {
        connection.close();
        await connection.closed();
        await host?.close();
        engine?.close();
        await syslog?.close();
        await runner.close();
        alog.info('agent stopped');
        root.flush();
      })()),
  };
}
