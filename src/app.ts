import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { file_grpc_health_v1_health } from '../gen/grpc/health/v1/health_pb.js';
import { file_grpc_reflection_v1_reflection } from '../gen/grpc/reflection/v1/reflection_pb.js';
import { file_grpc_reflection_v1alpha_reflection } from '../gen/grpc/reflection/v1alpha/reflection_pb.js';
import { file_video_v1_events } from '../gen/video/v1/events_pb.js';
import { file_video_v1_video_service, VideoService } from '../gen/video/v1/video_service_pb.js';
import { createTokenVerifier } from './auth/jwt.js';
import type { Config } from './config.js';
import { type Clock, systemClock } from './domain/ports.js';
import { createMetrics } from './http/metrics.js';
import { createOpenViduWebhookReceiver, MAX_WEBHOOK_BYTES } from './http/openvidu-webhooks.js';
import { createReadiness } from './http/readiness.js';
import { createHttpServer } from './http/server.js';
import { loadWebApp } from './http/web-app.js';
import { startMessaging } from './messaging/messaging.js';
import { sealAuditTrail } from './persistence/audit-seals.js';
import { openDatabase } from './persistence/database.js';
import { createConfiguredProviders } from './providers/configured-providers.js';
import { createHealthRoutes } from './rpc/health-service.js';
import {
  createAuthInterceptor,
  createDeadlineInterceptor,
  createErrorInterceptor,
  createLoggingInterceptor,
  createRateLimitInterceptor,
  createValidationInterceptor,
} from './rpc/interceptors.js';
import {
  memoryRateLimitStore,
  postgresRateLimitStore,
  type RateLimitStore,
  type WindowCounter,
} from './rpc/rate-limit.js';
import { createReflectionRoutes } from './rpc/reflection-service.js';
import { createVideoRoutes } from './rpc/video-routes.js';
import { createTracingInterceptor } from './tracing.js';
import { createAttendance } from './video/attendance.js';
import { startChangeFeed } from './video/change-feed.js';
import { createOutboxSignal } from './video/events.js';
import { createPageTokens } from './video/pagination.js';
import { periodicTask } from './video/periodic-task.js';
import { createReconciler } from './video/reconciler.js';
import { createSweeper } from './video/sweeper.js';
import type { UseCaseDeps } from './video/use-case.js';
import { createWatching } from './video/watching.js';

export interface App {
  /** The bound port (the configured one, or the OS's pick for port 0). */
  readonly port: number;
  stop(): Promise<void>;
}

/** Waits for a part to stop until the deadline; past it, logs and goes on without it. */
async function withinDeadline(
  part: string,
  stopping: Promise<void>,
  deadline: number,
  logger: Logger,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), Math.max(0, deadline - Date.now()));
  });
  const outcome = await Promise.race([
    stopping.then(
      () => 'stopped' as const,
      (error: unknown) => {
        logger.warn({ err: error, part }, 'shutdown: a part failed to stop');
        return 'failed' as const;
      },
    ),
    late,
  ]);
  clearTimeout(timer);
  if (outcome === 'late') logger.warn({ part }, 'shutdown deadline: not waiting for this part');
}

/** Room for the protobuf envelope around the largest image. */
const MESSAGE_OVERHEAD_BYTES = 64 * 1024;

/**
 * The composition root: every component built with plain factory calls, started in
 * order, stopped in reverse. `main.ts` and the end-to-end tests both start the service
 * through here.
 */
