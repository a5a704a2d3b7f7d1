import { createPublicKey } from 'node:crypto';
import type { Config } from './config/settings.js';
import {
  corsPolicy,
  deepFreeze,
  derivedPageTokenSecret,
  isPrivateKey,
  pemBlocks,
} from './config/values.js';
import { DEVELOPMENT_JITSI_SECRET, DEVELOPMENT_JWT_SECRET, schema } from './config/variables.js';
import type { ProviderName } from './domain/consultation.js';

export type { Config } from './config/settings.js';
export type { CorsPolicy } from './config/values.js';
export {
  CONFIG_VARIABLES,
  DEVELOPMENT_JITSI_SECRET,
  DEVELOPMENT_JWT_SECRET,
} from './config/variables.js';

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment; throws a ConfigError listing every problem at once. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input = Object.fromEntries(
    Object.entries(env).filter(([key, value]) => key in schema.shape && value !== ''),
  );
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`),
    );
  }
  const e = parsed.data;
  const problems: string[] = [];
  const publicKeys = pemBlocks(e.AUTH_PUBLIC_KEYS);
  if (e.AUTH_PUBLIC_KEYS && publicKeys.length === 0) {
    problems.push('AUTH_PUBLIC_KEYS: no "-----BEGIN PUBLIC KEY-----" block found');
  }
  for (const [i, pem] of publicKeys.entries()) {
    try {
      const type = createPublicKey(pem).asymmetricKeyType;
      if (type !== 'rsa' && type !== 'ec')
        problems.push(`AUTH_PUBLIC_KEYS: key ${i + 1} is ${type}, not RSA or EC`);
    } catch {
      problems.push(`AUTH_PUBLIC_KEYS: key ${i + 1} is not a readable PEM public key`);
    }
  }
  const hasKeyMaterial = Boolean(e.AUTH_JWT_SECRET || publicKeys.length > 0 || e.AUTH_JWKS_URL);
  if (e.JITSI_MODE === 'jaas') {
    if (!e.JITSI_JAAS_KEY_ID) problems.push('JITSI_JAAS_KEY_ID: required when JITSI_MODE=jaas');
    if (!e.JITSI_JAAS_PRIVATE_KEY) {
      problems.push('JITSI_JAAS_PRIVATE_KEY: required when JITSI_MODE=jaas');
    } else if (!isPrivateKey(e.JITSI_JAAS_PRIVATE_KEY.replaceAll('\\n', '\n'))) {
      problems.push('JITSI_JAAS_PRIVATE_KEY: not a readable PEM private key');
    }
  }
  const byClinic: Record<string, ProviderName> = Object.fromEntries(
    (e.PROVIDER_BY_CLINIC?.split(',') ?? []).map(
      (pair) => pair.split('=') as [string, ProviderName],
    ),
  );
  if (e.OPENVIDU_URL && !e.OPENVIDU_SECRET) {
    problems.push('OPENVIDU_SECRET: required with OPENVIDU_URL');
  }
  if (e.OPENVIDU_SECRET && !e.OPENVIDU_URL) {
    problems.push('OPENVIDU_URL: required with OPENVIDU_SECRET');
  }
  if (!e.OPENVIDU_URL) {
    if (e.PROVIDER_DEFAULT === 'openvidu') {
      problems.push('PROVIDER_DEFAULT: openvidu needs OPENVIDU_URL and OPENVIDU_SECRET');
    }
    const clinics = Object.keys(byClinic).filter((clinic) => byClinic[clinic] === 'openvidu');
    if (clinics.length > 0) {
      problems.push(
        `PROVIDER_BY_CLINIC: ${clinics.join(', ')} use openvidu, which needs OPENVIDU_URL and OPENVIDU_SECRET`,
      );
    }
  }
  if (e.DATABASE_MIGRATION_URL && !e.DATABASE_URL) {
    problems.push('DATABASE_MIGRATION_URL: needs DATABASE_URL (the embedded engine has one role)');
  } else if (
    e.DATABASE_MIGRATION_URL &&
    e.DATABASE_URL &&
    new URL(e.DATABASE_MIGRATION_URL).pathname !== new URL(e.DATABASE_URL).pathname
  ) {
    problems.push('DATABASE_MIGRATION_URL: must name the same database as DATABASE_URL');
  }
  if (e.NODE_ENV === 'production') {
    if (!hasKeyMaterial) {
      problems.push('AUTH_JWT_SECRET, AUTH_PUBLIC_KEYS or AUTH_JWKS_URL: required in production');
    }
    if (!e.AUTH_ISSUER) problems.push('AUTH_ISSUER: required in production');
    if (!e.AUTH_AUDIENCE) problems.push('AUTH_AUDIENCE: required in production');
    if (!e.JITSI_APP_SECRET && e.JITSI_MODE === 'self-hosted') {
      problems.push('JITSI_APP_SECRET: required in production');
    }
    if (!e.DATABASE_URL) problems.push('DATABASE_URL: required in production');
    if (!e.PAGE_TOKEN_SECRET) {
      problems.push('PAGE_TOKEN_SECRET: required in production (the same on every copy)');
    }
  }
  if (e.RATE_LIMIT_STORE === 'postgres' && !e.DATABASE_URL) {
    problems.push(
      'RATE_LIMIT_STORE: postgres needs DATABASE_URL (the embedded engine is one copy)',
    );
  }
  const cors = corsPolicy(e.CORS_ALLOWED_ORIGINS, e.NODE_ENV, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  return deepFreeze({
    env: e.NODE_ENV,
    host: e.HOST,
    port: e.PORT,
    logLevel: e.LOG_LEVEL,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    watch: {
      maxStreams: e.WATCH_MAX_STREAMS,
      maxStreamsPerCaller: e.WATCH_MAX_STREAMS_PER_CALLER,
      keepAliveMs: e.WATCH_KEEPALIVE_SECONDS * 1000,
    },
    cors,
    webAppDir: e.WEB_APP_DIR,
    http: {
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      idleTimeoutMs: e.HTTP_IDLE_TIMEOUT_MS,
      maxConnections: e.HTTP_MAX_CONNECTIONS,
      maxConcurrentStreams: e.HTTP2_MAX_CONCURRENT_STREAMS,
      maxSessionMemoryMb: e.HTTP2_MAX_SESSION_MEMORY_MB,
    },
    database: {
      url: e.DATABASE_URL,
      dataDir: e.DATA_DIR,
      // Migrations run at start for the embedded engine; a real database opts in.
      migrateOnStart: e.MIGRATE_ON_START ?? e.DATABASE_URL === undefined,
      poolSize: e.DATABASE_POOL_SIZE,
      migrationUrl: e.DATABASE_MIGRATION_URL,
      acquireTimeoutMs: e.DATABASE_ACQUIRE_TIMEOUT_MS,
      statementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
      idleInTransactionTimeoutMs: e.DATABASE_IDLE_IN_TRANSACTION_TIMEOUT_MS,
      readinessGraceMs: e.READINESS_DATABASE_GRACE_MS,
    },
    auth: {
      // With no key material at all, development tokens work; otherwise only real ones.
      hs256Secret: hasKeyMaterial ? e.AUTH_JWT_SECRET : DEVELOPMENT_JWT_SECRET,
      jwtSecret: e.AUTH_JWT_SECRET ?? DEVELOPMENT_JWT_SECRET,
      publicKeys,
      jwksUrl: e.AUTH_JWKS_URL,
      jwksCooldownSeconds: e.AUTH_JWKS_COOLDOWN_SECONDS,
      issuer: e.AUTH_ISSUER,
      audience: e.AUTH_AUDIENCE,
      clockSkewSeconds: e.AUTH_CLOCK_SKEW_SECONDS,
      maxTokenLifetimeSeconds: e.AUTH_MAX_TOKEN_LIFETIME_SECONDS,
      usesDevelopmentSecret: !hasKeyMaterial,
      failures: { limit: e.AUTH_FAILURE_LIMIT, windowSeconds: e.AUTH_FAILURE_WINDOW_SECONDS },
    },
    pageTokens: {
      // Unset outside production: derived from the HS256 secret, so copies configured
      // alike accept each other's tokens (and a restart keeps them valid).
      secret: e.PAGE_TOKEN_SECRET ?? derivedPageTokenSecret(e.AUTH_JWT_SECRET),
      derived: e.PAGE_TOKEN_SECRET === undefined,
    },
    kafka: {
      brokers: e.KAFKA_BROKERS?.split(','),
      clientId: e.KAFKA_CLIENT_ID,
      topicPrefix: e.KAFKA_TOPIC_PREFIX,
      topicPartitions: e.KAFKA_TOPIC_PARTITIONS,
      replicationFactor: e.KAFKA_REPLICATION_FACTOR,
      consumerGroup: e.KAFKA_CONSUMER_GROUP,
      eventSource: e.EVENT_SOURCE,
      consumerMaxAttempts: e.KAFKA_CONSUMER_MAX_ATTEMPTS,
      consumerConcurrency: e.KAFKA_CONSUMER_CONCURRENCY,
      healthIntervalMs: e.KAFKA_HEALTH_INTERVAL_MS,
    },
    outbox: {
      pollIntervalMs: e.OUTBOX_POLL_INTERVAL_MS,
      batchSize: e.OUTBOX_BATCH_SIZE,
      leaseMs: e.OUTBOX_LEASE_MS,
    },
    openVidu: {
      webhookSecret: e.OPENVIDU_WEBHOOK_SECRET,
      webhookHeader: e.OPENVIDU_WEBHOOK_HEADER,
    },
    rateLimit: {
      requests: e.RATE_LIMIT_REQUESTS,
      windowSeconds: e.RATE_LIMIT_WINDOW_SECONDS,
      store: e.RATE_LIMIT_STORE ?? (e.DATABASE_URL ? 'postgres' : 'memory'),
    },
    consultation: {
      joinWindowBeforeMinutes: e.JOIN_WINDOW_BEFORE_MINUTES,
      graceAfterEndMinutes: e.GRACE_AFTER_END_MINUTES,
      maxImageBytes: e.MAX_IMAGE_BYTES,
      noShowGraceMinutes: e.NO_SHOW_GRACE_MINUTES,
      maxConsultationMinutes: e.MAX_CONSULTATION_MINUTES,
      sweepIntervalMs: e.SWEEP_INTERVAL_MS,
      auditSealIntervalMs: e.AUDIT_SEAL_INTERVAL_MS,
      reconcileIntervalMs: e.RECONCILE_INTERVAL_MS,
    },
    providers: {
      default: e.PROVIDER_DEFAULT,
      byClinic,
      failuresToOpen: e.PROVIDER_FAILURES_TO_OPEN,
      halfOpenAfterMs: e.PROVIDER_HALF_OPEN_AFTER_MS,
      openVidu:
        e.OPENVIDU_URL && e.OPENVIDU_SECRET
          ? { url: e.OPENVIDU_URL, secret: e.OPENVIDU_SECRET, timeoutMs: e.OPENVIDU_TIMEOUT_MS }
          : undefined,
      jitsi: {
        mode: e.JITSI_MODE,
        jaasKeyId: e.JITSI_JAAS_KEY_ID,
        // Environment variables are one line: accept PEM with literal \n escapes.
        jaasPrivateKey: e.JITSI_JAAS_PRIVATE_KEY?.replaceAll('\\n', '\n'),
        domain: e.JITSI_DOMAIN ?? (e.JITSI_MODE === 'jaas' ? '8x8.vc' : 'meet.jitsi.localhost'),
        appId: e.JITSI_APP_ID,
        appSecret: e.JITSI_APP_SECRET ?? DEVELOPMENT_JITSI_SECRET,
        audience: e.JITSI_AUDIENCE,
        usesDevelopmentSecret: e.JITSI_APP_SECRET === undefined,
      },
    },
  });
}

/** What is safe to log of the configuration: everything but the secrets. */
export function redactedConfig(config: Config): unknown {
  return {
    ...config,
    database: {
      ...config.database,
      url: config.database.url?.replace(/\/\/[^@/]*@/, '//***@'),
      migrationUrl: config.database.migrationUrl?.replace(/\/\/[^@/]*@/, '//***@'),
    },
    auth: {
      ...config.auth,
      jwtSecret: '***',
      hs256Secret: config.auth.hs256Secret && '***',
    },
    pageTokens: { ...config.pageTokens, secret: '***' },
    openVidu: { ...config.openVidu, webhookSecret: config.openVidu.webhookSecret && '***' },
    providers: {
      ...config.providers,
      openVidu: config.providers.openVidu && { ...config.providers.openVidu, secret: '***' },
      jitsi: {
        ...config.providers.jitsi,
        appSecret: '***',
        jaasPrivateKey: config.providers.jitsi.jaasPrivateKey && '***',
      },
    },
  };
}
