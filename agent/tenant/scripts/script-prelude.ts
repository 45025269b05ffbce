/**
 * The code the sandbox runs inside each script's isolate before the script: it builds the `palisade` object
 * from the two host functions it is handed (an async call and a log line) and returns the `start` function
 * that builds the script from its body and runs it, and answers one JSON string. The body becomes a function with
 * the AsyncFunction constructor taken here, before any of the script exists: V8 parses it as a function body
 * alone, so no text of it can close a wrapper and run at the top level before this prelude. Everything that
 * crosses the boundary is a JSON string, so the host only ever parses text and the script only ever gets
 * copies; no isolated-vm object (Reference, Callback) stays where the script could reach it — they live in
 * this closure only.
 * Not a security boundary by itself: the isolate is (script-sandbox.ts). This only shapes the API and keeps
 * the script's own mistakes (a value JSON cannot hold, a thrown non-Error) readable.
 */

/** What `start` answers, as JSON: the script's value, or what it threw with the line it was thrown from. */
export type ScriptOutcome =
  | { ok: true; value: unknown }
  | { ok: false; message: string; code?: string; line?: number; tooLarge?: boolean; syntax?: boolean };

/** What the host's call function answers, as JSON. */
export type HostAnswer = { ok: true; value: unknown } | { ok: false; code: string; message: string };

/** The script's file name in compile errors: lines are counted from its first line. */
export const SCRIPT_FILENAME = 'script.js';
/** The prelude's own file name in stacks, so its frames are never taken for the script's. */
export const PRELUDE_FILENAME = 'palisade-prelude.js';
/** A code a script's error may carry to its caller: a stable name, not a payload. */
export const SCRIPT_CODE_RE = /^[A-Z0-9_]{1,64}$/;

/**
 * A function expression, run once per isolate with (hostCall, hostLog, resultMax, argsMax, inFlightMax).
 * Intrinsics are taken before the script runs, so a script that replaces JSON, Promise or String.prototype
 * changes only its own values. A call's arguments over argsMax are refused here, so they never reach the host;
 * calls past inFlightMax wait here, in the isolate's own bounded heap (the host refuses more, in case).
 * A thrown value's line is read from its stack: the frame of the function the AsyncFunction constructor made
 * (`<anonymous>:LINE:COL`) nearest the throw, less the two lines of the header V8 puts before the body.
 */
export const PRELUDE_SOURCE = `(function (hostCall, hostLog, resultMax, argsMax, inFlightMax) {
  'use strict';
  const stringify = JSON.stringify, parse = JSON.parse, freeze = Object.freeze;
  const StringOf = String, ErrorOf = Error, PromiseOf = Promise;
  const AsyncFunction = (async function () {}).constructor;
  const match = Function.prototype.call.bind(RegExp.prototype.exec);
  const slice = Function.prototype.call.bind(String.prototype.slice);
  const lineRe = /<anonymous>:(\\d+):\\d+\\)/;
  const codeRe = /${SCRIPT_CODE_RE.source}/;
  const json = (what, v) => {
    let s;
    try { s = stringify(v === undefined ? null : v); } catch (e) {
      throw new TypeError(what + ' must be JSON (' + StringOf(e && e.message) + ')');
    }
    if (s === undefined) throw new TypeError(what + ' must be JSON, not a function or symbol');
    return s;
  };
  const fail = (code, message) => { const e = new ErrorOf(message); e.code = code; return e; };
  // The calls waiting for one of inFlightMax places: a list of own-property nodes, so a script that patches
  // Array.prototype cannot reach it.
  let active = 0, head = null, tail = null;
  const acquire = () => {
    if (active < inFlightMax) { active++; return undefined; }
    return new PromiseOf((resolve) => {
      const node = { resolve, next: null };
      if (tail) tail.next = node; else head = node;
      tail = node;
    });
  };
  const release = () => {
    if (!head) { active--; return; }
    const node = head;
    head = node.next;
    if (!head) tail = null;
    node.resolve();
  };
  const call = async (op, args) => {
    const argsJson = json('the arguments of palisade.' + op, args);
    if (argsJson.length > argsMax)
      throw fail('ERR_SCRIPT_ARGS_TOO_LARGE', 'palisade.' + op + ': arguments over ' + argsMax + ' characters of JSON');
    await acquire();
    let answer;
    try {
      answer = parse(await hostCall.apply(undefined, [op, argsJson], {
        arguments: { copy: true }, result: { promise: true, copy: true } }));
    } finally { release(); }
    if (answer.ok) return answer.value;
    throw fail(answer.code, answer.message);
  };
  const text = (v) => {
    if (typeof v === 'string') return v;
    try { const s = stringify(v); return s === undefined ? StringOf(v) : s; } catch { return StringOf(v); }
  };
  const palisade = freeze({
    integration: (instance, command, args) => call('integration', [instance, command, args === undefined ? {} : args]),
    incident: freeze({ get: () => call('incident.get', []), update: (patch) => call('incident.update', [patch]) }),
    context: freeze({ get: (path) => call('context.get', [path]), set: (path, value) => call('context.set', [path, value]) }),
    log: (...values) => {
      let line = '';
      for (let i = 0; i < values.length; i++) line += (i ? ' ' : '') + text(values[i]);
      hostLog(slice(line, 0, 8192));
    },
  });
  const lineOf = (e) => {
    try { const m = match(lineRe, StringOf(e && e.stack)); return m ? Number(m[1]) - 2 : undefined; } catch { return undefined; }
  };
  const codeOf = (e) => {
    try { const c = e && e.code; return typeof c === 'string' && c.length <= 64 && match(codeRe, c) ? c : undefined; }
    catch { return undefined; }
  };
  return async (body, inputJson) => {
    let fn, out;
    try { fn = new AsyncFunction('input', 'palisade', body); } catch (e) {
      return stringify({ ok: false, syntax: true, message: slice(StringOf(e && e.message), 0, 2000) });
    }
    try {
      out = '{"ok":true,"value":' + json('the result', await fn(parse(inputJson), palisade)) + '}';
    } catch (e) {
      let message;
      try { message = e instanceof ErrorOf ? StringOf(e.message) : text(e); } catch { message = 'a value that cannot be shown'; }
      return stringify({ ok: false, message: slice(message, 0, 2000), code: codeOf(e), line: lineOf(e) });
    }
    if (out.length > resultMax) return stringify({ ok: false, tooLarge: true, message: 'result of ' + out.length + ' characters' });
    return out;
  };
})`;
