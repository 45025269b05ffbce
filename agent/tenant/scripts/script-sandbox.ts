/**
 * Runs one content item of type `script` in a V8 isolate of its own (isolated-vm) inside the tenant process:
 * `runScript({source, input, api, limits})` → `{result, logs, durationMs}`. The script is the body of an async
 * function of `input` and `palisade` (the prelude builds it, script-prelude.ts); it reaches nothing but the
 * caller's `api`: no require, process, timers, file system or network exist in its isolate. Values cross as JSON
 * copies.
 * The playbook runner and the tenant's "run a script" route (script-routes.ts) call it; it knows no route,
 * store or audit log.
 *
 * Why isolated-vm: node:vm shares the tenant's heap and intrinsics and is documented as no security boundary;
 * vm2 was discontinued after escapes it could not fix; a worker_thread has the process' own capabilities
 * (fs, net, process.binding). An isolate has its own heap and nothing of Node in it.
 * What it does not isolate: it is the same process, so a V8 bug can escape it (the tenant's OS user and its
 * host's isolation are then the boundary); memoryMb bounds the isolate's heap, not the tenant process (a
 * determined script may use 2-3× before V8 stops it, and script-admission.ts bounds how many run at once and their
 * memoryMb together); CPU
 * is bounded only by the wall-clock timeout, which disposes the isolate.
 *
 * A fresh isolate per run rather than a fresh context in a pooled one: contexts of one isolate share its heap
 * and its memory limit, so one run's garbage or a hostile run's exhaustion would reach the next. Creating
 * an isolate and its context costs ~2-3 ms on the 2-core development machine (1.7-2.8 ms warm), a whole run of
 * `return input + 1` ~4.6 ms (mean of 200: isolate, context, prelude, compile, run, dispose), small next to a
 * script that calls an integration.
 */
import type IsolatedVM from 'isolated-vm';
import { BadParameterError, RunFailedError, TooLargeError, UnavailableError } from '#common/errors.js';
import { admitNow, admitScript } from './script-admission.js';
import { hostCalls, SCRIPT_CALL_ARGS_MAX, SCRIPT_CALLS_IN_FLIGHT_MAX } from './script-host-calls.js';
import {
  PRELUDE_FILENAME,
  PRELUDE_SOURCE,
  SCRIPT_CODE_RE,
  SCRIPT_FILENAME,
  type ScriptOutcome,
} from './script-prelude.js';

/** The host side of `palisade`: async callbacks (plain functions do for tests); each gets and returns copies. */
export interface ScriptApi {
  integration(instance: string, command: string, args: unknown): Promise<unknown>;
  incident: { get(): Promise<unknown>; update(patch: unknown): Promise<unknown> };
  context: { get(path: string): unknown; set(path: string, value: unknown): unknown };
}

export interface ScriptLimits {
  timeoutMs?: number;
  memoryMb?: number;
}

export interface ScriptRun {
  result: unknown;
  logs: string[];
  /** Log lines past the bounds (count or bytes), not kept. */
  logsDropped: number;
  durationMs: number;
}

/**
 * Wall clock: 5 s default for an enrichment step, 60 s at most (main's relay waits 30 s for a tenant's answer,
 * so the route caps it lower; a playbook runner may use the whole minute). Heap: 32 MB default; 128 MB at most,
 * since a tenant process runs within its host budget (256 MB by default) and isolates are outside its V8 heap limit;
 * 8 MB is isolated-vm's minimum.
 */
export const SCRIPT_LIMITS = Object.freeze({
  timeoutMs: { default: 5_000, min: 10, max: 60_000 },
  memoryMb: { default: 32, min: 8, max: 128 },
});
/** 256 KiB of JSON: a result lands in a playbook's context or an HTTP answer, not a data set. */
export const SCRIPT_RESULT_MAX = 256 * 1024;
/** Logs are for reading by a person: 200 lines, 64 KiB in all (a line is cut at 8 KiB in the isolate). */
export const SCRIPT_LOG_MAX_LINES = 200;
export const SCRIPT_LOG_MAX_BYTES = 64 * 1024;
/** The characters of a script's error message kept (the prelude cuts it too). */
const SCRIPT_MESSAGE_MAX = 2000;