export async function startApp(
  config: Config,
  logger: Logger,
  clock: Clock = systemClock,
): Promise<App> {
  const database = await openDatabase(config, logger);
  try {
    if (config.database.migrateOnStart) {
      const applied = await database.migrate();
      if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    }

    const providers = createConfiguredProviders(config.providers, clock);
    const jitsi = config.providers.jitsi;
    if (jitsi.mode === 'self-hosted' && jitsi.usesDevelopmentSecret) {
      logger.warn(
        'Jitsi provider in development mode: tokens signed with the development app secret',
      );
    }
    const pageTokens = createPageTokens(config.pageTokens.secret);
    // Its sources are read at each scrape, by then all started.
    const metrics = createMetrics({
      outbox: () => messaging.backlog(),
      kafkaConnected: () => messaging.connected(),
      databasePool: () => database.status().pool,
      watchStreams: () => watching.openStreams(),
      providers: async () =>
        (await providers.statuses())
          .filter((p) => p.configured)
          .map((p) => ({ name: p.name, healthy: p.healthy })),
    });
    const shutdown = new AbortController();
    const feed = await startChangeFeed(database.notifications, logger);
    const watching = createWatching(feed, shutdown.signal, config.watch, (lagMs) =>
      metrics.watchDelivered(lagMs),
    );
    const outbox = createOutboxSignal();
    const useCases: UseCaseDeps = {
      orm: database.orm,
      providers,
      clock,
      logger,
      rules: config.consultation,
      pageTokens,
      onReplay: metrics.unitOfWorkReplay,
      onRefusalNotAudited: metrics.refusalNotAudited,
      watching,
      outbox,
    };

    const verifier = createTokenVerifier({
      hs256Secret: config.auth.hs256Secret,
      publicKeys: config.auth.publicKeys,
      jwksUrl: config.auth.jwksUrl,
      jwksCooldownSeconds: config.auth.jwksCooldownSeconds,
      issuer: config.auth.issuer,
      audience: config.auth.audience,
      clockSkewSeconds: config.auth.clockSkewSeconds,
      maxLifetimeSeconds: config.auth.maxTokenLifetimeSeconds,
    });
    if (config.auth.usesDevelopmentSecret) {
      logger.warn(
        'AUTH_JWT_SECRET is not set: accepting tokens signed with the development secret',
      );
    }

    const messaging = startMessaging(config, { orm: database.orm, useCases, logger, outbox });
    const attendance = createAttendance({ orm: database.orm, clock, logger });
    const openViduWebhooks = createOpenViduWebhookReceiver({
      // Without a configured secret nothing can match: every webhook is refused.
      secret: config.openVidu.webhookSecret ?? randomUUID(),
      headerName: config.openVidu.webhookHeader,
      attendance,
      logger,
      // Through the registry, so the lookups count for OpenVidu's breaker and status.
      recordingStatus: config.providers.openVidu && providers.get('openvidu').recording?.status,
      onOutcome: (outcome) => metrics.attendanceReport('webhook', outcome),
    });
    const sweeper = createSweeper({
      orm: database.orm,
      providers,
      clock,
      logger,
      rules: config.consultation,
      intervalMs: config.consultation.sweepIntervalMs,
    });
    sweeper.start();
    const reconciler = createReconciler({
      orm: database.orm,
      providers,
      attendance,
      clock,
      logger,
      intervalMs: config.consultation.reconcileIntervalMs,
      onOutcome: (outcome) => metrics.attendanceReport('reconciler', outcome),
    });
    reconciler.start();
    const sealer = periodicTask(
      'audit sealer',
      config.consultation.auditSealIntervalMs,
      logger,
      async () => {
        for (const seal of await sealAuditTrail(database.pool())) {
          logger.info(
            { seq: seal.seq, entries: seal.entries, hash: seal.hash.toString('hex') },
            'audit trail sealed',
          );
        }
      },
    );
    sealer.start();

    const readiness = createReadiness({
      database,
      backlog: () => messaging.backlog(),
      // Read at every ask: whether the broker answers now, not whether one is configured.
      get kafka() {
        return messaging.connected();
      },
    });
    const ready = () => readiness.ready();
    const limits = rateLimits(
      config,
      config.rateLimit.store === 'postgres'
        ? postgresRateLimitStore(database.pool(), logger)
        : memoryRateLimitStore(),
    );
    const server = createHttpServer({
      host: config.host,
      port: config.port,
      // The largest image in base64 (Connect and REST JSON), with room for the rest.
      readMaxBytes: Math.ceil(config.consultation.maxImageBytes / 3) * 4 + MESSAGE_OVERHEAD_BYTES,
      uploadMaxBytes: config.consultation.maxImageBytes,
      restServices: [VideoService],
      cors: config.cors,
      webApp: await loadWebApp(config.webAppDir, logger),
      limits: config.http,
      ready,
      details: () => readiness.details(),
      webhooks: {
        '/webhooks/openvidu': {
          maxBytes: MAX_WEBHOOK_BYTES,
          receive: (request) => openViduWebhooks.receive(request),
        },
      },
      metrics: {
        contentType: metrics.registry.contentType,
        render: () => metrics.registry.metrics(),
      },
      logger,
      interceptors: [
        createTracingInterceptor(),
        metrics.interceptor,
        createLoggingInterceptor(logger),
        createDeadlineInterceptor(),
        createErrorInterceptor(logger),
        createAuthInterceptor(verifier, limits.failures),
        createRateLimitInterceptor(limits.calls),
        createValidationInterceptor({
          maxImageBytes: config.consultation.maxImageBytes,
          now: () => clock.now(),
        }),
      ],
      routes: (router) => {
        createVideoRoutes(useCases)(router);
        createHealthRoutes({
          check: ready,
          services: [VideoService.typeName],
          shutdownSignal: shutdown.signal,
        })(router);
        createReflectionRoutes([
          file_video_v1_video_service,
          file_video_v1_events,
          file_grpc_health_v1_health,
          file_grpc_reflection_v1_reflection,
          file_grpc_reflection_v1alpha_reflection,
        ])(router);
      },
    });
    const port = await server.start();
    logger.info({ port, host: config.host }, 'listening');

    return {
      port,
      async stop() {
        logger.info('shutting down');
        shutdown.abort();
        // SHUTDOWN_TIMEOUT_MS bounds the whole stop: calls drain for most of it, and what
        // is left closes the other parts, each given up on when the time is over.
        const deadline = Date.now() + config.shutdownTimeoutMs;
        const closing = Math.min(2_000, Math.floor(config.shutdownTimeoutMs / 4));
        await server.stop(config.shutdownTimeoutMs - closing);
        const parts: [string, () => Promise<void>][] = [
          ['webhooks', () => openViduWebhooks.drain()],
          ['sweeper', () => sweeper.stop()],
          ['reconciler', () => reconciler.stop()],
          ['audit sealer', () => sealer.stop()],
          ['messaging', () => messaging.stop()],
        ];
        for (const [part, stop] of parts) await withinDeadline(part, stop(), deadline, logger);
        // The database closes last, whatever is left: its connections are released anyway.
        await withinDeadline('database', database.stop(), deadline + closing, logger);
        logger.info('stopped');
      },
    };
  } catch (error) {
    await database.stop();
    throw error;
  }
}

/** The per-caller limit and the failed-authentication limit; either off at 0. */
function rateLimits(
  config: Config,
  store: RateLimitStore,
): { calls?: WindowCounter; failures?: WindowCounter } {
  const { requests, windowSeconds } = config.rateLimit;
  const { limit, windowSeconds: failureWindowSeconds } = config.auth.failures;
  return {
    calls:
      requests > 0
        ? store.counter({ name: 'calls', blockAt: requests + 1, windowSeconds })
        : undefined,
    failures:
      limit > 0
        ? store.counter({
            name: 'auth-failures',
            blockAt: limit,
            windowSeconds: failureWindowSeconds,
          })
        : undefined,
  };
}
