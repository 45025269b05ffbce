/**
 * The bounds every integration call runs within, on a tenant or on an engine: how long it may take (one budget for
 * the whole call, handed on to an engine with it) and how large its result may be. Not the calls themselves
 * (aws/run.ts, http/run.ts), nor how an engine is asked (engine-call.ts, tenant/tunnel-endpoint.ts).
 *
 * Time. Main's relay waits 30 s for a tenant's answer (RELAY_TIMEOUT_MS, main/tenants/tenants.ts) and an integration
 * fan-out 25 s per tenant (DEFAULT_INTEGRATION_FANOUT_TIMEOUT_MS, main/search/fanout.ts). A call gets CALL_BUDGET_MS
 * from when the tenant starts it, inside both. The library's own abort fires at the sooner of the connection's
 * timeout (an AWS connection's timeoutMs may be 300 s) and the budget left, so the caller gets the library's timeout
 * error (ERR_AWS_TIMEOUT, ERR_INTEGRATION_HTTP_TIMEOUT) rather than the relay's, and no call — a write above all — is
 * still running on an engine after its caller was told it timed out. On an engine the budget is what the tenant
 * had left less ENGINE_REPLY_MARGIN_MS for the answer's way back; sent as a duration, not a time of day, because the
 * engine's clock is the customer's.
 */
import type { PalisadeError } from '#common/errors.js';

/** A whole integration call on a tenant, engine and failover included: under the 25 s fan-out and 30 s relay waits. */
export const CALL_BUDGET_MS = 22_000;
/**
 * What a tenant keeps of its budget for an engine's answer to travel back (sealed, through the host or main): a
 * result is at most MAX_RESULT_BYTES, a few frames on a loaded host; 2 s is a generous bound for that.
 */
export const ENGINE_REPLY_MARGIN_MS = 2_000;
/** An engine's budget when the tenant sent none (a tenant of an earlier version): the old fixed 20 s. */
export const ENGINE_DEFAULT_BUDGET_MS = CALL_BUDGET_MS - ENGINE_REPLY_MARGIN_MS;

/** The ms left of a budget that ends at `deadline` (a performance.now() time); 0 once it is spent. */
export function timeLeft(deadline: number): number {
  return Math.max(0, Math.floor(deadline - performance.now()));
}

/**
 * How long a library call may wait: its connection's own timeout, or less when less is left of the budget. With
 * nothing left it still gets 1 ms, so the library fails with its own timeout error, as a caller would expect.
 */
export function clampTimeout(connectionTimeoutMs: number, budgetMs: number): number {
  return Math.max(1, Math.min(connectionTimeoutMs, budgetMs));
}

/**
 * 512 KiB of JSON: a result goes back through main's relay in one frame of at most 1 MiB (common/codec.ts) with its
 * envelope, and over an engine's sealed session first; half the frame leaves room for both.
 */
export const MAX_RESULT_BYTES = 512 * 1024;

/**
 * The result as plain JSON, refused beyond MAX_RESULT_BYTES rather than cut: a list cut short has no nextToken for
 * what was dropped, so the caller could not tell it from the whole answer. `tooLarge` words the refusal for the
 * integration (what to ask for instead).
 */
export function cappedJson(result: unknown, tooLarge: (bytes: number) => PalisadeError): unknown {
  const text = result === undefined ? 'null' : JSON.stringify(result);
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_RESULT_BYTES) throw tooLarge(bytes);
  return JSON.parse(text);
}
