import { defineConfig } from 'vitest/config';

/**
 * The unit tests of the code that Stryker mutates (stryker.config.mjs), and no others.
 *
 * - Unit tests only: the `integration` project needs PostgreSQL and a Kafka broker, and
 *   Stryker's vitest runner takes a config file, not a project name.
 * - Only the mutated code's own tests: a mutant in a module-level table (the permission
 *   table, the state machine) is "static", and Stryker runs every test that imports the
 *   module for it. Through `DomainError` that is half the unit suite, token-verification
 *   tests with real waits included, which made a run take over nine minutes instead of about
 *   three. The domain's rules are to be pinned down by the domain's own tests anyway; a test
 *   left out here can only lower the score, never raise it.
 */
export default defineConfig({
  test: {
    name: 'unit',
    include: [
      'test/unit/domain-*.test.ts',
      'test/unit/{access,attendance,consultation,medical-image}.test.ts',
      'test/unit/{pagination,keyset-page}.test.ts',
    ],
  },
});
