/**
 * The states of an engine's session with its tenant and the transitions between them, checked: a
 * transition the table does not allow is a bug and throws ERR_ENGINE_STATE rather than leaving the engine
 * half in two states (a timer of one attempt acting on the next). Pure; engine-role.ts drives it.
 *
 *   idle ──▶ hello ──▶ relayed ──────────────┐
 *              │  ▲                            ├──▶ idle ──▶ backoff ──▶ hello …
 *              ▼  │ (fallback: a relayed hello) │
 *           dialling ──▶ direct ───────────────┘
 *   any ──▶ idle (a new connection to main, a failure), any ──▶ closed (terminal).
 */
import { PalisadeError } from '#common/errors.js';

export type EngineState =
  /** No session and none being set up: not connected to main, not configured, or between sessions. */
  | 'idle'
  /** Our hello went to main: waiting for the tenant's answer (relayed) or main's offer of the direct path. */
  | 'hello'
  /** Connecting to the tenant's host, or waiting there for the tenant's answer. */
  | 'dialling'
  /** A session through main (engine → main → host → tenant). */
  | 'relayed'
  /** A session on our own connection to the tenant's host. */
  | 'direct'
  /** Waiting to try again after a failure (capped exponential backoff with jitter). */
  | 'backoff'
  /** The engine is stopping. */
  | 'closed';

export const ENGINE_TRANSITIONS: Readonly<Record<EngineState, readonly EngineState[]>> = {
  idle: ['hello', 'backoff', 'closed'],
  // hello → hello: a fresh hello replaces the one in flight (main offered an unusable endpoint).
  hello: ['hello', 'dialling', 'relayed', 'idle', 'closed'],
  dialling: ['hello', 'direct', 'idle', 'closed'],
  relayed: ['idle', 'closed'],
  direct: ['idle', 'closed'],
  backoff: ['hello', 'idle', 'closed'],
  closed: [],
};

/** Throws ERR_ENGINE_STATE unless the table allows `from` → `to`. */
export function checkEngineTransition(from: EngineState, to: EngineState): void {
  if (!ENGINE_TRANSITIONS[from].includes(to))
    throw new PalisadeError('internal', 'ERR_ENGINE_STATE', `bad engine session transition ${from} → ${to}`);
}
