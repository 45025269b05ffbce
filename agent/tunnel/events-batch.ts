/**
 * The `events.batch` command: one batch of syslog records (common/syslog-record.ts) an engine pushes to its tenant
 * inside their sealed session; the engine sends it (agent/engine/syslog/syslog-forwarder.ts), the tenant stores it
 * and answers once stored (agent/tenant/tunnels/engine-events.ts). Unlike the tenant's commands to its engine, this
 * one goes the other way: the session is symmetric, and the engine must push. Both ends use this module; here are
 * the name and the tenant's reading of the JSON args, which trusts nothing of the engine's but the session itself.
 * Engines ≥ 1.11 send a tenant ≥ 1.11 the binary form instead (events-batch-binary.ts); JSON still comes from older
 * engines and from the segments they left.
 */
import { BadParameterError } from '#common/errors.js';
import {
  MAX_SYSLOG_BATCH_RECORDS,
  MAX_SYSLOG_MESSAGE_BYTES,
  type SyslogBatch,
  type SyslogRecord,
  type SyslogTransport,
} from '#common/syslog-record.js';
import { MAX_SENDER, MAX_TIME_MS } from './events-batch-binary.js';

export const EVENTS_BATCH = 'events.batch';
/** What the tenant answers. */
export interface EventsBatchAck {
  seq: number;
  accepted: number;
  duplicate: boolean;
}

const TRANSPORTS: ReadonlySet<string> = new Set<SyslogTransport>(['udp', 'tcp', 'tls']);

/**
 * The args of an `events.batch` as the tenant reads them: a batch of `engine`, the engine's name as main vouched for
 * it in the session (whatever name the batch itself carries). A malformed one is refused whole (ERR_EVENTS_BATCH,
 * naming the field): nothing of it is stored.
 */
export function readEventsBatch(raw: unknown, engine: string): SyslogBatch & { records: SyslogRecord[] } {
  const bad = (field: string, what: string) =>
    new BadParameterError('ERR_EVENTS_BATCH', `${EVENTS_BATCH}: ${field} must be ${what}`, { field });
  if (typeof raw !== 'object' || raw === null) throw bad('args', 'an object');
  const { seq, records } = raw as { seq?: unknown; records?: unknown };
  if (!Number.isSafeInteger(seq) || (seq as number) < 0) throw bad('seq', 'a whole number ≥ 0');
  if (!Array.isArray(records) || records.length > MAX_SYSLOG_BATCH_RECORDS)
    throw bad('records', `an array of at most ${MAX_SYSLOG_BATCH_RECORDS} records`);
  // Checked in place, not copied: JSON gives plain objects, and only these four fields are read from them.
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as Partial<SyslogRecord> | null;
    const at = `records[${i}]`;
    if (typeof r !== 'object' || r === null) throw bad(at, 'an object');
    // Beyond 8.64e15 ms a Date is invalid (toISOString throws), which would fail the batch on every retry.
    if (!Number.isSafeInteger(r.receivedAt) || (r.receivedAt as number) < 0 || (r.receivedAt as number) > MAX_TIME_MS)
      throw bad(`${at}.receivedAt`, 'ms since the epoch');
    if (typeof r.sender !== 'string' || r.sender.length > MAX_SENDER)
      throw bad(`${at}.sender`, `an address of at most ${MAX_SENDER} characters`);
    if (typeof r.transport !== 'string' || !TRANSPORTS.has(r.transport))
      throw bad(`${at}.transport`, 'udp, tcp or tls');
    // UTF-16 units: never more than the UTF-8 bytes the engine kept (MAX_SYSLOG_MESSAGE_BYTES).
    if (typeof r.raw !== 'string' || r.raw.length > MAX_SYSLOG_MESSAGE_BYTES)
      throw bad(`${at}.raw`, `text of at most ${MAX_SYSLOG_MESSAGE_BYTES} bytes`);
  }
  return { engine, seq: seq as number, records: records as SyslogRecord[] };
}
