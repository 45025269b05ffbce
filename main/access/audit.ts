/**
 * The audit log on main: append-only entries keyed by time, for every change, enrolment, key use and
 * denied request. Entries name key ids and agent ids, never secrets. Every entry is bounded here, whoever
 * wrote it (boundAuditValue): no string over AUDIT_MAX_STRING characters, no nesting or list beyond a few
 * levels and entries, so nothing a stranger sends can make an entry big. Not an output filter: showing
 * entries safely on a terminal is the views' job.
 */
import type { Logger } from '#common/logging.js';
import type { AuditRecord, Registry } from '../registry.js';

/** Longest string kept anywhere in an entry: names are ≤ 63, ids and codes shorter, remotes ≤ 60. */
export const AUDIT_MAX_STRING = 256;
/** Deepest nesting kept (detail objects are one or two levels deep). */
const AUDIT_MAX_DEPTH = 4;
/** Most entries kept per object or list. */
const AUDIT_MAX_ENTRIES = 32;
const CUT = '…';

/** A copy of `v` within the bounds above; longer strings end in "…", deeper values become "…". */
export function boundAuditValue(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return v.length > AUDIT_MAX_STRING ? v.slice(0, AUDIT_MAX_STRING - CUT.length) + CUT : v;
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean') return v;
  if (typeof v !== 'object') return boundAuditValue(String(v), depth);
  if (depth >= AUDIT_MAX_DEPTH) return CUT;
  if (Array.isArray(v)) {
    const out = v.slice(0, AUDIT_MAX_ENTRIES).map((x) => boundAuditValue(x, depth + 1));
    if (v.length > AUDIT_MAX_ENTRIES) out.push(`${CUT}${v.length - AUDIT_MAX_ENTRIES} more`);
    return out;
  }
  const entries = Object.entries(v as Record<string, unknown>);
  const out: Record<string, unknown> = {};
  for (const [k, x] of entries.slice(0, AUDIT_MAX_ENTRIES))
    out[boundAuditValue(k) as string] = boundAuditValue(x, depth + 1);
  if (entries.length > AUDIT_MAX_ENTRIES) out[CUT] = `${entries.length - AUDIT_MAX_ENTRIES} more`;
  return out;
}

export class AuditLog {
  private seq = 0;
  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
  ) {}

  async record(entry: Omit<AuditRecord, 'at'>): Promise<void> {
    const at = new Date().toISOString();
    const key = `${Date.now().toString().padStart(15, '0')}!${(this.seq++ % 1e6).toString().padStart(6, '0')}!${process.pid}`;
    const rec = { at, ...(boundAuditValue(entry) as Omit<AuditRecord, 'at'>) };
    await this.registry.audit.put(key, rec);
    this.log.info({ audit: rec }, 'audit');
  }

  /**
   * Records without making the caller wait, for answers whose timing must not depend on whether a line
   * was written: a 404 must not tell a tenant out of reach from a missing one by taking longer. A failed
   * write is logged (the time of the entry is still taken now).
   */
  recordLater(entry: Omit<AuditRecord, 'at'>): void {
    this.record(entry).catch((err: unknown) =>
      this.log.error({ err, audit: boundAuditValue(entry) }, 'audit write failed'),
    );
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
