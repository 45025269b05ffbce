/**
 * The relayed tunnel records a host hands to one tenant process, bounded per engine. They go over IPC
 * (child.send), which queues in the host whenever the tenant reads slower than main sends: one engine
 * must not make that queue (the host's memory) grow without end, nor fill it for the others.
 *
 * Per engine: past HOLD_BYTES the host asks main to stop reading that engine (Tunnel.flow PAUSE), and to
 * go on once below RESUME_BYTES — backpressure end to end, which costs a legit engine nothing. Past
 * CAP_BYTES (a main too old to hold an engine back, or records already on their way when it did), the
 * engine's records are dropped and its session ended at both ends, since a sealed session cannot skip a
 * record; its next hello starts afresh. One feed per tenant process: when the process is gone, main
 * hears that the sessions it carried are over. Not a judge of records: they are sealed, the tenant
 * opens them.
 */
import type { Logger } from '#common/logging.js';
import { PendingBytes } from '#common/pending-bytes.js';
import { RECORD_HANDSHAKE } from '../tunnel/tunnel-records.js';
import type { TunnelRecord } from '../tenant-ipc.js';

const MiB = 1024 * 1024;
/** As main's own bound per engine toward the host (main/tunnels/relay-limits.ts): a legit engine rarely meets it. */
export const HOLD_BYTES = 4 * MiB;
const RESUME_BYTES = HOLD_BYTES / 2;
/**
 * What may still arrive after the hold: main's queue for the engine (≤ 4 MiB), the socket buffers between
 * main and the host, and one frame. Comfortably above that, far below what would trouble a host.
 */
export const CAP_BYTES = 32 * MiB;

/** What the host tells main about one engine: stop or resume reading it, or its session here is over. */
export type FeedSignal = 'pause' | 'resume' | 'close';

interface EngineFeed {
  queued: PendingBytes;
  held: boolean;
  /** open: a hello went through; cut: over the cap, records dropped until the next hello. */
  session: 'none' | 'open' | 'cut';
}

const ignore = (): void => undefined;

export class TunnelFeed {
  private readonly engines = new Map<string, EngineFeed>();
  private closed = false;

  constructor(
    /** The IPC send (agent/tenant-ipc.ts) with its callback; `done` runs once whether or not the channel took it. */
    private readonly send: (msg: TunnelRecord, done: () => void) => void,
    private readonly signal: (engineId: string, s: FeedSignal) => void,
    private readonly log: Logger,
  ) {}

  /** A record from main for one engine: its hello, session data, or empty (the engine is gone). */
  push(msg: TunnelRecord): void {
    if (this.closed) return;
    const bytes = msg.record.length;
    const e = this.engine(msg.engineId);
    if (bytes === 0) {
      e.session = 'none';
      this.send(msg, ignore);
      return;
    }
    if (msg.record[0] === RECORD_HANDSHAKE) e.session = 'open';
    else if (e.session === 'cut') return;
    if (e.queued.bytes + bytes > CAP_BYTES) return this.cut(msg.engineId, e);
    this.send(msg, e.queued.done);
    e.queued.add(bytes);
    if (!e.held && e.queued.bytes >= HOLD_BYTES) {
      e.held = true;
      this.signal(msg.engineId, 'pause');
    }
  }

  private engine(engineId: string): EngineFeed {
    let e = this.engines.get(engineId);
    if (!e) {
      const feed: EngineFeed = {
        queued: new PendingBytes(() => this.drained(engineId, feed)),
        held: false,
        session: 'none',
      };
      this.engines.set(engineId, (e = feed));
    }
    return e;
  }

  private drained(engineId: string, e: EngineFeed): void {
    if (!e.held || e.queued.bytes >= RESUME_BYTES || this.closed) return;
    e.held = false;
    this.signal(engineId, 'resume');
  }

  /** Over the cap: the tenant ends the session (an empty record, as when the engine is gone), and so does main. */
  private cut(engineId: string, e: EngineFeed): void {
    e.session = 'cut';
    this.log.warn(
      { engineId, queuedBytes: e.queued.bytes, capBytes: CAP_BYTES },
      'tunnel records for an engine over the queue cap toward its tenant: its session ends',
    );
    this.send({ engineId, record: new Uint8Array(0) }, ignore);
    this.signal(engineId, 'close');
  }

  /**
   * The tenant process is gone, and with it what was queued for it (IPC callbacks may never come): main
   * releases what the host held and ends the sessions the process carried. Idempotent.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const [engineId, e] of this.engines) {
      if (e.held) this.signal(engineId, 'resume');
      if (e.session === 'open') this.signal(engineId, 'close');
    }
    this.engines.clear();
  }
}
