/**
 * What one hostile script may make a tenant hold or do, each attack of the issue-18 review run as it was reported:
 * call arguments that would fill the tenant's heap (refused before they cross), a context grown without end, a
 * flood of integration calls without await (at most SCRIPT_CALLS_IN_FLIGHT_MAX at once, none after the run, and
 * its slot held until they ended), a run past SCRIPT_INTEGRATION_CALLS_MAX, more runs or more memoryMb than the
 * tenant admits (refused, or queued for a caller that waits), an error code of 20 MB, and a body that closes its
 * wrapper. Runs in the test process, which vitest starts with --no-node-snapshot as the host forks tenants.
 */
import { describe, expect, it } from 'vitest';
import { SCRIPT_MAX_CONCURRENT, scriptSlots } from '../../agent/tenant/scripts/script-admission.js';
import { scriptApi, SCRIPT_CONTEXT_MAX, type ScriptServices } from '../../agent/tenant/scripts/script-api.js';
import {
  hostCalls,
  SCRIPT_CALL_ARGS_MAX,
  SCRIPT_CALLS_IN_FLIGHT_MAX,
  SCRIPT_INTEGRATION_CALLS_MAX,
} from '../../agent/tenant/scripts/script-host-calls.js';
import { runScript, type ScriptApi } from '../../agent/tenant/scripts/script-sandbox.js';
import { until } from '../harness/processes.js';

/** An api whose integration calls are counted, and held until `releaseAll` when `hold` is set. */
function countingApi(hold = false) {
  const seen = { started: 0, active: 0, maxActive: 0, contextSets: 0 };
  const held: (() => void)[] = [];
  const api: ScriptApi = {
    async integration(_instance, _command, args) {
      seen.started++;
      seen.maxActive = Math.max(seen.maxActive, ++seen.active);
      if (hold) await new Promise<void>((r) => held.push(r));
      else await new Promise((r) => setImmediate(r));
      seen.active--;
      return { echo: args };
    },
    incident: { get: async () => ({}), update: async () => ({}) },
    context: { get: () => undefined, set: () => void seen.contextSets++ },
  };
  return { api, seen, releaseAll: () => held.splice(0).forEach((r) => r()) };
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error('the script was not refused');
}

const idle = () => until('every script slot free', () => scriptSlots().running === 0, 10_000, 20);

