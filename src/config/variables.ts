import { z } from 'zod';

export const DEVELOPMENT_JWT_SECRET = 'video-service-development-secret-do-not-use-in-production';
export const DEVELOPMENT_JITSI_SECRET = 'video-service-development-jitsi-secret';

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** The variables the service reads, with their defaults. The README documents each. */
export const schema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: int(0, 65535).default(8080),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SHUTDOWN_TIMEOUT_MS: int(100, 120_000).default(10_000),
  WATCH_MAX_STREAMS: int(1, 1_000_000).default(10_000),
  WATCH_MAX_STREAMS_PER_CALLER: int(1, 10_000).default(20),
  WATCH_KEEPALIVE_SECONDS: int(1, 3600).default(25),
  CORS_ALLOWED_ORIGINS: z.string().optional(),
  WEB_APP_DIR: z.string().min(1).default('web/dist'),
  HTTP_HEADERS_TIMEOUT_MS: int(100, 300_000).default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: int(100, 3_600_000).default(120_000),
  HTTP_IDLE_TIMEOUT_MS: int(100, 3_600_000).default(65_000),
  HTTP_MAX_CONNECTIONS: int(1, 1_000_000).default(4096),
  HTTP2_MAX_CONCURRENT_STREAMS: int(1, 10_000).default(128),
  HTTP2_MAX_SESSION_MEMORY_MB: int(1, 1024).default(10),
  DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// or postgresql:// URL' })
    .optional(),
  DATA_DIR: z.string().min(1).default('.data'),
  DATABASE_POOL_SIZE: int(1, 100).default(10),
  DATABASE_MIGRATION_URL: z
    .url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// or postgresql:// URL' })
    .optional(),
  DATABASE_ACQUIRE_TIMEOUT_MS: int(100, 120_000).default(3_000),
  DATABASE_STATEMENT_TIMEOUT_MS: int(0, 3_600_000).default(15_000),
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS: int(0, 3_600_000).default(15_000),
  READINESS_DATABASE_GRACE_MS: int(0, 600_000).default(10_000),
  MIGRATE_ON_START: bool.optional(),
  AUTH_JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  AUTH_PUBLIC_KEYS: z.string().min(1).optional(),
  AUTH_JWKS_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  AUTH_JWKS_COOLDOWN_SECONDS: int(1, 3600).default(30),
  AUTH_ISSUER: z.string().min(1).optional(),
  AUTH_AUDIENCE: z.string().min(1).optional(),
  AUTH_CLOCK_SKEW_SECONDS: int(0, 300).default(30),
  AUTH_FAILURE_LIMIT: int(0, 1_000_000).default(20),
  AUTH_FAILURE_WINDOW_SECONDS: int(1, 86_400).default(60),
  AUTH_MAX_TOKEN_LIFETIME_SECONDS: int(60, 30 * 86_400).default(86_400),
  PAGE_TOKEN_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  KAFKA_BROKERS: z
    .string()
    .regex(/^[^,\s]+:\d+(,[^,\s]+:\d+)*$/, 'must be host:port[,host:port…]')
    .optional(),
  KAFKA_CLIENT_ID: z.string().min(1).default('video-service'),
  KAFKA_TOPIC_PREFIX: z.string().default(''),
  KAFKA_TOPIC_PARTITIONS: int(1, 1000).default(3),
  KAFKA_REPLICATION_FACTOR: int(1, 10).default(1),
  KAFKA_CONSUMER_GROUP: z.string().min(1).default('video-service'),
  KAFKA_CONSUMER_MAX_ATTEMPTS: int(1, 100).default(5),
  KAFKA_CONSUMER_CONCURRENCY: int(1, 100).default(3),
  KAFKA_HEALTH_INTERVAL_MS: int(100, 60_000).default(5_000),
  EVENT_SOURCE: z.string().min(1).default('/video-service'),
  OUTBOX_POLL_INTERVAL_MS: int(5, 60_000).default(50),
  OUTBOX_BATCH_SIZE: int(1, 10_000).default(200),
  OUTBOX_LEASE_MS: int(1_000, 600_000).default(30_000),
  OPENVIDU_WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  OPENVIDU_WEBHOOK_HEADER: z.string().min(1).default('x-webhook-secret'),
  RATE_LIMIT_REQUESTS: int(0, 1_000_000).default(50),
  RATE_LIMIT_WINDOW_SECONDS: int(1, 3600).default(1),
  RATE_LIMIT_STORE: z.enum(['memory', 'postgres']).optional(),
  JOIN_WINDOW_BEFORE_MINUTES: int(0, 24 * 60).default(15),
  GRACE_AFTER_END_MINUTES: int(0, 24 * 60).default(15),
  MAX_IMAGE_BYTES: int(1024, 64 * 1024 * 1024).default(10 * 1024 * 1024),
  NO_SHOW_GRACE_MINUTES: int(0, 24 * 60).default(10),
  MAX_CONSULTATION_MINUTES: int(1, 24 * 60).default(180),
  SWEEP_INTERVAL_MS: int(100, 3_600_000).default(30_000),
  AUDIT_SEAL_INTERVAL_MS: int(100, 3_600_000).default(60_000),
  RECONCILE_INTERVAL_MS: int(100, 3_600_000).default(30_000),
  PROVIDER_DEFAULT: z.enum(['jitsi', 'openvidu']).default('jitsi'),
  PROVIDER_BY_CLINIC: z
    .string()
    .regex(
      /^[^=,\s]+=(jitsi|openvidu)(,[^=,\s]+=(jitsi|openvidu))*$/,
      'must be clinic=jitsi|openvidu[,clinic=…]',
    )
    .optional(),
  PROVIDER_FAILURES_TO_OPEN: int(1, 1000).default(3),
  PROVIDER_HALF_OPEN_AFTER_MS: int(100, 3_600_000).default(10_000),
  OPENVIDU_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  OPENVIDU_SECRET: z.string().min(1).optional(),
  OPENVIDU_TIMEOUT_MS: int(100, 120_000).default(5_000),
  JITSI_MODE: z.enum(['self-hosted', 'jaas']).default('self-hosted'),
  JITSI_JAAS_KEY_ID: z.string().min(1).optional(),
  JITSI_JAAS_PRIVATE_KEY: z.string().min(1).optional(),
  JITSI_DOMAIN: z.string().min(1).optional(),
  JITSI_APP_ID: z.string().min(1).default('video-service'),
  JITSI_APP_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  JITSI_AUDIENCE: z.string().min(1).default('jitsi'),
});

/** The names of every variable the service reads (for docs and docker-compose checks). */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(schema.shape);
