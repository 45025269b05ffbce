/**
 * The code the sandbox runs inside each script's isolate before the script: it builds the `palisade` object
 * from the two host functions it is handed (an async call and a log line) and returns the `start` function
 * that runs the script and answers one JSON string. Everything that crosses the boundary is a JSON string,
 * so the host only ever parses text and the script only ever gets copies; no isolated-vm object (Reference,
 * Callback) stays where the script could reach it — they live in this closure only.
 * Not a security boundary by itself: the isolate is (script-sandbox.ts). This only shapes the API and keeps
 * the script's own mistakes (a value JSON cannot hold, a thrown non-Error) readable.
 */

/** What `start` answers, as JSON: the script's value, or what it threw with the line it was thrown from. */
export type ScriptOutcome =
  { ok: true; value: unknown } | { ok: false; message: string; code?: string; line?: number; tooLarge?: boolean };

/** What the host's call function answers, as JSON. */
export type HostAnswer = { ok: true; value: unknown } | { ok: false; code: string; message: string };

/** The script's file name in stack traces and compile errors: lines are counted from its first line. */
export const SCRIPT_FILENAME = 'script.js';

/**
 * A function expression, run once per isolate with (hostCall, hostLog, resultMax). Intrinsics are taken
 * before the script runs, so a script that replaces JSON or String.prototype changes only its own values.
 * A thrown value's line is read from its stack, the frame in SCRIPT_FILENAME nearest the throw.
 */
export const PRELUDE_SOURCE = `(function (hostCall, hostLog, resultMax) {
  'use strict';
  const stringify = JSON.stringify, parse = JSON.parse, freeze = Object.freeze;
  const StringOf = String, ErrorOf = Error;
  const match = Function.prototype.call.bind(RegExp.prototype.exec);
  const slice = Function.prototype.call.bind(String.prototype.slice);
  const lineRe = /${SCRIPT_FILENAME.replace('.', '\\.')}:(\\d+):\\d+/;
  const json = (what, v) => {
    let s;
    try { s = stringify(v === undefined ? null : v); } catch (e) {
      throw new TypeError(what + ' must be JSON (' + StringOf(e && e.message) + ')');
    }
    if (s === undefined) throw new TypeError(what + ' must be JSON, not a function or symbol');
    return s;
  };
  const call = async (op, args) => {
    const answer = parse(await hostCall.apply(undefined, [op, json('the arguments of palisade.' + op, args)], {
      arguments: { copy: true }, result: { promise: true, copy: true } }));
    if (answer.ok) return answer.value;
    const e = new ErrorOf(answer.message);
    e.code = answer.code;
    throw e;
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
    try { const m = match(lineRe, StringOf(e && e.stack)); return m ? Number(m[1]) : undefined; } catch { return undefined; }
  };
  return async (fn, inputJson) => {
    let out;
    try {
      out = '{"ok":true,"value":' + json('the result', await fn(parse(inputJson), palisade)) + '}';
    } catch (e) {
      let message;
      try { message = e instanceof ErrorOf ? StringOf(e.message) : text(e); } catch { message = 'a value that cannot be shown'; }
      const code = e && typeof e.code === 'string' ? e.code : undefined;
      return stringify({ ok: false, message: slice(message, 0, 2000), code, line: lineOf(e) });
    }
    if (out.length > resultMax) return stringify({ ok: false, tooLarge: true, message: 'result of ' + out.length + ' characters' });
    return out;
  };
})`;