describe("a script's bounds in the tenant", () => {
  it('refuses call arguments over SCRIPT_CALL_ARGS_MAX in the isolate, before they reach the tenant', async () => {
    const { api, seen } = countingApi();
    const attack = "const s = 'x'.repeat(4e6); for (let i = 0; i < 100; i++) await palisade.context.set('k' + i, s);";
    const r = await refusal(runScript({ source: attack, api, limits: { memoryMb: 64 } }));
    expect(r.message).toBe(
      `line 1: ERR_SCRIPT_ARGS_TOO_LARGE: palisade.context.set: arguments over ${SCRIPT_CALL_ARGS_MAX} characters of JSON`,
    );
    expect(seen.contextSets).toBe(0);
    const caught = await runScript({
      source: `try { await palisade.integration('vt', 'x', { s: 'y'.repeat(${SCRIPT_CALL_ARGS_MAX}) }) } catch (e) { return e.code }`,
      api,
    });
    expect(caught.result).toBe('ERR_SCRIPT_ARGS_TOO_LARGE');
    expect(seen.started).toBe(0);
  });

  it("caps a run's context at SCRIPT_CONTEXT_MAX of JSON, keeping what was set before", async () => {
    const caller = { id: 'u1', name: 'analyst', roles: [] };
    const real = scriptApi({} as ScriptServices, { caller, permissions: new Set(), script: 's1' });
    const source = [
      "const s = 'x'.repeat(200000); let n = 0;",
      "try { for (;;) { await palisade.context.set('k' + n, s); n++; } } catch (e) { return [n, e.code]; }",
    ].join('\n');
    const out = await runScript({ source, api: real.api, limits: { memoryMb: 64 } });
    const kept = Math.floor(SCRIPT_CONTEXT_MAX / 200_010);
    expect(out.result).toEqual([kept, 'ERR_SCRIPT_CONTEXT_TOO_LARGE']);
    expect(Object.keys(real.context)).toHaveLength(kept);
    expect(JSON.stringify(real.context).length).toBeLessThanOrEqual(SCRIPT_CONTEXT_MAX);
  });

  it('runs a flood of calls without await at most SCRIPT_CALLS_IN_FLIGHT_MAX at a time, none after the run', async () => {
    const { api, seen, releaseAll } = countingApi(true);
    const flood =
      "for (let i = 0; i < 20000; i++) palisade.integration('vt', 'x', { i }).catch(() => {}); return 'fired';";
    expect((await runScript({ source: flood, api })).result).toBe('fired');
    await until('the first calls reach the tenant', () => seen.started === SCRIPT_CALLS_IN_FLIGHT_MAX, 5000, 10);
    // The run is over but its calls still act for it: its slot stays taken until they end.
    expect(scriptSlots().running).toBe(1);
    releaseAll();
    await idle();
    expect(seen.started).toBe(SCRIPT_CALLS_IN_FLIGHT_MAX);
    expect(seen.maxActive).toBe(SCRIPT_CALLS_IN_FLIGHT_MAX);
    // What the isolate still had queued is dropped with it; had a call reached the host, it would not start.
    const late = hostCalls(api, () => true);
    expect(JSON.parse(await late.call('integration', '["vt","x",{}]'))).toMatchObject({ code: 'ERR_SCRIPT_TIMEOUT' });
    expect(seen.started).toBe(SCRIPT_CALLS_IN_FLIGHT_MAX);
  });

  it('queues the calls of a Promise.all in the isolate and answers each', async () => {
    const { api, seen } = countingApi();
    const source =
      "return (await Promise.all([...Array(10).keys()].map((i) => palisade.integration('vt', 'x', { i })))).map((r) => r.echo.i)";
    expect((await runScript({ source, api })).result).toEqual([...Array(10).keys()]);
    expect(seen.maxActive).toBeLessThanOrEqual(SCRIPT_CALLS_IN_FLIGHT_MAX);
  });

  it('refuses integration calls past SCRIPT_INTEGRATION_CALLS_MAX in one run', async () => {
    const { api, seen } = countingApi();
    const source =
      "let n = 0; try { for (;;) { await palisade.integration('vt', 'x', {}); n++; } } catch (e) { return [n, e.code]; }";
    const out = await runScript({ source, api, limits: { timeoutMs: 30_000 } });
    expect(out.result).toEqual([SCRIPT_INTEGRATION_CALLS_MAX, 'ERR_SCRIPT_CALLS_EXCEEDED']);
    expect(seen.started).toBe(SCRIPT_INTEGRATION_CALLS_MAX);
  });

  it('queues a waiting caller for a slot, and refuses one that does not wait', async () => {
    await idle();
    const { api } = countingApi();
    const spinning = Array.from({ length: SCRIPT_MAX_CONCURRENT }, () =>
      refusal(runScript({ source: 'for (;;) {}', api, limits: { timeoutMs: 500 } })),
    );
    expect((await refusal(runScript({ source: 'return 1', api }))).code).toBe('ERR_SCRIPT_BUSY');
    const waiting = [1, 2].map((n) => runScript({ source: `return ${n}`, api, wait: true }));
    await until('two runs queued', () => scriptSlots().queued === 2, 5000, 5);
    expect((await Promise.all(waiting)).map((r) => r.result)).toEqual([1, 2]);
    expect((await Promise.all(spinning)).map((r) => r.code)).toEqual(spinning.map(() => 'ERR_SCRIPT_TIMEOUT'));
  });

  it("admits scripts while their memoryMb together fit the tenant's budget", async () => {
    await idle();
    const { api } = countingApi();
    const big = refusal(runScript({ source: 'for (;;) {}', api, limits: { memoryMb: 128, timeoutMs: 400 } }));
    await until('the big run admitted', () => scriptSlots().memoryMb === 128, 5000, 5);
    expect(scriptSlots().running).toBe(1);
    const small = await refusal(runScript({ source: 'return 1', api, limits: { memoryMb: 8 } }));
    expect(small.code).toBe('ERR_SCRIPT_BUSY');
    let bigEnded = false;
    void big.then(() => (bigEnded = true));
    expect((await runScript({ source: 'return 2', api, limits: { memoryMb: 8 }, wait: true })).result).toBe(2);
    expect(bigEnded, 'the small run waited for the big one to end').toBe(true);
    expect((await big).code).toBe('ERR_SCRIPT_TIMEOUT');
  });

  it("keeps an error's code only if it is a name, and cuts its message", async () => {
    const { api } = countingApi();
    const huge = await refusal(
      runScript({
        source: "const e = new Error('m'); e.code = 'C'.repeat(20e6); throw e",
        api,
        limits: { memoryMb: 64 },
      }),
    );
    expect(huge).toMatchObject({ code: 'ERR_SCRIPT_ERROR', message: 'line 1: m' });
    const named = await refusal(runScript({ source: "const e = new Error('m'); e.code = 'NO_VERDICT'; throw e", api }));
    expect(named.message).toBe('line 1: NO_VERDICT: m');
    const long = await refusal(runScript({ source: "throw new Error('w'.repeat(1e6))", api }));
    expect(long.message.length).toBeLessThanOrEqual(2000 + 'line 1: '.length);
  });

  it('refuses a body that closes its function to run code before the prelude', async () => {
    const { api } = countingApi();
    const breakout = "}); JSON.stringify = () => 'X'; (async function () { return 1;";
    const r = await refusal(runScript({ source: breakout, api }));
    expect(r.code).toBe('ERR_SCRIPT_SYNTAX');
    expect((await runScript({ source: 'return JSON.stringify({ a: 1 })', api })).result).toBe('{"a":1}');
  });
});
