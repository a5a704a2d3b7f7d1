// @ts-check
/**
 * Mutation testing (docs/mutation-testing.md): `npm run test:mutation`.
 * The domain rules and the pure decision code beside the use cases, tested by the unit
 * tests alone (vitest.mutation.config.ts), so a run needs no database and no broker.
 *
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  mutate: [
    'src/domain/**/*.ts',
    // Page sizes and page tokens: pure, and the list use cases page with nothing else.
    'src/video/pagination.ts',
  ],
  // Stryker copies the project into a sandbox and reads no .gitignore: these are the ignored
  // folders that exist on a working machine (toolchains, data, a running broker's files).
  ignorePatterns: [
    'dist',
    '.tools',
    '.data',
    'coverage',
    'scripts/kafka/lib',
    'scripts/kafka/run',
    '*.log',
  ],
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts' },
  coverageAnalysis: 'perTest',
  checkers: ['typescript'],
  // The mutated files and their tests: type-checking the whole service for every mutant
  // took most of a run's time, and broke with anyone's unfinished edit elsewhere.
  tsconfigFile: 'tsconfig.mutation.json',
  // Two cores, shared with whatever else runs on the machine.
  concurrency: 2,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  // `break`: the run fails below it. Every mutant in src/domain is killed or explained in
  // docs/mutation-testing.md; the margin is the page code's untested lines. A drop means a
  // rule lost its test, or new decision code came without one.
  thresholds: { high: 95, low: 90, break: 85 },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
