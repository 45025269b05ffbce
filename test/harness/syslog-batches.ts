/**
 * Event batches as a test's fake tenant reads them: the args of an `events.batch` in whichever form they came
 * (binary or JSON bytes, or JSON already parsed) as the records' objects, through the tenant's own readers, so a
 * test compares records whatever the engine sent; and a tenant/engine pair of sessions whose tenant answers
 * batches so, and a forwarder sending a spool's batches to such a tenant. Not the tenant's path
 * (agent/tenant/tunnels/engine-events.ts).
 */
import { silentLogger } from '#common/logging.js';
import type { SyslogBatch, SyslogRecord } from '#common/syslog-record.js';
import { SyslogForwarder } from '../../agent/engine/syslog/syslog-forwarder.js';
import type { SyslogSpool } from '../../agent/engine/syslog/syslog-spool.js';
import { EVENTS_BATCH, readEventsBatch } from '../../agent/tunnel/events-batch.js';
import { TunnelSession } from '../../agent/tunnel/tunnel-session.js';
import { SealingKey, type SessionKeys } from '../../agent/tunnel/tunnel-crypto.js';
import { JSON_FIRST_BYTE, readEventsBatchBinary } from '../../agent/tunnel/events-batch-binary.js';
import { until } from './processes.js';

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

/**
 * A tenant/engine pair of sessions joined back to back in memory; `cut()` loses what is in flight. The tenant says
 * protocol minor `tenantMinor`: from 11 it takes the batch's bytes (binary or JSON), before it JSON args only. The
 * tenant takes `events.batch` only (of engine `eng1`), read by batchOfArgs, and answers what `onBatch` returns.
 */
export function sessionPair(onBatch: (b: RecordsBatch) => Promise<unknown>, tenantMinor = 0) {
  const key = Buffer.alloc(32, 9);
  const keys = (): SessionKeys => ({ send: new SealingKey(key, null), receive: new SealingKey(key, null) });
  let deliver = true;
  const pass = (to: () => TunnelSession) => (r: Buffer) => {
    const body = Buffer.from(r.subarray(1));
    if (deliver) setImmediate(() => deliver && to().onSealed(body));
  };
  const tenant: TunnelSession = new TunnelSession({
    keys: keys(),
    initiator: true,
    sendRecord: pass(() => engine),
    ...(tenantMinor >= 11 ? { rawCommands: new Set([EVENTS_BATCH]) } : {}),
    onCommand: async (name, args) => {
      if (name !== EVENTS_BATCH) throw new Error(`unexpected command ${name}`);
      return onBatch(batchOfArgs(args, 'eng1'));
    },
  });
  const engine: TunnelSession = new TunnelSession({
    keys: keys(),
    initiator: false,
    sendRecord: pass(() => tenant),
    peerMinor: tenantMinor,
  });
  return {
    engine,
    cut: () => {
      deliver = false;
      engine.close('cut');
      tenant.close('cut');
    },
  };
}

/**
 * Forwards what `spool` holds to a tenant (sessionPair) that stores every batch, until nothing is pending; then closes
 * the forwarder and the sessions. Returns the messages stored, in the order they were.
 */
export async function forwardAll(spool: SyslogSpool): Promise<string[]> {
  const fwd = new SyslogForwarder(spool, silentLogger());
  const stored: string[] = [];
  const pair = sessionPair(async (b) => {
    stored.push(...b.records.map((r) => r.raw));
    return { accepted: b.records.length };
  });
  fwd.setSession(pair.engine);
  try {
    await until('nothing pending', async () => spool.stats.pendingRecords === 0, 5_000);
  } finally {
    fwd.close();
    pair.cut();
  }
  return stored;
}
