/**
 * An engine's syslog, whole: the listeners agent.json names (syslog-listeners.ts) feed the spool in the engine's
 * directory (syslog-spool.ts), whose batches the forwarder sends over each session with the tenant as the engine
 * role hands them over (syslog-forwarder.ts). Started with the engine, before its first session: senders are
 * accepted while the tenant is away, and spooled.
 */
import { join } from 'node:path';
import { DEFAULT_SYSLOG_SPOOL_MB, type AgentConfig } from '#common/agent-dir.js';
import type { Logger } from '#common/logging.js';
import type { TunnelSession } from '../../tunnel/tunnel-session.js';
import { SyslogForwarder } from './syslog-forwarder.js';
import { SyslogListeners, type ListenerCounts, type SyslogListenerInfo } from './syslog-listeners.js';
import { SyslogSpool, type SpoolStats } from './syslog-spool.js';

export type EngineSyslogStats = SpoolStats & ListenerCounts & { listening: string[] };

/** How often the counts are logged, when they changed: an operator sees the engine's syslog at work in its log. */
const STATUS_LOG_MS = 60_000;

export class EngineSyslog {
  private readonly statusTimer: NodeJS.Timeout;

  private constructor(
    private readonly spool: SyslogSpool,
    private readonly listeners: SyslogListeners,
    private readonly forwarder: SyslogForwarder,
    log: Logger,
  ) {
    let last = '';
    this.statusTimer = setInterval(() => {
      const stats = this.stats();
      const now = JSON.stringify(stats);
      if (now !== last) log.info(stats, 'syslog status');
      last = now;
    }, STATUS_LOG_MS).unref();
  }

  /** Undefined when the config names no syslog listener. Throws when a listener cannot bind (port taken). */
  static async start(
    config: AgentConfig,
    dir: string,
    tls: { cert: string; key: string },
    log: Logger,
  ): Promise<EngineSyslog | undefined> {
    if (!config.syslog?.length) return undefined;
    const spool = await SyslogSpool.open(join(dir, 'data', 'syslog-spool'), {
      engine: config.name,
      maxBytes: (config.syslogSpoolMb ?? DEFAULT_SYSLOG_SPOOL_MB) * 1024 * 1024,
      log,
    });
    const forwarder = new SyslogForwarder(spool, log);
    const listeners = new SyslogListeners(spool, log, tls);
    try {
      await listeners.start(config.syslog);
    } catch (e) {
      forwarder.close();
      await spool.close();
      throw e;
    }
    return new EngineSyslog(spool, listeners, forwarder, log);
  }

  get listening(): readonly SyslogListenerInfo[] {
    return this.listeners.listening;
  }

  /** The engine role's live session, or undefined when it ended. */
  setSession(session: TunnelSession | undefined): void {
    this.forwarder.setSession(session);
  }

  stats(): EngineSyslogStats {
    return { ...this.spool.stats, ...this.listeners.counts, listening: this.listening.map((l) => l.listen) };
  }

  /** Stops listening, seals what is open and leaves every unacknowledged batch on disk for the next start. */
  async close(): Promise<void> {
    clearInterval(this.statusTimer);
    await this.listeners.close();
    this.forwarder.close();
    await this.spool.close();
  }
}
