/**
 * Starts the service: configuration → app → serve → graceful shutdown on SIGTERM/SIGINT.
 * With no configuration at all it runs on one machine: embedded PostgreSQL engine,
 * Jitsi provider with development secrets, development token secret.
 */
import { startApp } from './app.js';
import { ConfigError, loadConfig, redactedConfig } from './config.js';
import { createLogger } from './logger.js';
import { startTracing } from './tracing.js';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`video-service: ${error.message}\n`);
    process.exit(1);
  }
  throw error;
}

const logger = createLogger(config.logLevel);
logger.debug({ config: redactedConfig(config) }, 'configuration');
const tracing = await startTracing(process.env, logger);

const app = await startApp(config, logger).catch((error: unknown) => {
  logger.fatal({ err: error }, 'could not start');
  process.exit(1);
});

if (config.env !== 'production') {
  const base = `http://127.0.0.1:${app.port}`;
  process.stderr.write(
    [
      '',
      `video-service is ready on ${base} (Connect, gRPC, gRPC-Web and REST on one port)`,
      `API reference: ${base}/docs (OpenAPI: ${base}/openapi.json)`,
      '',
      'Mint a development token:',
      '  npm run token -- --role doctor --user d1 --clinic c1',
      '',
      'Then call it, for example:',
      `  curl -s ${base}/video.v1.VideoService/GetProviderStatus \\`,
      `    -H "Authorization: Bearer $(npm run -s token -- --role doctor --user d1 --clinic c1)" \\`,
      `    -H 'Content-Type: application/json' -d '{}'`,
      '',
    ].join('\n'),
  );
}

/** stop() keeps to SHUTDOWN_TIMEOUT_MS; this is for a part that ignores its deadline. */
const HARD_EXIT_MARGIN_MS = 1_000;
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'signal received');
    // The last word on the exit's timing, whatever a dependency does while it is closed.
    setTimeout(() => {
      logger.error({ timeoutMs: config.shutdownTimeoutMs }, 'shutdown took too long: exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs + HARD_EXIT_MARGIN_MS).unref();
    app.stop().then(
      // What the last calls traced is exported before the exit.
      () => tracing.stop().finally(() => process.exit(0)),
      (error: unknown) => {
        logger.error({ err: error }, 'unclean shutdown');
        process.exit(1);
      },
    );
  });
}
