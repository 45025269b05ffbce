// Writes docs/errors.md from the error table (common/error-codes.ts, read from the built dist/), so the
// codes users see are documented from the one place the code takes them. `npm run docs:errors` builds
// first; test/integration/error-codes.test.ts renders with renderErrorDocs and fails when the committed file differs.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ERROR_DOCS = join(root, 'docs', 'errors.md');

/** Table cells are one line of Markdown: `|` would end the cell and `<` would open HTML. */
const cell = (text) => text.replace(/\|/g, '\\|').replace(/</g, '&lt;');

/**
 * The Markdown of docs/errors.md from the error-codes module (`table`), the CLI's `exitCodeFor` (of an error
 * with that category) and the WebSocket close codes (`wsClose`, errors.js WS_CLOSE).
 */
export function renderErrorDocs({ table, exitCodeFor, wsClose }) {
  const { CATEGORY_STATUS, ERROR_SECTIONS, ERROR_CODE_FAMILIES, ERROR_CODES } = table;
  const lines = [
    '# Error codes',
    '',
    '<!-- Generated from common/error-codes.ts by `npm run docs:errors`; edit the table, not this file. -->',
    '',
    `Every error Palisade reports carries a stable code; here are all ${Object.keys(ERROR_CODES).length} of them.`,
    'Branch on the code, never on the message: messages explain the case at hand and may change.',
    '',
    '- **REST** (main\'s API and a tenant\'s): the status below and `{"error": {"code": "…", "message": "…"}}`;',
    '  429 and 503 answers may carry `Retry-After`.',
    '- **WebSocket** (agents): an `Error` frame with the code, then a close code:',
    ...closeCodeLines(wsClose),
    '- **CLI**: one line `palisade: MESSAGE (CODE)` on stderr, or `{"error": {…}}` on stdout with `--json`;',
    '  the exit status follows the category.',
    '- **Logs and audit rows** name the code in a `code` field.',
    '',
    '| Category | HTTP status | CLI exit |',
    '|---|---|---|',
    ...Object.entries(CATEGORY_STATUS).map(([category, n]) => `| ${category} | ${n} | ${exitCodeFor({ category })} |`),
  ];
  for (const [title, rows] of Object.entries(ERROR_SECTIONS)) {
    lines.push('', `## ${title}`, '', '| Code | Status | Category | Meaning |', '|---|---|---|---|');
    for (const [code, r] of Object.entries(rows)) {
      lines.push(`| \`${code}\` | ${r.status} | ${r.category} | ${cell(r.message)} |`);
    }
  }
  lines.push('', '## Codes made from an HTTP status', '', '| Code | Meaning |', '|---|---|');
  for (const [prefix, meaning] of Object.entries(ERROR_CODE_FAMILIES)) {
    lines.push(`| \`${prefix}<status>\` | ${cell(meaning)} |`);
  }
  return `${lines.join('\n')}\n`;
}

/** The close codes as `1000 normal, …`, wrapped to lines of at most 120 characters. */
function closeCodeLines(wsClose) {
  const lines = [];
  for (const item of Object.entries(wsClose).map(([name, n]) => `${n} ${name}`)) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + item.length + 2 <= 120) lines[last] += `, ${item}`;
    else {
      if (last >= 0) lines[last] += ',';
      lines.push(`  ${item}`);
    }
  }
  lines[lines.length - 1] += '.';
  return lines;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const load = (path) => import(pathToFileURL(join(root, 'dist', 'common', path)).href);
  const modules = await Promise.all(['error-codes.js', 'cli-output.js', 'errors.js'].map(load));
  const [table, { exitCodeFor }, { WS_CLOSE }] = modules;
  writeFileSync(ERROR_DOCS, renderErrorDocs({ table, exitCodeFor, wsClose: WS_CLOSE }));
  process.stdout.write(`wrote ${ERROR_DOCS}\n`);
}
