/**
 * Event batches as a test's fake tenant reads them: the args of an `events.batch` in whichever form they came
 * (binary or JSON bytes, or JSON already parsed) as the records' objects, through the tenant's own readers, so a
 * test compares records whatever the engine sent. Not the tenant's path (agent/tenant/tunnels/engine-events.ts).
 */
import type { SyslogBatch, SyslogRecord } from '#common/syslog-record.js';
import { readEventsBatch } from '../../agent/tunnel/events-batch.js';
import { JSON_FIRST_BYTE, readEventsBatchBinary } from '../../agent/tunnel/events-batch-binary.js';

export type RecordsBatch = SyslogBatch & { records: SyslogRecord[]; form: 'binary' | 'json' };

export function batchOfArgs(args: unknown, engine: string): RecordsBatch {
  if (!(args instanceof Uint8Array)) return { ...readEventsBatch(args, engine), form: 'json' };
  if (args[0] === JSON_FIRST_BYTE)
    return { ...readEventsBatch(JSON.parse(Buffer.from(args).toString('utf8')), engine), form: 'json' };
  const b = readEventsBatchBinary(args, engine);
  const r = b.records;
  const records: SyslogRecord[] = [];
  for (let i = 0; i < r.length; i++)
    records.push({ receivedAt: r.time(i), sender: r.sender(i), transport: r.transport(i), raw: r.text(i) });
  return { engine, seq: b.seq, records, form: 'binary' };
}
