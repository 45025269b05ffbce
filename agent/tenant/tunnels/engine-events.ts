/**
 * The tenant's end of `events.batch` (agent/tunnel/events-batch.ts): a batch of syslog records one of its engines
 * pushed over their sealed session goes to the tenant's event pipeline (an EventSink, set by the tenant app), and
 * the engine hears back once it is stored, then drops it from its spool. The batch is filed under the engine's name
 * as main vouched for it in the session, never the name the batch carries: an engine cannot write events as
 * another. Without a sink (a tenant starting), the batch is refused as unavailable and the engine sends it again.
 * The session hands the batch over as its bytes: binary (agent/tunnel/events-batch-binary.ts, engines ≥ 1.11),
 * read in place, or JSON (older engines, and segments they left), told apart by the first byte.
 * Also keeps, per engine, what arrived since this process started, for `GET /tunnels` and `/engines`.
 */
import { parseJsonBytes } from '#common/codec.js';
import { BadParameterError, UnavailableError } from '#common/errors.js';
import type { EventSink, SyslogBatch } from '#common/syslog-record.js';
import { readEventsBatch, type EventsBatchAck } from '../../tunnel/events-batch.js';
import { JSON_FIRST_BYTE, readEventsBatchBinary } from '../../tunnel/events-batch-binary.js';

/** What one engine's batches brought since the tenant process started. */
export interface EngineEventCounts {
  batches: number;
  records: number;
  /** Batches the engine sent again after a lost answer, stored once. */
  duplicates: number;
  lastBatchAt: string | null;
  /** The engine's own counts, as its latest batch reported them: records it received and dropped (spool full). */
  engineReceived: number;
  engineDropped: number;
}

/**
 * A JSON batch's args. One that does not parse (a segment an older engine's crash cut short) is refused as malformed,
 * not as a wire error: the engine drops a refused batch, where it would send a wire error's again and again, holding
 * back every batch after it.
 */
function jsonArgs(bytes: Uint8Array): unknown {
  try {
    return parseJsonBytes(bytes);
  } catch (e) {
    throw new BadParameterError('ERR_EVENTS_BATCH', 'events.batch: args must be a binary batch or JSON', {
      field: 'args',
      cause: e,
    });
  }
}

export class EngineEvents {
  /** The tenant's event pipeline; set by the tenant app. */
  sink?: EventSink;
  private readonly counts = new Map<string, EngineEventCounts>();

  /** `args`: the command's bytes (binary or JSON), or JSON args already parsed. */
  async onBatch(engine: string, args: unknown): Promise<EventsBatchAck> {
    let batch: SyslogBatch;
    let spool: { received?: unknown; dropped?: unknown } | undefined;
    if (args instanceof Uint8Array && args.length > 0 && args[0] !== JSON_FIRST_BYTE) {
      const b = readEventsBatchBinary(args, engine);
      batch = b;
      spool = b.spool;
    } else {
      const parsed = args instanceof Uint8Array ? jsonArgs(args) : args;
      batch = readEventsBatch(parsed, engine);
      spool = (parsed as { spool?: typeof spool }).spool;
    }
    const sink = this.sink;
    if (!sink) throw new UnavailableError('ERR_EVENTS_UNAVAILABLE', 'the tenant is not ready to store events yet');
    const r = await sink.ingest(batch);
    const c = this.countsOf(engine);
    c.batches++;
    if (r.duplicate) c.duplicates++;
    else c.records += r.accepted;
    c.lastBatchAt = new Date().toISOString();
    if (Number.isSafeInteger(spool?.received)) c.engineReceived = Math.max(c.engineReceived, spool!.received as number);
    if (Number.isSafeInteger(spool?.dropped)) c.engineDropped = Math.max(c.engineDropped, spool!.dropped as number);
    return { seq: batch.seq, accepted: r.accepted, duplicate: r.duplicate };
  }

  /** An engine's counts, or undefined before its first batch. */
  of(engine: string): EngineEventCounts | undefined {
    const c = this.counts.get(engine);
    return c && { ...c };
  }

  private countsOf(engine: string): EngineEventCounts {
    let c = this.counts.get(engine);
    if (!c) {
      c = { batches: 0, records: 0, duplicates: 0, lastBatchAt: null, engineReceived: 0, engineDropped: 0 };
      this.counts.set(engine, c);
    }
    return c;
  }
}
