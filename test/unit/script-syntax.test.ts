/**
 * Main's publish-time check of scripts (main/content/script-rules.ts): a body that compiles passes, whatever it
 * would do when run (main compiles and never runs it); one that does not is refused with ERR_SCRIPT_SYNTAX naming
 * the line counted from the body's first line, as the tenant's sandbox counts it; so is one that is not a function
 * body alone (it closes the function around it). No I/O.
 */
import { describe, expect, it } from 'vitest';
import { checkScriptSyntax, scriptRules } from '../../main/content/script-rules.js';
import type { ContentRules } from '../../main/content/library.js';

function refusal(body: string): { code: string; message: string; field?: string } {
  try {
    checkScriptSyntax(body);
  } catch (e) {
    return e as { code: string; message: string; field?: string };
  }
  throw new Error('compiled');
}

describe('script syntax at publish', () => {
  it('passes a body that compiles, await and return included, without running it', () => {
    expect(() => checkScriptSyntax('const r = await palisade.integration("a", "b", {});\nreturn r;')).not.toThrow();
    // Would loop forever, or reach for process, if it ran: compiling does neither.
    expect(() => checkScriptSyntax('for (;;) {}')).not.toThrow();
    expect(() => checkScriptSyntax('return process.exit(1)')).not.toThrow();
  });

  it('refuses a body that does not compile, naming the line of the body', () => {
    const e = refusal('const a = 1;\n\nconst b = ;');
    expect(e.code).toBe('ERR_SCRIPT_SYNTAX');
    expect(e.field).toBe('body');
    expect(e.message).toBe("body: line 3: the script does not compile: Unexpected token ';'");
    expect(refusal('let a;\nlet a;').message).toMatch(/^body: line 2: .*'a' has already been declared/);
    expect(refusal('return (').message).toMatch(/^body: line 1 \(its end\): the script does not compile: /);
    // Left open: the error is found past the body, at the wrapper's brace; it is named at the body's last line.
    expect(refusal('const x = 1;\nreturn {a: ').message).toBe(
      "body: line 2 (its end): the script does not compile: the body ends before what it opened is closed (Unexpected token '}')",
    );
  });

  it('refuses a body that closes its function to run code at the top level, which a wrapper would pass', () => {
    const e = refusal("}); JSON.stringify = () => 'X'; (async function () { return 1;");
    expect(e.code).toBe('ERR_SCRIPT_SYNTAX');
    expect(e.message).toMatch(/^body: the script does not compile: /);
    expect(refusal('return 1; }\n(async function () {').code).toBe('ERR_SCRIPT_SYNTAX');
  });

  it('checks only items of type script', async () => {
    const item = (type: string) => ({ type }) as unknown as Parameters<NonNullable<ContentRules['publishing']>>[0];
    await expect(scriptRules.publishing!(item('list'), 'not ( javascript')).resolves.toBeUndefined();
    await expect(scriptRules.publishing!(item('script'), 'not ( javascript')).rejects.toMatchObject({
      code: 'ERR_SCRIPT_SYNTAX',
    });
  });
});
