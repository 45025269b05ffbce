/**
 * The audit log on main: append-only entries keyed by time, for every change, enrolment, key use and
 * denied request. Entries name key ids and agent ids, never secrets.
 */
import type { Logger } from '#common/logging.js';
import type { AuditRecord, Registry } from './registry.js';

export class AuditLog {
  private seq = 0;
  constructor(private readonly registry: Registry, private readonly log: Logger) {}

  async record(entry: Omit<AuditRecord, 'at'>): Promise<void> {
    const at = new Date().toISOString();
    const key = `${Date.now().toString().padStart(15, '0')}!${(this.seq++ % 1e6).toString().padStart(6, '0')}!${process.pid}`;
    const rec: AuditRecord = { at, ...entry };
    await this.registry.audit.put(key, rec);
    this.log.info({ audit: rec }, 'audit');
  }

  /**
   * Records without making the caller wait, for answers whose timing must not depend on whether a line
   * was written: a 404 must not tell a tenant out of reach from a missing one by taking longer. A failed
   * write is logged (the time of the entry is still taken now).
   */
  recordLater(entry: Omit<AuditRecord, 'at'>): void {
    this.record(entry).catch((err: unknown) => this.log.error({ err, audit: entry }, 'audit write failed'));
  }

  async list(opts: { limit: number; action?: string }): Promise<AuditRecord[]> {
    const out: AuditRecord[] = [];
    for await (const v of this.registry.audit.values({ reverse: true })) {
      if (opts.action && !v.action.startsWith(opts.action)) continue;
      out.push(v);
      if (out.length >= opts.limit) break;
    }
    return out;
  }
}
