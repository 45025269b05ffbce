/**
 * The layering lint rules (eslint.config.js) fire: deliberate violations, linted as if they were files of
 * the source tree, are refused with the layering message, and allowed imports are not. It runs the
 * repository's own ESLint config through ESLint's Node API (the one unit test that reads a file: the config);
 * the linted text is never written anywhere.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ESLint } from 'eslint';

/** The repository root: this file runs as dist/test/unit/import-rules.test.js. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const eslint = new ESLint({ cwd: ROOT });

/** The layering messages ESLint reports for `source` as the file `file` (relative to the root). */
async function layering(file: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: join(ROOT, file) });
  // No parse error or "file ignored" notice (ruleId null): the text really went through the rules.
  expect(
    result.messages.filter((m) => m.ruleId === null),
    file,
  ).toEqual([]);
  return result.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

/** A module that imports `from` and uses it, so only the import itself can be at fault. */
const importing = (from: string) => `import * as m from '${from}';\nexport const used = m;\n`;

/** [file, import, the layering message expected] */
const REFUSED: [string, string, string][] = [
  [
    'agent/tenant/probe.ts',
    '../engine/allow-list.js',
    'agent/tenant/ must not import engine/ (a tenant never imports host or engine code)',
  ],
  ['agent/tenant/probe.ts', '../host/engine-listener.js', 'agent/tenant/ must not import host/'],
  [
    'agent/engine/probe.ts',
    '../tenant/local-addresses.js',
    'agent/engine/ must not import tenant/ (an engine never imports host or tenant code)',
  ],
  ['agent/host/probe.ts', '../engine/engine-role.js', 'agent/host/ must not import engine/'],
  [
    'agent/tunnel/probe.ts',
    '../tenant/tunnel-endpoint.js',
    'agent/tunnel/ must not import tenant/ (the tunnel stack serves every role and imports none)',
  ],
  ['agent/tenant/probe.ts', '../../main/config.js', 'agent/tenant/ must not import main/'],
  ['main/probe.ts', '../agent/agent.js', 'main/ must not import agent/ (layering: docs/architecture.md)'],
  ['main/agents/probe.ts', '../../agent/agent.js', 'main/ must not import agent/'],
  ['admin/probe.ts', '../main/config.js', 'admin/ must not import main/ (layering: docs/architecture.md)'],
  ['installer/probe.ts', '../admin/cli.js', 'installer/ must not import admin/'],
  ['common/probe.ts', '../main/x.js', 'common/ must not import main/ (layering: docs/architecture.md)'],
  ['common/probe.ts', '../agent/tunnel/stream-mux.js', 'common/ must not import agent/'],
];

/** [file, import] that the layering allows. */
const ALLOWED: [string, string][] = [
  ['common/probe.ts', '#common/address.js'],
  ['common/probe.ts', './ip-address.js'],
  ['agent/tenant/probe.ts', '#common/ip-address.js'],
  ['agent/tenant/probe.ts', '../tunnel/stream-mux.js'],
  ['agent/tenant/probe.ts', './local-addresses.js'],
  ['agent/engine/probe.ts', '../command-runner.js'],
  ['main/probe.ts', '#common/errors.js'],
  ['admin/probe.ts', './rest-client.js'],
  ['test/unit/probe.test.ts', '../../agent/engine/allow-list.js'],
];

describe('layering lint rules', () => {
  it('refuse each import across layers or agent roles, saying which rule it breaks', async () => {
    for (const [file, from, message] of REFUSED) {
      const messages = await layering(file, importing(from));
      expect(messages.length, `${file} ← ${from}`).toBe(1);
      expect(messages[0], `${file} ← ${from}`).toContain(message);
    }
  });

  it('let the imports the layering allows through', async () => {
    for (const [file, from] of ALLOWED) expect(await layering(file, importing(from)), `${file} ← ${from}`).toEqual([]);
  });
});
