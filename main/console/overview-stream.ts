/**
 * The live overview for the console (GET /api/v1/overview/stream, text/event-stream). Each stream gets an
 * `overview` event when it opens and whenever what its caller may see changed, at most once a second, and a
 * comment line every 15 s so proxies and browsers keep the connection. One timer serves every stream: each
 * tick reads the state once (overview.ts) and cuts it per caller, so N consoles cost one read a second, not N.
 *
 * A stream lives no longer than its caller's right to it: every few seconds the session (or API key) is
 * checked again, and a signed-out, expired or revoked caller's stream ends. The same check rebuilds the caller's
 * permissions and tenant scope from its user record and roles as they are then (as a new request's would be), so
 * a user whose role lost tenants:read, or whose tenants were cut, sees the smaller overview from that event on.
 * Streams are bounded per user and in total (429 ERR_OVERVIEW_STREAMS): each holds a socket and a copy of its
 * last answer.
 */
import { errorMessage, RateLimitedError } from '#common/errors.js';
import type { Logger } from '#common/logging.js';
import { principalFor, type Principal } from '../access/api-keys.js';
import { overviewFor, readOverviewState, type OverviewState } from './overview.js';
import type { MainServices } from '../services.js';

/** Events at most this often per stream (the contract: at most every 1 s). */
export const OVERVIEW_TICK_MS = 1_000;
/** A comment line this often keeps idle proxies (and EventSource) from dropping the connection. */
export const OVERVIEW_HEARTBEAT_MS = 15_000;
/** How often a stream's caller is checked again (sign-out, expiry, revoked key, removed user, changed roles). */
const RECHECK_MS = 5_000;
/** Streams per user: a few console tabs. */
const MAX_STREAMS_PER_USER = 8;
const MAX_STREAMS = 1_000;

export interface StreamSink {
  /** Writes SSE text; false when the socket's buffer is full (that stream skips a beat, see tick()). */
  write(text: string): boolean;
  end(): void;
}

interface Stream {
  principal: Principal;
  sink: StreamSink;
  last: string;
  lastWriteAt: number;
  lastCheckAt: number;
}

/** A place held for one stream from admit() until open() has registered it (or the request failed). */
export interface StreamSlot {
  release(): void;
}

export class OverviewStreams {
  private readonly streams = new Set<Stream>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  /** Places admitted but not yet registered (open() awaits a read), by user id: counted against the limits. */
  private readonly pending = new Map<string, number>();
  private pendingTotal = 0;

  constructor(
    private readonly s: MainServices,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Throws 429 if the caller may open no more streams now; else holds a place at once (synchronously, so
   * parallel requests cannot all pass before any is registered). open() releases it; so must a failed request.
   */
  admit(principal: Principal): StreamSlot {
    const id = principal.user.id;
    const held = this.pending.get(id) ?? 0;
    const mine = [...this.streams].filter((x) => x.principal.user.id === id).length + held;
    if (mine >= MAX_STREAMS_PER_USER || this.streams.size + this.pendingTotal >= MAX_STREAMS)
      throw new RateLimitedError(
        'ERR_OVERVIEW_STREAMS',
        `too many overview streams open (at most ${MAX_STREAMS_PER_USER} per user); close another console tab`,
        { retryAfterMs: OVERVIEW_HEARTBEAT_MS },
      );
    this.pending.set(id, held + 1);
    this.pendingTotal++;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.pendingTotal--;
        const left = (this.pending.get(id) ?? 1) - 1;
        if (left > 0) this.pending.set(id, left);
        else this.pending.delete(id);
      },
    };
  }

  /** Registers a admitted stream and sends its first event; returns how to end it (the socket closed). */
  async open(slot: StreamSlot, principal: Principal, sink: StreamSink): Promise<() => void> {
    const stream: Stream = { principal, sink, last: '', lastWriteAt: this.now(), lastCheckAt: this.now() };
    try {
      this.send(stream, await readOverviewState(this.s));
      this.streams.add(stream);
    } finally {
      slot.release();
    }
    this.timer ??= setInterval(() => void this.tick(), OVERVIEW_TICK_MS);
    return () => this.drop(stream);
  }

  /** Ends every stream (main shutting down). */
  close(): void {
    for (const x of [...this.streams]) {
      this.drop(x);
      x.sink.end();
    }
  }

  private drop(stream: Stream): void {
    this.streams.delete(stream);
    if (this.streams.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private send(stream: Stream, state: OverviewState): void {
    const json = JSON.stringify(overviewFor(state, stream.principal));
    if (json === stream.last) return;
    // A stream whose socket is still full skips this change; the next tick sends the state as it is then.
    if (stream.sink.write(`event: overview\ndata: ${json}\n\n`)) stream.last = json;
    stream.lastWriteAt = this.now();
  }

  private async tick(): Promise<void> {
    if (this.ticking) return; // a slow read (a busy store) never piles ticks up
    this.ticking = true;
    try {
      const state = await readOverviewState(this.s);
      const now = this.now();
      for (const x of [...this.streams]) {
        if (now - x.lastCheckAt >= RECHECK_MS) {
          x.lastCheckAt = now;
          const fresh = await this.current(x.principal);
          if (!fresh) {
            this.drop(x);
            x.sink.end();
            continue;
          }
          x.principal = fresh;
        }
        this.send(x, state);
        if (this.now() - x.lastWriteAt >= OVERVIEW_HEARTBEAT_MS) {
          x.sink.write(': keep-alive\n\n');
          x.lastWriteAt = this.now();
        }
      }
    } catch (e) {
      this.log.error({ err: errorMessage(e) }, 'overview tick failed');
    } finally {
      this.ticking = false;
    }
  }

  /**
   * The caller as it stands now, or null if it no longer does (its session, or its key and user, gone): its
   * permissions and scope recomputed from its user's roles and tenants now, as authentication would.
   */
  private async current(p: Principal): Promise<Principal | null> {
    if (p.session && !(await this.s.sessions.stillValid(p.session.key))) return null;
    if (!p.session) {
      const key = await this.s.registry.apiKeys.get(p.keyId);
      if (!key || key.revokedAt) return null;
    }
    const user = await this.s.registry.users.get(p.user.id);
    if (!user || user.disabledAt) return null;
    return {
      ...principalFor(user, p.keyId, this.s.roles.lookup),
      ...(p.from !== undefined ? { from: p.from } : {}),
      ...(p.session ? { session: p.session } : {}),
    };
  }
}
