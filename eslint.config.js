// Lint: typescript-eslint recommended, plus the layering rule of DESIGN §1:
// main → common ← agent, installer → common; common imports neither; main and agent never import each other.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layer = (from, banned) => ({
  files: [`${from}/**/*.ts`],
  rules: {
    'no-restricted-imports': ['error', {
      patterns: banned.map((b) => ({ group: [`**/${b}/*`, `../${b}/*`, `../../${b}/*`, `#${b}/*`], message: `${from}/ must not import ${b}/ (DESIGN §1 layering)` })),
    }],
  },
});

export default tseslint.config(
  { ignores: ['dist/**', 'proto/gen/**', 'node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', URL: 'readonly', URLSearchParams: 'readonly' } },
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  layer('common', ['main', 'agent', 'installer']),
  layer('main', ['agent', 'installer']),
  layer('agent', ['main', 'installer']),
  layer('installer', ['main', 'agent']),
);
