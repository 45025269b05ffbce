/**
 * The content rule of items of type `script`: a version is published only when its body compiles as the body of
 * the async function a tenant's sandbox runs (agent/tenant/scripts/script-sandbox.ts), refused otherwise with a
 * 400 naming the line. Syntax only: `new vm.Script` compiles without running anything, and main never runs a
 * customer's code — a script runs only inside a tenant, in its isolate. Drafts stay free text, as for
 * integrations (integration-rules.ts).
 */
import { Script } from 'node:vm';
import { BadParameterError } from '#common/errors.js';
import type { ContentRules } from './library.js';

/** The same wrapper and file name as the tenant's sandbox, so a line here is the line the tenant would name. */
const FILENAME = 'script.js';

export const scriptRules: ContentRules = {
  async publishing(item, body) {
    if (item.type === 'script') checkScriptSyntax(body);
  },
};

export function checkScriptSyntax(body: string): void {
  try {
    new Script(`(async function (input, palisade) {\n${body}\n})`, { filename: FILENAME, lineOffset: -1 });
  } catch (e) {
    // node:vm's SyntaxError carries its place as the first line of its stack: "script.js:LINE".
    const err = e as Error;
    const line = new RegExp(`^${FILENAME.replace('.', '\\.')}:(\\d+)`).exec(err.stack ?? '')?.[1];
    throw new BadParameterError(
      'ERR_SCRIPT_SYNTAX',
      `body: ${line ? `line ${line}: ` : ''}the script does not compile: ${err.message}`,
      { field: 'body' },
    );
  }
}
