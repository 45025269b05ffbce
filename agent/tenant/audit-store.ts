/**
 * A tenant's own audit log: who did what, from where (the caller's address as main saw it), with what
 * outcome — every change, every use of a tenant key, every denied request. Kept in the tenant's store, so
 * it moves and is offboarded with the tenant; main never holds it.
 */
import type { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';
import { groupWriter } from './group-writer.js';
import type { BatchOp } from './incident-timeline.js';

export interface TenantAuditEntry {
  at: string;
  actor: string;
  action: string;
  target?: string;
  outcome: 'ok' | 'denied' | 'failed';
  from?: string;
  status?: number;
  code?: string;
  detail?: Record<string, unknown>;
}
type Sub<V> = AbstractSublevel<Level<string, unknown>, string | Buffer | Uint8Array, string, V>;
/** A put for a LevelDB batch (incident-timeline.ts BatchOp's form). */
export interface AuditOp {
  type: 'put';
  sublevel: Sub<unknown>;
  key: string;
  value: TenantAuditEntry;
}

export class AuditStore {
  private readonly entries: Sub<TenantAuditEntry>;
  private seq = 0;

  constructor(private readonly db: Level<string, unknown>) {
    this.entries = db.sublevel<string, TenantAuditEntry>('audit', {
      valueEncoding: 'json',
    }) as unknown as Sub<TenantAuditEntry>;
  }

  private nextKey(): string {
    return `${Date.now().toString().padStart(15, '0')}!${(this.seq++ % 1e6).toString().padStart(6, '0')}`;
  }

  /** Stores one line (with other writes asked for meanwhile: group-writer.ts). */
  record(e: Omit<TenantAuditEntry, 'at'>): Promise<void> {
    return groupWriter(this.db).write(this.entryOps(e) as BatchOp[]);
  }

  /**
   * The op that records `e`, for the caller's batch: the line lands with the change it tells of (a playbook task's
   * `done`), or neither does. Dated now, when the op is made.
   */
  entryOps(e: Omit<TenantAuditEntry, 'at'>): AuditOp[] {
    return [
      {
        type: 'put',
        sublevel: this.entries as Sub<unknown>,
        key: this.nextKey(),
        value: { at: new Date().toISOString(), ...e },
      },
    ];
  }

  async list(limit: number, action?: string): Promise<TenantAuditEntry[]> {
    const out: TenantAuditEntry[] = [];
    for await (const v of this.entries.values({ reverse: true })) {
      if (action && !v.action.startsWith(action)) continue;
      out.push(v);
      if (out.length >= limit) break;
    }
    return out;
  }
}
