/**
 * The content rule of items of type `script`: a version is published only when its body parses as the body of the
 * async function a tenant's sandbox builds (agent/tenant/scripts/script-prelude.ts), refused otherwise with a 400
 * naming the line. Syntax only: main never runs a customer's code — a script runs only inside a tenant, in its
 * isolate. The body is parsed as a function body alone, by the AsyncFunction constructor of a fresh vm context
 * (constructing the function runs none of it), as the tenant does: text that would close a wrapper function and
 * run at the top level is refused. Drafts stay free text, as for integrations (integration-rules.ts).
 */
import { runInNewContext, Script } from 'node:vm';
import { BadParameterError } from '#common/errors.js';
import type { ContentRules } from './library.js';

/** The same file name as the tenant's sandbox, so a line here is the line the tenant would name. */
const FILENAME = 'script.js';

type AsyncFunctionConstructor = new (...params: string[]) => unknown;
/** Of a context of its own, so no body could touch main's intrinsics even if constructing ran anything. */
let asyncFunction: AsyncFunctionConstructor | undefined;

export const scriptRules: ContentRules = {
  async publishing(item, body) {
    if (item.type === 'script') checkScriptSyntax(body);
  },
};

export function checkScriptSyntax(body: string): void {
  asyncFunction ??= runInNewContext('(async function () {}).constructor') as AsyncFunctionConstructor;
  try {
    new asyncFunction('input', 'palisade', body);
  } catch (e) {
    const line = lineOf(body);
    // Past the body's last line: the wrapper's closing brace found what the body left open (a brace, a string…).
    const last = body.split('\n').length;
    const where = line === undefined ? '' : Number(line) > last ? `line ${last} (its end): ` : `line ${line}: `;
    const why =
      Number(line) > last
        ? `the body ends before what it opened is closed (${(e as Error).message})`
        : (e as Error).message;
    throw new BadParameterError('ERR_SCRIPT_SYNTAX', `body: ${where}the script does not compile: ${why}`, {
      field: 'body',
    });
  }
}

/**
 * The line of a body's syntax error: the AsyncFunction constructor names none, so the body is compiled (never run)
 * inside the text of a function only to find it. Undefined when that compiles: the body closes the wrapper.
 */
function lineOf(body: string): string | undefined {
  try {
    new Script(`(async function (input, palisade) {\n${body}\n})`, { filename: FILENAME, lineOffset: -1 });
  } catch (e) {
    // node:vm's SyntaxError carries its place as the first line of its stack: "script.js:LINE".
    return new RegExp(`^${FILENAME.replace('.', '\\.')}:(\\d+)`).exec((e as Error).stack ?? '')?.[1];
  }
  return undefined;
}