let loaded: Promise<typeof IsolatedVM> | undefined;

/** The addon loads on the first run, so a tenant whose addon is broken still serves everything but scripts. */
function isolatedVm(): Promise<typeof IsolatedVM> {
  // V8's shared read-only heap crashes the process when isolates of different snapshots meet (isolated-vm's
  // README; its issue 420), so the tenant is forked with --no-node-snapshot (agent/host/tenant-process.ts).
  if (!process.execArgv.includes('--no-node-snapshot'))
    return Promise.reject(
      new UnavailableError('ERR_SCRIPT_UNAVAILABLE', 'scripts need a process started with --no-node-snapshot', {
        retryable: false,
      }),
    );
  loaded ??= import('isolated-vm').then(
    (m) => m.default,
    (e: unknown) => {
      loaded = undefined;
      throw new UnavailableError('ERR_SCRIPT_UNAVAILABLE', `the script sandbox does not load: ${String(e)}`, {
        retryable: false,
        cause: e,
      });
    },
  );
  return loaded;
}

export function checkScriptLimits(limits: ScriptLimits = {}): Required<ScriptLimits> {
  const out = {
    timeoutMs: limits.timeoutMs ?? SCRIPT_LIMITS.timeoutMs.default,
    memoryMb: limits.memoryMb ?? SCRIPT_LIMITS.memoryMb.default,
  };
  for (const k of ['timeoutMs', 'memoryMb'] as const) {
    const { min, max } = SCRIPT_LIMITS[k];
    if (!Number.isInteger(out[k]) || out[k] < min || out[k] > max)
      throw new BadParameterError('ERR_SCRIPT_LIMITS', `limits.${k}: a whole number from ${min} to ${max}`, {
        field: `limits.${k}`,
      });
  }
  return out;
}

/**
 * A fresh isolate and its empty context, made before the script that will use them is known, holding a sandbox
 * slot (script-admission.ts) from the start: a playbook run makes one while an integration task waits for its
 * service when a script task follows (playbooks/sandbox-lookahead.ts), so the ~4 ms of making them overlap that
 * wait. Used by one runScript, or dropped: never two scripts in one isolate (the header's reason).
 */
export interface SandboxAhead {
  readonly isolate: IsolatedVM.Isolate;
  readonly context: IsolatedVM.Context;
  /** The prelude's maker, evaluated in `context` (it binds nothing of a run until applied). */
  readonly maker: PreludeMaker;
  readonly memoryMb: number;
  readonly release: () => void;
}

/** A SandboxAhead of the default limits, or undefined when no slot is free now or the sandbox does not load. */
export async function sandboxAhead(): Promise<SandboxAhead | undefined> {
  const memoryMb = SCRIPT_LIMITS.memoryMb.default;
  const ivm = await isolatedVm().catch(() => undefined);
  const release = ivm && admitNow(memoryMb);
  if (!release) return undefined;
  let isolate: IsolatedVM.Isolate | undefined;
  try {
    isolate = new ivm.Isolate({ memoryLimit: memoryMb, onCatastrophicError: catastrophic });
    const context = await isolate.createContext();
    return { isolate, context, maker: await preludeMaker(context), memoryMb, release };
  } catch {
    if (isolate && !isolate.isDisposed) isolate.dispose();
    release();
    return undefined;
  }
}

/** Gives back a SandboxAhead that no script will use: its isolate is disposed and its slot freed. */
export function dropSandbox(a: SandboxAhead): void {
  if (!a.isolate.isDisposed) a.isolate.dispose();
  a.release();
}

