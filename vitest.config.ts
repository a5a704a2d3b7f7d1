import { defineConfig } from 'vitest/config';

/**
 * Two tiers: `unit` (pure logic and in-memory RPC, no I/O) and `integration` (real
 * PostgreSQL or the embedded engine, the real server, a real Kafka broker, a real Zipkin).
 */
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.int.test.ts'],
          globalSetup: [
            'test/support/kafka-global-setup.ts',
            'test/support/zipkin-global-setup.ts',
            'test/support/embedded-template-setup.ts',
          ],
          testTimeout: 30_000,
          hookTimeout: 300_000,
          // Two cores: keep database-heavy files from starving each other.
          maxWorkers: 2,
          // kafkajs's known negative timer, as `npm start` and `npm run serve` run
          // (README, "Running it in production"): every other warning still prints.
          execArgv: ['--disable-warning=TimeoutNegativeWarning'],
        },
      },
    ],
  },
});
