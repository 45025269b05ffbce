/**
 * Which of an agent's main URLs (`mainUrls` in agent.json) to dial next, and whether to wait first, as
 * XSOAR engines walk their list of engine URLs. Pure: no sockets, no clock; the connection
 * (main-connection.ts) dials, and the shared Backoff decides how long a wait is.
 *
 * A pass tries every URL once. A connect that fails moves on to the next URL at once: another URL is
 * another route to main, and one's failure says nothing about the next. When every URL of a
 * pass has failed, the agent backs off and starts over from the first URL, the operator's preferred one.
 * A URL that works is kept as long as its connection lives: no falling back to the first. A connection
 * that is lost moves on too (the route or main behind it may be what broke), after the backoff's first
 * short, jittered wait: a fleet dropped by a main restart must not redial in the same instant. That new
 * pass starts at the URL after the lost one and ends with it.
 *
 * Not here: main's retry-after hint and permanent refusals; the connection handles both (a hint means
 * waiting whatever the list says, a refusal ends the loop whichever URL gave it).
 */
import { PalisadeError } from '#common/errors.js';

export interface NextDial {
  url: string;
  /** Wait a backoff delay before dialling `url`: a whole pass failed, or a connection was just lost. */
  backOff: boolean;
}

export class MainUrlRotation {
  private index = 0;
  /** URLs dialled in the current pass, the current one included. */
  private triedInPass = 1;

  constructor(private readonly urls: readonly string[]) {
    // The config schema requires one URL at least; an empty list here is a bug, not an operator's mistake.
    if (urls.length === 0) throw new PalisadeError('internal', 'ERR_INTERNAL', 'an agent needs one main URL at least');
  }

  /** The URL to dial now. */
  get current(): string {
    return this.urls[this.index]!;
  }

  /** The dial to `current` did not reach a session (refused, unreachable, no Welcome). */
  failed(): NextDial {
    if (this.triedInPass >= this.urls.length) return this.startPass(0);
    this.index = (this.index + 1) % this.urls.length;
    this.triedInPass++;
    return { url: this.current, backOff: false };
  }

  /** The session on `current` worked and has ended. */
  lost(): NextDial {
    return this.startPass((this.index + 1) % this.urls.length);
  }

  /** Every pass begins after a wait: the last one failed whole, or a connection was just lost. */
  private startPass(index: number): NextDial {
    this.index = index;
    this.triedInPass = 1;
    return { url: this.current, backOff: true };
  }
}
