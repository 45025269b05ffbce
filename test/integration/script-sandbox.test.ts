/**
 * The script sandbox (agent/tenant/scripts/script-sandbox.ts) as a playbook runner or the run route would use it,
 * with a plain-function api: the script gets input and calls back through `palisade`, each callback gets copies;
 * an endless loop, an allocation bomb and a long Atomics.wait are stopped by their limits and the next script runs
 * fine (and this process kept its event loop meanwhile); nothing of Node reaches the script (process, require,
 * Function-constructor tricks, import()); errors name the script's line and never the host's stack; logs and the
 * result are bounded; at most SCRIPT_MAX_CONCURRENT run at once, and a run that asks to queue waits its turn.
 * Runs in the test process, which vitest starts with --no-node-snapshot as the host forks tenants.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NotFoundError } from '#common/errors.js';
import {
  runScript,
  sandboxAhead,
  SCRIPT_LOG_MAX_LINES,
  SCRIPT_RESULT_MAX,
  type ScriptApi,
} from '../../agent/tenant/scripts/script-sandbox.js';
import { SCRIPT_MAX_CONCURRENT, scriptSlots } from '../../agent/tenant/scripts/script-admission.js';

interface Recorded {
  calls: { op: string; args: unknown[] }[];
  context: Map<string, unknown>;
  incident: Record<string, unknown>;
}

function fakeApi(): ScriptApi & { rec: Recorded } {
  const rec: Recorded = { calls: [], context: new Map(), incident: { id: '7', name: 'phish', severity: 2 } };
  return {
    rec,
    async integration(instance, command, args) {
      rec.calls.push({ op: 'integration', args: [instance, command, args] });
      if (instance === 'missing') throw new NotFoundError('ERR_INTEGRATION_NOT_FOUND', 'no integration missing');
      if (instance === 'broken') throw new Error('/srv/palisade/secret-path exploded');
      return { status: 200, body: { verdict: 'malicious', echo: args } };
    },
    incident: {
      async get() {
        return rec.incident;
      },
      async update(patch) {
        rec.calls.push({ op: 'incident.update', args: [patch] });
        rec.incident = { ...rec.incident, ...(patch as object) };
        return rec.incident;
      },
    },
    context: {
      get: (path) => rec.context.get(path),
      set: (path, value) => void rec.context.set(path, value),
    },
  };
}

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string; stack: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code: string; message: string; stack: string };
    return { code: err.code, message: err.message, stack: err.stack ?? '' };
  }
  throw new Error('the script was not refused');
}

describe('the isolated-vm addon', () => {
  // npm ci runs its install script with node_modules/.bin (the pinned Node 24) first on PATH: node-gyp-build then
  // finds the prebuilt binary for this Node's ABI and compiles nothing (under an older Node it would compile).
  it.runIf(process.platform === 'linux' && process.arch === 'x64')(
    "is the package's prebuilt binary for this Node's ABI, not a local compile",
    () => {
      const require = createRequire(import.meta.url);
      const dir = dirname(require.resolve('isolated-vm/package.json'));
      const addon = (require('node-gyp-build') as { path(d: string): string }).path(dir);
      expect(relative(dir, addon)).toBe(`prebuilds/linux-x64/isolated-vm.abi${process.versions.modules}.glibc.node`);
      expect(existsSync(join(dir, 'build')), 'a build/ directory: npm ci compiled the addon').toBe(false);
    },
  );
});

describe('a script in the sandbox', () => {
  it('gets its input and the palisade API, and returns a JSON value with its logs', async () => {
    const api = fakeApi();
    const source = [
      'const inc = await palisade.incident.get();',
      "const r = await palisade.integration('vt', 'lookup', { ip: input.ip });",
      "await palisade.context.set('verdict', r.body.verdict);",
      "palisade.log('verdict', r.body.verdict, { n: 1 });",
      "await palisade.incident.update({ severity: inc.severity + 1, labels: { verdict: await palisade.context.get('verdict') } });",
      'return { verdict: r.body.verdict, incident: inc.id };',
    ].join('\n');
    const out = await runScript({ source, input: { ip: '192.0.2.1' }, api });
    expect(out.result).toEqual({ verdict: 'malicious', incident: '7' });
    expect(out.logs).toEqual(['verdict malicious {"n":1}']);
    expect(api.rec.calls[0]).toEqual({ op: 'integration', args: ['vt', 'lookup', { ip: '192.0.2.1' }] });
    expect(api.rec.incident).toMatchObject({ severity: 3, labels: { verdict: 'malicious' } });
    expect(out.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('hands the api copies, and gets copies back', async () => {
    const api = fakeApi();
    const source = [
      'const args = { list: [1, 2] };',
      "const p = palisade.integration('vt', 'lookup', args);",
      'args.list.push(3);', // after the call: the host must still hold [1, 2]
      'const r = await p;',
      'r.body.echo.list.push(99);',
      'const inc = await palisade.incident.get(); inc.name = "changed in the script";',
      'return r.body.echo;',
    ].join('\n');
    const out = await runScript({ source, api });
    expect(api.rec.calls[0].args[2]).toEqual({ list: [1, 2] });
    expect(out.result).toEqual({ list: [1, 2, 99] });
    expect(api.rec.incident.name).toBe('phish');
  });

  it('says a value is not JSON when a script hands one over', async () => {
    const api = fakeApi();
    const big = await refusal(runScript({ source: "await palisade.integration('vt', 'x', { n: 10n });", api }));
    expect(big.code).toBe('ERR_SCRIPT_ERROR');
    expect(big.message).toMatch(/^line 1: the arguments of palisade\.integration must be JSON/);
    const cyclic = await refusal(runScript({ source: 'const a = {}; a.a = a; return a;', api }));
    expect(cyclic.message).toMatch(/the result must be JSON/);
  });

  it('stops an endless loop at its timeout, keeps this process serving, and runs the next script', async () => {
    let ticks = 0;
    const tick = setInterval(() => ticks++, 20);
    const t0 = performance.now();
    const r = await refusal(runScript({ source: 'while (true) {}', api: fakeApi(), limits: { timeoutMs: 300 } }));
    const took = performance.now() - t0;
    clearInterval(tick);
    expect(r.code).toBe('ERR_SCRIPT_TIMEOUT');
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(3000);
    expect(ticks, 'the event loop kept turning while the script looped').toBeGreaterThan(5);
    expect((await runScript({ source: 'return 1 + 1', api: fakeApi() })).result).toBe(2);
  });

  it('stops a loop that starts after an await, and a long Atomics.wait, at the timeout', async () => {
    const api = fakeApi();
    const after = runScript({ source: 'await palisade.incident.get(); for (;;) {}', api, limits: { timeoutMs: 300 } });
    expect((await refusal(after)).code).toBe('ERR_SCRIPT_TIMEOUT');
    const wait = 'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600000); return "woke";';
    const t0 = performance.now();
    expect((await refusal(runScript({ source: wait, api, limits: { timeoutMs: 300 } }))).code).toBe(
      'ERR_SCRIPT_TIMEOUT',
    );
    expect(performance.now() - t0).toBeLessThan(3000);
  });

  it('stops an allocation bomb at its memory limit, and the next script runs', async () => {
    const bomb = 'const a = []; for (;;) a.push(new Array(100000).fill(Math.random()));';
    const r = await refusal(runScript({ source: bomb, api: fakeApi(), limits: { memoryMb: 16, timeoutMs: 30_000 } }));
    expect(r.code).toBe('ERR_SCRIPT_MEMORY');
    const strings = 'let s = "x"; const keep = []; for (;;) { s += s; keep.push(s + Math.random()); }';
    expect((await refusal(runScript({ source: strings, api: fakeApi(), limits: { memoryMb: 16 } }))).code).toMatch(
      /^ERR_SCRIPT_(MEMORY|ERROR)$/, // V8 may refuse the string length (RangeError) before the heap fills
    );
    expect((await runScript({ source: 'return "still here"', api: fakeApi() })).result).toBe('still here');
  });

  it('reaches nothing of Node: no process, require, timers or import()', async () => {
    const probes = [
      'return typeof process',
      'return typeof require',
      'return typeof setTimeout',
      'return typeof globalThis.process',
      'return typeof module',
      'return typeof Buffer',
    ];
    for (const source of probes) expect((await runScript({ source, api: fakeApi() })).result, source).toBe('undefined');
    // The classic escapes from node:vm reach the Function of the isolate, whose global has no process.
    const escapes = [
      "return this.constructor.constructor('return process')()",
      "return (function () { return this })().constructor.constructor('return process')()",
      "return palisade.log.constructor('return process')()",
      "return palisade.integration('x', 'y').constructor.constructor('return process')()",
    ];
    for (const source of escapes) {
      const r = await refusal(runScript({ source, api: fakeApi() }));
      expect(r.message, source).toMatch(/^line \d+: process is not defined$/);
    }
    for (const spec of ["'fs'", "'node:child_process'", "'data:text/javascript,export default 1'"]) {
      const r = await refusal(runScript({ source: `await import(${spec}); return 'imported'`, api: fakeApi() }));
      expect(r.code).toBe('ERR_SCRIPT_ERROR');
    }
  });

  it('keeps nothing between runs', async () => {
    await runScript({ source: 'globalThis.leak = 42; Object.prototype.polluted = true; return 1', api: fakeApi() });
    const r = await runScript({ source: 'return [typeof globalThis.leak, typeof ({}).polluted]', api: fakeApi() });
    expect(r.result).toEqual(['undefined', 'undefined']);
  });

  it("names the script's line in a thrown error, and never the host's stack", async () => {
    const r = await refusal(
      runScript({ source: 'const a = 1;\n\nthrow new Error("no verdict for " + a);', api: fakeApi() }),
    );
    expect(r.code).toBe('ERR_SCRIPT_ERROR');
    expect(r.message).toBe('line 3: no verdict for 1');
    expect(r.message).not.toMatch(/node_modules|dist\/|at /);
    const notError = await refusal(runScript({ source: 'throw { reason: "x" }', api: fakeApi() }));
    expect(notError.message).toBe('{"reason":"x"}');
  });

  it("passes an api error's code and message, and hides a non-Palisade error's text", async () => {
    const api = fakeApi();
    const caught = await runScript({
      source: "try { await palisade.integration('missing', 'x') } catch (e) { return [e.code, e.message] }",
      api,
    });
    expect(caught.result).toEqual(['ERR_INTEGRATION_NOT_FOUND', 'no integration missing']);
    const uncaught = await refusal(runScript({ source: "\nawait palisade.integration('missing', 'x')", api }));
    expect(uncaught.message).toBe('line 2: ERR_INTEGRATION_NOT_FOUND: no integration missing');
    const hidden = await runScript({
      source: "try { await palisade.integration('broken', 'x') } catch (e) { return e.message }",
      api,
    });
    expect(hidden.result).toBe('palisade.integration failed');
  });

  it('refuses a syntax error with its line', async () => {
    const r = await refusal(runScript({ source: 'const a = 1;\nconst b = ;\n', api: fakeApi() }));
    expect(r.code).toBe('ERR_SCRIPT_SYNTAX');
    expect(r.message).toMatch(/^line 2, column \d+: /);
  });

  it('bounds the logs and the result', async () => {
    const logs = await runScript({ source: 'for (let i = 0; i < 1000; i++) palisade.log("line", i);', api: fakeApi() });
    expect(logs.logs).toHaveLength(SCRIPT_LOG_MAX_LINES);
    expect(logs.logsDropped).toBe(1000 - SCRIPT_LOG_MAX_LINES);
    const wide = await runScript({
      source: 'for (let i = 0; i < 100; i++) palisade.log("y".repeat(50000));',
      api: fakeApi(),
    });
    expect(wide.logs.join('').length).toBeLessThanOrEqual(64 * 1024);
    expect(wide.logs[0]).toHaveLength(8192);
    const big = await refusal(runScript({ source: `return "z".repeat(${SCRIPT_RESULT_MAX})`, api: fakeApi() }));
    expect(big.code).toBe('ERR_SCRIPT_RESULT_TOO_LARGE');
  });

  it('runs at most SCRIPT_MAX_CONCURRENT scripts at once, refusing more until one ends', async () => {
    const spinning = Array.from({ length: SCRIPT_MAX_CONCURRENT }, () =>
      refusal(runScript({ source: 'for (;;) {}', api: fakeApi(), limits: { timeoutMs: 500 } })),
    );
    const busy = await refusal(runScript({ source: 'return 1', api: fakeApi() }));
    expect(busy.code).toBe('ERR_SCRIPT_BUSY');
    expect((await Promise.all(spinning)).map((r) => r.code)).toEqual(spinning.map(() => 'ERR_SCRIPT_TIMEOUT'));
    expect((await runScript({ source: 'return 1', api: fakeApi() })).result).toBe(1);
  });

  it('queues a run that asks to (as a playbook task does) until a slot frees, its time limit starting then', async () => {
    const spinning = Array.from({ length: SCRIPT_MAX_CONCURRENT }, () =>
      refusal(runScript({ source: 'for (;;) {}', api: fakeApi(), limits: { timeoutMs: 400 } })),
    );
    // Each waits ~400 ms for a slot, longer than its own 200 ms limit: the limit counts its run, not its wait.
    const queued = [1, 2].map((n) =>
      runScript({ source: `return ${n}`, api: fakeApi(), wait: true, limits: { timeoutMs: 200 } }),
    );
    expect((await refusal(runScript({ source: 'return 0', api: fakeApi() }))).code).toBe('ERR_SCRIPT_BUSY');
    expect((await Promise.all(queued)).map((r) => r.result)).toEqual([1, 2]);
    expect((await Promise.all(spinning)).map((r) => r.code)).toEqual(spinning.map(() => 'ERR_SCRIPT_TIMEOUT'));
    expect((await runScript({ source: 'return 3', api: fakeApi() })).result).toBe(3);
  });

  it('refuses limits out of range', async () => {
    const r = await refusal(runScript({ source: 'return 1', api: fakeApi(), limits: { timeoutMs: 61_000 } }));
    expect(r.code).toBe('ERR_SCRIPT_LIMITS');
    const m = await refusal(runScript({ source: 'return 1', api: fakeApi(), limits: { memoryMb: 129 } }));
    expect(m.message).toMatch(/memoryMb: a whole number from 8 to 128/);
  });

  it('runs in an isolate made ahead (its slot held from then), used once; other limits drop it and run as usual', async () => {
    const ahead = await sandboxAhead();
    expect(ahead).toBeDefined();
    expect(scriptSlots().running).toBe(1);
    const r = await runScript({ source: 'return input * 2', input: 21, api: fakeApi(), ahead });
    expect(r.result).toBe(42);
    expect(ahead!.isolate.isDisposed).toBe(true);
    await expect.poll(() => scriptSlots().running).toBe(0);

    const other = await sandboxAhead();
    const r2 = await runScript({ source: 'return 1', api: fakeApi(), ahead: other, limits: { memoryMb: 16 } });
    expect(r2.result).toBe(1);
    expect(other!.isolate.isDisposed).toBe(true);
    await expect.poll(() => scriptSlots().running).toBe(0);
    // Refused limits give the slot back too.
    const third = await sandboxAhead();
    await refusal(runScript({ source: 'return 1', api: fakeApi(), ahead: third, limits: { timeoutMs: 1 } }));
    expect(scriptSlots().running).toBe(0);
  });
});
