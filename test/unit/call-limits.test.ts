/**
 * The bounds of an integration call (agent/integrations/call-limits.ts) and the budget an engine reads from
 * `integration.run` (engine-call.ts): a library's timeout gives way to the budget left, never to nothing; a result
 * over the cap is refused whole; a malformed budget from a tenant is refused by field. Pure: no I/O.
 */
import { describe, expect, it } from 'vitest';
import { BadParameterError } from '#common/errors.js';
import {
  CALL_BUDGET_MS,
  cappedJson,
  clampTimeout,
  ENGINE_DEFAULT_BUDGET_MS,
  ENGINE_REPLY_MARGIN_MS,
  MAX_RESULT_BYTES,
  timeLeft,
} from '../../agent/integrations/call-limits.js';
import { readIntegrationCall } from '../../agent/integrations/engine-call.js';

const call = (over: Record<string, unknown> = {}) => ({
  type: 'http',
  settings: {},
  tenant: 'acme',
  externalId: 'x',
  runs: 'request',
  args: {},
  ...over,
});

describe('the call budget', () => {
  it("clamps a connection's timeout to the budget left, and to 1 ms at least when nothing is left", () => {
    expect(clampTimeout(300_000, 12_345)).toBe(12_345);
    expect(clampTimeout(5_000, 12_345)).toBe(5_000);
    expect(clampTimeout(20_000, 0)).toBe(1);
  });

  it("fits inside main's waits: an engine's work and its answer's way back within the budget, under 25 s and 30 s", () => {
    expect(ENGINE_DEFAULT_BUDGET_MS + ENGINE_REPLY_MARGIN_MS).toBe(CALL_BUDGET_MS);
    expect(CALL_BUDGET_MS).toBeLessThan(25_000);
    expect(timeLeft(performance.now() + 5_000)).toBeGreaterThan(4_000);
    expect(timeLeft(performance.now() - 1)).toBe(0);
  });

  it('an engine reads budgetMs from the call; absent is allowed, anything but 0..CALL_BUDGET_MS is refused', () => {
    expect(readIntegrationCall(call({ budgetMs: 1500 })).budgetMs).toBe(1500);
    expect(readIntegrationCall(call()).budgetMs).toBeUndefined();
    for (const budgetMs of [-1, 1.5, '100', CALL_BUDGET_MS + 1])
      expect(() => readIntegrationCall(call({ budgetMs })), String(budgetMs)).toThrow(/args\.budgetMs/);
  });
});

describe('the result cap', () => {
  it('passes a result of MAX_RESULT_BYTES of JSON and refuses one byte more with the given error', () => {
    const fits = 'x'.repeat(MAX_RESULT_BYTES - 2); // with its two quotes
    expect(cappedJson(fits, () => new BadParameterError('ERR_INTEGRATION_RESULT_TOO_LARGE', 'no'))).toBe(fits);
    let seen = 0;
    const refuse = (bytes: number) => ((seen = bytes), new BadParameterError('ERR_INTEGRATION_RESULT_TOO_LARGE', 'no'));
    expect(() => cappedJson(`${fits}x`, refuse)).toThrow('no');
    expect(seen).toBe(MAX_RESULT_BYTES + 1);
    // Escaping counts: 100 000 control characters are 600 000 bytes as JSON.
    expect(() => cappedJson('\u0001'.repeat(100_000), refuse)).toThrow('no');
  });
});
