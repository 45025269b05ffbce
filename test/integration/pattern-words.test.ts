/**
 * Every `pattern` in a schema of main's API or a tenant's (and the common schemas they share) has words for its 400
 * (common/pattern-text.ts): no answer quotes a regex back. Reads the source, as error-codes.test.ts does: a new
 * route with a pattern of another shape fails here until its constant is given words with describedPattern.
 */
import { describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describePattern, UNDESCRIBED } from '#common/pattern-text.js';
// The modules that give their patterns words, so those words are registered as they are on main and in a tenant.
import '#common/names.js';
import '#common/events.js';
import '#common/content.js';
import '#common/integration-definition.js';
import '../../main/search/fanout.js';
import '../../agent/tenant/events/event-store.js';
import '../../agent/tenant/integration-routes.js';
import { REPO } from '../harness/processes.js';

const DIRS = ['main/http', 'agent/tenant', 'common'];
const LITERAL = String.raw`'((?:[^'\\]|\\.)*)'`;

/** Each schema pattern in the source: quoted in place, or a constant of the tree defined with a literal. */
function schemaPatterns(): Map<string, string> {
  const texts = DIRS.flatMap((dir) =>
    readdirSync(join(REPO, dir), { recursive: true, encoding: 'utf8' })
      .filter((f) => f.endsWith('.ts'))
      .map((f) => ({ file: join(dir, f), text: readFileSync(join(REPO, dir, f), 'utf8') })),
  );
  const constants = new Map<string, string>();
  const constant = new RegExp(String.raw`\b([A-Z][A-Z0-9_]*) = (?:describedPattern\(\s*)?` + LITERAL, 'g');
  for (const { text } of texts) for (const m of text.matchAll(constant)) constants.set(m[1], m[2]);
  const found = new Map<string, string>();
  const use = new RegExp(String.raw`\bpattern: (?:${LITERAL}|([A-Z][A-Z0-9_]*)\b)`, 'g');
  for (const { file, text } of texts) {
    for (const m of text.matchAll(use)) {
      const source = m[1] ?? constants.get(m[2]);
      if (source === undefined) continue; // a constant made at run time (a template): checked by registration
      found.set(source.replace(/\\\\/g, '\\'), `${file}: ${m[0]}`);
    }
  }
  return found;
}

describe('schema patterns in words', () => {
  it('describes every pattern a route schema uses', () => {
    const patterns = schemaPatterns();
    expect(patterns.size).toBeGreaterThan(20);
    const undescribed = [...patterns].filter(([source]) => describePattern(source) === UNDESCRIBED);
    expect(undescribed).toEqual([]);
    for (const source of patterns.keys()) expect(describePattern(source)).not.toMatch(/\^|\$$|\[.*\]|\{\d|\(\?/);
  });
});
