/**
 * The host side of one run's `palisade.*` calls: each comes as an op and its arguments as JSON and is answered as
 * JSON; an error carries only a PalisadeError's code and message. It bounds what one script may make the tenant
 * hold or do: arguments of at most SCRIPT_CALL_ARGS_MAX (refused before parsing), SCRIPT_CALLS_IN_FLIGHT_MAX calls
 * at once (the prelude queues a script's calls in its isolate, so more here is refused, not queued in the tenant's
 * heap), SCRIPT_INTEGRATION_CALLS_MAX integration calls per run, and none at all once the run is over. `settled()`
 * tells when every call it started has ended, so a run's slot is not freed while its calls still act.
 * Not the sandbox (script-sandbox.ts) nor the api's meaning (script-api.ts).
 */
import { isPalisadeError, RunFailedError, TooLargeError, UnavailableError } from '#common/errors.js';
import type { HostAnswer } from './script-prelude.js';
import type { ScriptApi } from './script-sandbox.js';

/** 256 KiB of JSON arguments per call: as much as a result may be; an integration's args are small. */
export const SCRIPT_CALL_ARGS_MAX = 256 * 1024;
/** Calls of one run at once: each integration call is an outbound request with the tenant's credentials. */
export const SCRIPT_CALLS_IN_FLIGHT_MAX = 4;
/** Integration calls of one run in all: an enrichment makes a few; 100 bounds a loop's requests and audit lines. */
export const SCRIPT_INTEGRATION_CALLS_MAX = 100;

export interface HostCalls {
  call(op: string, argsJson: string): Promise<string>;
  /** Resolves when no call is in flight; calls cannot start after `over()`, so it then stays so. */
  settled(): Promise<void>;
}

export function hostCalls(api: ScriptApi, over: () => boolean): HostCalls {
  const ops: Record<string, (a: unknown[]) => unknown> = {
    integration: (a) => api.integration(String(a[0]), String(a[1]), a[2]),
    'incident.get': () => api.incident.get(),
    'incident.update': (a) => api.incident.update(a[0]),
    'context.get': (a) => api.context.get(String(a[0])),
    'context.set': (a) => api.context.set(String(a[0]), a[1]),
  };
  let inFlight = 0;
  let integrationCalls = 0;
  let idle: (() => void) | undefined;
  const start = (op: string, argsJson: string): unknown => {
    // After the deadline nothing new starts: a disposed script's late calls must not act for it.
    if (over()) throw new RunFailedError('ERR_SCRIPT_TIMEOUT', 'the script is over');
    if (!Object.hasOwn(ops, op)) throw new RunFailedError('ERR_SCRIPT_ERROR', `palisade has no ${op}`);
    if (typeof argsJson !== 'string' || argsJson.length > SCRIPT_CALL_ARGS_MAX)
      throw new TooLargeError(
        'ERR_SCRIPT_ARGS_TOO_LARGE',
        `palisade.${op}: arguments over ${SCRIPT_CALL_ARGS_MAX} characters of JSON`,
      );
    if (inFlight >= SCRIPT_CALLS_IN_FLIGHT_MAX)
      throw new UnavailableError('ERR_SCRIPT_BUSY', `palisade.${op}: ${inFlight} calls of this run are in flight`);
    if (op === 'integration' && ++integrationCalls > SCRIPT_INTEGRATION_CALLS_MAX)
      throw new TooLargeError(
        'ERR_SCRIPT_CALLS_EXCEEDED',
        `more than ${SCRIPT_INTEGRATION_CALLS_MAX} integration calls in one run`,
      );
    return ops[op](JSON.parse(argsJson) as unknown[]);
  };
  return {
    async call(op, argsJson) {
      let answer: HostAnswer;
      let counted = false;
      try {
        const pending = start(op, argsJson);
        inFlight++;
        counted = true;
        answer = { ok: true, value: (await pending) ?? null };
      } catch (e) {
        answer = isPalisadeError(e)
          ? { ok: false, code: e.code, message: e.message }
          : { ok: false, code: 'ERR_INTERNAL', message: `palisade.${op} failed` };
      } finally {
        if (counted && --inFlight === 0) {
          const wake = idle;
          idle = undefined;
          wake?.();
        }
      }
      return JSON.stringify(answer);
    },
    settled() {
      if (inFlight === 0) return Promise.resolve();
      return new Promise((resolve) => {
        const before = idle;
        idle = () => {
          before?.();
          resolve();
        };
      });
    },
  };
}
