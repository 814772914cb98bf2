// ESLint: correctness rules for TypeScript, with the typed rules that catch async mistakes (a
// promise nobody awaits, a promise where a value belongs). Formatting is Prettier's; the
// architecture (layers, import cycles) is dependency-cruiser's (.dependency-cruiser.cjs).

import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', '.bench/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: {
        projectService: { allowDefaultProject: ['*.mjs', '*.cjs', 'console/*.js'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    // The console's browser script (console/): plain JS for the browser, no Node.
    files: ['console/**/*.js'],
    languageOptions: { globals: globals.browser, sourceType: 'script' },
  },
  {
    // Tests read JSON answers loosely.
    files: ['test/**', 'bench/**', 'src/**/*.test.ts', 'src/**/fake.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // CommonJS where a consumer needs it (autocannon's worker threads require their hooks).
    files: ['**/*.cjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  prettier,
  {
    // After Prettier's config, which turns it off: comments stay within 100 columns too (Prettier
    // does not wrap them); long strings, URLs and regular expressions may run on.
    rules: {
      'max-len': [
        'error',
        {
          code: 100,
          ignoreStrings: true,
          ignoreTemplateLiterals: true,
          ignoreUrls: true,
          ignoreRegExpLiterals: true,
        },
      ],
    },
  },
);
