/**
 * The tenant's replay cache, kept in its store so that a restart (a crash, a kill, its host restarting
 * it) does not forget which of main's signed requests it already acted on: a request captured on the way
 * in could otherwise be played again in the seconds until it expires. Ids live in memory
 * (common/signed-request.ts ReplayCache, the fast check) and in a sublevel keyed by expiry, so loading
 * at start and dropping expired entries are range operations. Not the signature check itself: that is
 * signature-guard.ts's.
 */
import type { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';
import { ReplayCache, type RequestClaim } from '#common/signed-request.js';
import type { BatchOp } from './incident-timeline.js';
import { groupWriter } from './group-writer.js';

type Sub = AbstractSublevel<Level<string, unknown>, string | Buffer | Uint8Array, string, string>;

/** Expired entries are dropped from the store this often (they are refused by their expiry anyway). */
const SWEEP_EVERY_MS = 60_000;
/** Keys sort by expiry: zero-padded milliseconds, then the request id. */
const EXP_WIDTH = 15;
const key = (exp: number, id: string) => `${String(exp).padStart(EXP_WIDTH, '0')}!${id}`;

export class PersistentReplayCache {
  private readonly memory = new ReplayCache();
  private readonly entries: Sub;
  private timer?: NodeJS.Timeout;

  constructor(private readonly db: Level<string, unknown>) {
    this.entries = db.sublevel<string, string>('replay', { valueEncoding: 'utf8' }) as unknown as Sub;
  }

  /** Drops what has expired and loads the rest; then sweeps once a minute until close(). */
  async open(now = Date.now()): Promise<void> {
    await this.sweep(now);
    for await (const k of this.entries.keys({ gte: key(now, '') })) {
      const sep = k.indexOf('!');
      this.memory.checkAndRemember({ id: k.slice(sep + 1), exp: Number(k.slice(0, sep)) }, now);
    }
    this.timer = setInterval(() => {
      void this.sweep(Date.now()).catch(() => undefined);
    }, SWEEP_EVERY_MS).unref();
  }

  /**
   * Refuses an id seen before, else remembers it. `untilStored`: on disk before it returns, so before the
   * request is acted on — a request whose effect survives a kill must not be playable again after it. A
   * read has no effect to protect: its id is written behind (issued now, not waited for), which spares
   * every relayed read, and each tenant of a fan-out search, a store round trip (measured: ~0.1 ms per
   * tenant of a search).
   */
  async checkAndRemember(claim: Pick<RequestClaim, 'id' | 'exp'>, untilStored = true): Promise<void> {
    this.memory.checkAndRemember(claim);
    // With other writes asked for meanwhile (group-writer.ts): on disk once this settles all the same.
    const stored = groupWriter(this.db).write([
      { type: 'put', sublevel: this.entries as never, key: key(claim.exp, claim.id), value: '' },
    ]);
    if (untilStored) await stored;
    else stored.catch(() => undefined); // the memory copy still refuses it until a restart
  }

  /**
   * Refuses an id seen before, else remembers it in memory and answers the op that stores it, for the batch that
   * makes the request's change (a route with `replayInBatch`, signature-guard.ts): the id is then on disk exactly
   * when the effect is, with no write of its own. A request refused before that batch changed nothing to protect.
   */
  rememberOps(claim: Pick<RequestClaim, 'id' | 'exp'>): BatchOp[] {
    this.memory.checkAndRemember(claim);
    return [{ type: 'put', sublevel: this.entries as never, key: key(claim.exp, claim.id), value: '' }];
  }

  close(): void {
    clearInterval(this.timer);
  }

  private sweep(now: number): Promise<void> {
    return this.entries.clear({ lt: key(now, '') });
  }
}
