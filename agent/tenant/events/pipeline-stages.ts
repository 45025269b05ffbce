/**
 * The event pipeline's pluggable stages (event-pipeline.ts calls them): `beforeStore` may rewrite an event before it
 * is written (obfuscation.ts encrypts values there, so the clear text never reaches the store), `afterStore` hears of
 * the events of a batch once that batch is synced (correlation.ts counts them). Neither sees a re-sent duplicate.
 */
import type { StoredEvent } from './event-store.js';

export interface StoredEventRef {
  id: string;
  event: StoredEvent;
}

export interface PipelineStages {
  /** Whether `beforeStore` may rewrite events now: without, events are stored as received and parsed when read. */
  rewrites?(): boolean;
  /** Rewrites `e` in place before it is stored; must not throw for any event. */
  beforeStore?(e: StoredEvent): void;
  /**
   * The batch is stored: called once, without awaiting; must not throw. `stored()` parses the batch's events (in
   * batch order) when called: a stage that needs none of them now pays nothing.
   */
  afterStore?(stored: () => StoredEventRef[]): void;
  /**
   * Whether `afterStore` may read a batch's events now (correlation: a rule is in force, or the rules are due to be
   * read again). When it says no, the pipeline keeps nothing of the batch for it and does not call it: a batch's
   * events, kept until its write is done, would otherwise hold its messages through the wait.
   */
  observes?(): boolean;
}