export async function runScript(o: {
  source: string;
  input?: unknown;
  api: ScriptApi;
  limits?: ScriptLimits;
  /** Wait in the tenant's queue for a slot (a playbook's task) rather than be refused with ERR_SCRIPT_BUSY. */
  wait?: boolean;
  /** An isolate made ahead for this run (its slot is this run's); dropped if `limits` ask for another memoryMb. */
  ahead?: SandboxAhead;
}): Promise<ScriptRun> {
  let ahead = o.ahead;
  let limits: Required<ScriptLimits>;
  let ivm: typeof IsolatedVM;
  let inputJson: string;
  try {
    limits = checkScriptLimits(o.limits);
    inputJson = JSON.stringify(o.input ?? null);
    ivm = await isolatedVm();
  } catch (e) {
    if (ahead) dropSandbox(ahead);
    throw e;
  }
  if (ahead && (ahead.memoryMb !== limits.memoryMb || ahead.isolate.isDisposed)) {
    dropSandbox(ahead);
    ahead = undefined;
  }
  const release = ahead ? ahead.release : await admitScript(limits.memoryMb, o.wait ?? false);
  let isolate: IsolatedVM.Isolate;
  try {
    isolate = ahead?.isolate ?? new ivm.Isolate({ memoryLimit: limits.memoryMb, onCatastrophicError: catastrophic });
  } catch (e) {
    release();
    throw e;
  }
  const logs = new LogSink();
  const started = performance.now();
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  // The clock covers compiling too: a pathological source can take long to parse.
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      isolate.dispose(); // stops a loop, or an Atomics.wait, inside the isolate wherever it is
      reject(timeoutError(limits.timeoutMs));
    }, limits.timeoutMs);
  });
  const calls = hostCalls(o.api, () => timedOut || isolate.isDisposed);
  const run = (async () => {
    const context = ahead?.context ?? (await isolate.createContext());
    const start = await prelude(ivm, ahead?.maker ?? (await preludeMaker(context)), calls.call, logs);
    const answer = (await start.apply(undefined, [o.source, inputJson], { result: { promise: true } })) as string;
    return outcome(answer, () => syntaxAt(isolate, o.source));
  })();
  run.catch(() => undefined); // the deadline may win; what the disposed isolate then throws is not news
  try {
    const result = await Promise.race([run, deadline]);
    return { result, ...logs.taken(), durationMs: Math.round(performance.now() - started) };
  } catch (e) {
    if (timedOut) throw timeoutError(limits.timeoutMs);
    // Disposed, and not by the deadline: isolated-vm disposes an isolate that passes its memory limit.
    if (isolate.isDisposed)
      throw new RunFailedError('ERR_SCRIPT_MEMORY', `the script used more than its ${limits.memoryMb} MB of memory`);
    throw e;
  } finally {
    clearTimeout(timer);
    if (!isolate.isDisposed) isolate.dispose();
    // Calls a script started without awaiting may still act for it: its slot is free only when they have ended.
    void calls.settled().then(release);
  }
}

function timeoutError(ms: number): RunFailedError {
  return new RunFailedError('ERR_SCRIPT_TIMEOUT', `the script ran past its ${ms} ms and was stopped`, {
    retryable: false,
  });
}

/**
 * The line of a body that did not parse as a function body. V8's AsyncFunction constructor names no place, so
 * the body is compiled (never run) inside the text of a function, only to find it. If that compiles, the body
 * closes the wrapper: it is no function body, whatever V8 then says.
 */
async function syntaxAt(isolate: IsolatedVM.Isolate, source: string): Promise<BadParameterError> {
  try {
    await isolate.compileScript(`(async function (input, palisade) {\n${source}\n})`, {
      filename: SCRIPT_FILENAME,
      lineOffset: -1,
    });
  } catch (e) {
    return syntaxError(e, source.split('\n').length);
  }
  return new BadParameterError('ERR_SCRIPT_SYNTAX', 'the body is not a function body alone', { field: 'body' });
}

/**
 * V8's SyntaxError as isolated-vm reports it: "MESSAGE [script.js:LINE:COL]". Only this text carries the line;
 * the message is V8's, never the host's.
 */
