/**
 * Sends the spool's batches to the tenant as `events.batch` commands (agent/tunnel/events-batch.ts) over the live
 * session, oldest first, up to WINDOW at a time, and acknowledges each to the spool only when the tenant answers
 * that it stored it. A batch whose answer does not come (the session ended, the tenant restarted, a timeout) is
 * sent again on the next session, or after a backoff while this one lasts (the tenant refused it for now): the
 * tenant stores a batch once per engine and seq, so a re-send is harmless. A batch the tenant refuses as malformed
 * is dropped and counted: re-sending it would only hold back the batches after it. A batch goes as the spool holds it
 * (binary, or JSON from an older engine's segment) to a tenant that reads binary batches (its hello says protocol ≥
 * MINOR_BINARY_EVENTS), and as JSON made at send time (jsonOfBatch) to an older tenant. That hello is not sealed: a
 * tenant that answers a binary batch as JSON it cannot parse (ERR_WIRE_BAD_JSON: an older tenant whose hello was
 * changed on the way) gets JSON for the rest of the session, the batch sent again at once. Not the spool
 * (syslog-spool.ts) nor the session (engine-role.ts).
 */
import { Backoff } from '#common/backoff.js';
import { errorMessage } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import type { TunnelSession } from '../../tunnel/tunnel-session.js';
import { EVENTS_BATCH } from '../../tunnel/events-batch.js';
import { JSON_FIRST_BYTE } from '../../tunnel/events-batch-binary.js';
import { MINOR_BINARY_EVENTS } from '#common/protocol-version.js';
import { jsonOfBatch } from './syslog-batch-json.js';
import type { SpoolBatch, SyslogSpool } from './syslog-spool.js';

/**
 * Batches in flight at once: enough to keep the tenant's store busy while the next batch travels (a batch takes
 * ~50 ms to fill at moderate rates, far less under load), and about 2 MiB (batches are at most 120 KiB) so that a link
 * with a long round trip still carries a flood; few enough that a session lost re-sends little.
 */
const WINDOW = 16;
/** A batch the tenant has not answered within this is sent again (its store may be slow, not gone). */
const ACK_TIMEOUT_MS = 30_000;
const RETRY_BASE_MS = 500;
const RETRY_CAP_MS = 30_000;

export class SyslogForwarder {
  private session?: TunnelSession;
  private readonly inFlight = new Set<number>();
  private readonly backoff = new Backoff({ baseMs: RETRY_BASE_MS, capMs: RETRY_CAP_MS });
  private retryTimer?: NodeJS.Timeout;
  private closed = false;
  /** Sessions whose tenant could not read a binary batch although its hello said it could: JSON for them. */
  private readonly jsonOnly = new WeakSet<TunnelSession>();

  constructor(
    private readonly spool: SyslogSpool,
    private readonly log: Logger,
  ) {
    spool.onBatch = () => this.pump();
  }

  /** The session to send on (undefined between sessions); a new one gets every unacknowledged batch again. */
  setSession(session: TunnelSession | undefined): void {
    if (session === this.session) return;
    this.session = session;
    this.inFlight.clear();
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.backoff.reset();
    this.pump();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.session = undefined;
  }

  private pump(): void {
    const session = this.session;
    if (this.closed || !session || session.isClosed || this.retryTimer) return;
    if (this.inFlight.size >= WINDOW) return;
    for (const b of this.spool.pending()) {
      if (this.inFlight.size >= WINDOW) break;
      if (this.inFlight.has(b.seq)) continue;
      this.inFlight.add(b.seq);
      void this.send(session, b);
    }
  }

  private async send(session: TunnelSession, b: SpoolBatch): Promise<void> {
    let taken: { body: Buffer; disposable: boolean };
    let binary: boolean;
    try {
      taken = await this.spool.take(b);
      binary = taken.body[0] !== JSON_FIRST_BYTE;
      if (binary && (session.peerMinor < MINOR_BINARY_EVENTS || this.jsonOnly.has(session))) {
        taken = { body: jsonOfBatch(taken.body, this.spool.engine), disposable: true };
        binary = false;
      }
    } catch (e) {
      if (!this.spool.has(b.seq)) {
        // Dropped (spool full) while its segment was written: nothing to send.
        if (session === this.session) this.inFlight.delete(b.seq);
        this.pump();
        return;
      }
      // Its segment is gone or unreadable (removed by hand, a disk error): retrying would stall every later batch.
      this.log.error(
        { err: errorMessage(e), seq: b.seq, records: b.records },
        'syslog spool segment unreadable; dropped',
      );
      this.inFlight.delete(b.seq);
      await this.spool.discard(b.seq);
      this.pump();
      return;
    }
    try {
      // A body handed over is sealed where it lies: no copy of the batch but the socket's.
      await session.requestJson(EVENTS_BATCH, taken.body, ACK_TIMEOUT_MS, taken.disposable);
      // Stored, whichever session is current now.
      await this.spool.ack(b.seq);
      if (session !== this.session) return;
      this.inFlight.delete(b.seq);
      this.backoff.reset();
    } catch (e) {
      if (session !== this.session) return; // the next session sends it again
      this.inFlight.delete(b.seq);
      if (!this.spool.has(b.seq)) return; // dropped meanwhile (spool full)
      const { code, category } = e as { code?: string; category?: string };
      if (code === 'ERR_SESSION_CLOSED') return; // the engine role hands over the next session
      if (binary && code === 'ERR_WIRE_BAD_JSON') {
        this.jsonOnly.add(session);
        this.log.warn(
          { seq: b.seq, tenantMinor: session.peerMinor },
          'the tenant cannot read binary syslog batches although its hello said so; sending it JSON',
        );
        this.pump();
        return;
      }
      if (category === 'bad-parameter' || category === 'too-large') {
        // Refused for what it is, not for now (a tenant of another version?): sent again it would be refused again,
        // and hold back every batch after it.
        this.log.error(
          { err: errorMessage(e), code, seq: b.seq, records: b.records },
          'syslog batch refused by the tenant; dropped',
        );
        await this.spool.discard(b.seq);
        this.pump();
        return;
      }
      this.log.warn({ err: errorMessage(e), code, seq: b.seq }, 'syslog batch not stored by the tenant; retrying');
      if (!this.retryTimer) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.pump();
        }, this.backoff.next());
        this.retryTimer.unref();
      }
      return;
    }
    this.pump();
  }
}
