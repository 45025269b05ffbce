// Lint: typescript-eslint recommended, plus the layering of the code (docs/architecture.md):
//   main → common ← agent;  installer → common;  admin → common;  everything → proto;
//   common imports none of them; main, agent, installer and admin never import each other.
// Inside agent/, each role keeps to itself: host, tenant and engine share only agent/ itself (connection,
// enrolment, command runner), agent/tunnel/ (the tunnel stack) and agent/integrations/ (what integrations do,
// run by a tenant or an engine), which import no role.
// test/ and bench/ may import anything.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** `from` (a folder) must not import any of `banned` (folders, relative to the repository root). */
const layer = (from, banned, why) => ({
  files: [`${from}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: banned.map((b) => ({
          group: [`**/${b}/*`, `#${b}/*`],
          message: `${from}/ must not import ${b}/ (${why})`,
        })),
      },
    ],
  },
});
const LAYERS = 'layering: docs/architecture.md';

export default tseslint.config(
  { ignores: ['dist/**', 'proto/gen/**', 'node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        URL: 'readonly',
        URLSearchParams: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Readable lines: prettier wraps code at 120 columns; what it cannot wrap (long strings, URLs) is allowed.
      'max-len': [
        'error',
        { code: 120, ignoreUrls: true, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true },
      ],
      // One concern per file: past ~400 lines of code a module does several things (split it by concern).
      'max-lines': ['error', { max: 400, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    // The one table of error codes is a list, not logic: every code in one file, by section, is the point of it
    // (docs/errors.md is generated from it). It grows by a few rows per feature.
    files: ['common/error-codes.ts'],
    rules: { 'max-lines': ['error', { max: 700, skipBlankLines: true, skipComments: true }] },
  },
  layer('common', ['main', 'agent', 'installer', 'admin'], LAYERS),
  layer('main', ['agent', 'installer', 'admin'], LAYERS),
  layer('agent', ['main', 'installer', 'admin'], LAYERS),
  layer('installer', ['main', 'agent', 'admin'], LAYERS),
  layer('admin', ['main', 'agent', 'installer'], LAYERS),
  // The web console runs in a browser and knows main only through its REST API, like the admin CLI.
  layer('console', ['main', 'agent', 'installer', 'admin', 'common'], LAYERS),
  { ...layer('console', ['main', 'agent', 'installer', 'admin', 'common'], LAYERS), files: ['console/**/*.tsx'] },
  // Roles inside agent/ (later entries for the same files replace earlier ones, so each repeats the outer ban).
  layer('agent/tenant', ['main', 'installer', 'admin', 'engine', 'host'], 'a tenant never imports host or engine code'),
  layer(
    'agent/engine',
    ['main', 'installer', 'admin', 'tenant', 'host'],
    'an engine never imports host or tenant code',
  ),
  layer('agent/host', ['main', 'installer', 'admin', 'tenant', 'engine'], 'a host never imports tenant or engine code'),
  layer(
    'agent/tunnel',
    ['main', 'installer', 'admin', 'tenant', 'engine', 'host'],
    'the tunnel stack serves every role and imports none',
  ),
  layer(
    'agent/integrations',
    ['main', 'installer', 'admin', 'tenant', 'engine', 'host'],
    'integrations run in a tenant or an engine and import neither',
  ),
  // Unit tests do no I/O: a test that needs sockets, files, processes or a real store is in test/integration/.
  {
    files: ['test/unit/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...['fs', 'fs/promises', 'net', 'tls', 'http', 'https', 'dgram', 'child_process'].flatMap((m) => [
              m,
              `node:${m}`,
            ]),
            'level',
            'ws',
          ].map((name) => ({ name, message: 'unit tests do no I/O: put this test in test/integration/' })),
          patterns: [
            {
              group: ['**/harness/processes*', '**/harness/deployment*'],
              message: 'unit tests do no I/O: put this test in test/integration/',
            },
          ],
        },
      ],
    },
  },
);