export function syntaxError(e: unknown, bodyLines = Infinity): BadParameterError {
  const text = e instanceof Error ? e.message : String(e);
  const at = /\s*\[script\.js:(\d+):(\d+)\]$/.exec(text);
  const message = at ? text.slice(0, at.index) : text;
  // Past the body's last line: the wrapper's closing brace found what the body left open (a brace, a string…).
  if (at && Number(at[1]) > bodyLines)
    return new BadParameterError(
      'ERR_SCRIPT_SYNTAX',
      `line ${bodyLines} (its end): the body ends before what it opened is closed (${message})`,
      { field: 'body' },
    );
  const where = at ? `line ${at[1]}, column ${at[2]}: ` : '';
  return new BadParameterError('ERR_SCRIPT_SYNTAX', `${where}${message}`, { field: 'body' });
}

type PreludeMaker = IsolatedVM.Reference;

/** The prelude's source evaluated in `context`: the function that builds a run's `palisade` and its entry point. */
function preludeMaker(context: IsolatedVM.Context): Promise<PreludeMaker> {
  return context.eval(PRELUDE_SOURCE, { reference: true, filename: PRELUDE_FILENAME }) as Promise<PreludeMaker>;
}

async function prelude(
  ivm: typeof IsolatedVM,
  make: PreludeMaker,
  call: (op: string, argsJson: string) => Promise<string>,
  logs: LogSink,
) {
  const args = [SCRIPT_RESULT_MAX, SCRIPT_CALL_ARGS_MAX, SCRIPT_CALLS_IN_FLIGHT_MAX];
  return (await make.apply(
    undefined,
    [new ivm.Reference(call), new ivm.Callback((line: string) => logs.add(line)), ...args],
    { result: { reference: true } },
  )) as IsolatedVM.Reference<(body: string, inputJson: string) => Promise<string>>;
}

/**
 * The script's answer: its value, or the typed error of what it threw. The prelude bounds the code and message;
 * they are bounded again here, since what a run answers lands in an HTTP answer, a run record and a timeline.
 */
async function outcome(answer: string, locate: () => Promise<BadParameterError>): Promise<unknown> {
  const o = JSON.parse(answer) as ScriptOutcome;
  if (o.ok) return o.value;
  if (o.syntax) throw await locate();
  const message = String(o.message).slice(0, SCRIPT_MESSAGE_MAX);
  if (o.tooLarge)
    throw new TooLargeError(
      'ERR_SCRIPT_RESULT_TOO_LARGE',
      `the script's result is more than ${SCRIPT_RESULT_MAX} characters of JSON (${message})`,
    );
  const where = Number.isInteger(o.line) ? `line ${o.line}: ` : '';
  const code = typeof o.code === 'string' && SCRIPT_CODE_RE.test(o.code) ? `${o.code}: ` : '';
  throw new RunFailedError('ERR_SCRIPT_ERROR', `${where}${code}${message}`);
}

/** Log lines up to SCRIPT_LOG_MAX_LINES and SCRIPT_LOG_MAX_BYTES; the rest are counted. */
class LogSink {
  private readonly lines: string[] = [];
  private bytes = 0;
  private dropped = 0;

  add(line: string): void {
    const text = String(line).slice(0, 8192);
    const size = Buffer.byteLength(text);
    if (this.lines.length >= SCRIPT_LOG_MAX_LINES || this.bytes + size > SCRIPT_LOG_MAX_BYTES) this.dropped++;
    else {
      this.lines.push(text);
      this.bytes += size;
    }
  }

  taken(): { logs: string[]; logsDropped: number } {
    return { logs: this.lines, logsDropped: this.dropped };
  }
}

/** isolated-vm's word that V8 lost control of an isolate: nothing in this process can be trusted to go on. */
function catastrophic(message: string): void {
  process.stderr.write(`script sandbox: catastrophic V8 error, aborting: ${message}\n`);
  process.abort();
}
