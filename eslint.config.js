// ESLint: rules that catch bugs; formatting is Prettier's (eslint-config-prettier turns off the rules that
// would fight it). TypeScript is linted with type information from tsconfig.json (the project service).
// player/*.js are classic browser scripts outside the TypeScript project: plain rules, browser globals.
import js from '@eslint/js';
import stylistic from '@stylistic/eslint-plugin';
import { defineConfig } from 'eslint/config';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// tsc's noUnusedLocals flags unused locals and imports but not parameters or catch bindings; match it.
const unusedVars = ['error', { args: 'none', caughtErrors: 'none', ignoreRestSiblings: true }];

export default defineConfig(
  { ignores: ['node_modules/', 'data/', 'dist/', 'coverage/', 'scratch/', 'bench/results/'] },
  js.configs.recommended,
  { rules: { 'no-unused-vars': unusedVars, eqeqeq: ['error', 'smart'] } },
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // On top of recommendedTypeChecked (which has no-floating-promises, no-misused-promises, await-thenable,
      // only-throw-error, unbound-method, no-base-to-string...):
      // a check that the types say can never matter is either dead code or a type that lies. Note that
      // tsconfig has noUncheckedIndexedAccess off, so `arr[i] === undefined` and `record[k] ?? x` are reported
      // too: keep such a check and give the value its true type (`T | undefined`), do not delete it.
      '@typescript-eslint/no-unnecessary-condition': 'error',
      // A switch over a union that forgets a member; `default:` counts as handling the rest.
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      // `return promise` inside try/catch skips the catch; outside one, awaiting is optional.
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      // Spreading a Promise, a Map or a class instance into an object silently copies nothing useful.
      '@typescript-eslint/no-misused-spread': 'error',
      // Passing on a rejection as it came (an abort signal's reason, a caught error) is not a bug.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
      // @tus/server answers a hook's thrown `{ status_code, body }` object; that one shape may be thrown.
      '@typescript-eslint/only-throw-error': [
        'error',
        { allow: [{ from: 'file', name: 'TusError', path: 'src/vod/uploads/intake.ts' }], allowRethrowing: true },
      ],
      '@typescript-eslint/no-unused-vars': unusedVars,
      // Off: an async function without await is style, not a bug, and Fastify needs plugins and hooks to be
      // async (a non-async hook with a `done` parameter is a different contract), so "fixing" it breaks them.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Tests and benches read JSON answers (`await res.json()`, JSON.parse) as `any` and then assert on them:
    // the no-unsafe-* rules report every property read of those (about 1,300 findings) without finding bugs
    // the assertions would not. src/ keeps them.
    files: ['test/**/*.ts', 'bench/**/*.ts', 'harness/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // Test fixtures are declared `let srv: TestServer` and set in beforeAll; afterAll's `srv?.stop()` guards a
    // beforeAll that threw, which the types cannot say. That is nearly every finding of this rule in test/
    // (37 of 43); the rest are harmless `?? ''` on values the types call defined.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-unnecessary-condition': 'off' },
  },
  {
    files: ['player/**/*.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser, Hls: 'readonly' } },
  },
  {
    files: ['eslint.config.js'],
    languageOptions: { globals: globals.node },
  },
  prettier,
  {
    // Prettier wraps code at printWidth but leaves comments and strings alone; hold comments to the same width.
    // Lines with a string, template literal, URL or regexp are exempt (Prettier cannot break those either).
    plugins: { '@stylistic': stylistic },
    rules: {
      '@stylistic/max-len': [
        'error',
        { code: 140, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreUrls: true, ignoreRegExpLiterals: true },
      ],
    },
  },
);
