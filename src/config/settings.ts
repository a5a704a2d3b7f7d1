import type { ProviderName } from '../domain/consultation.js';
import type { ConnectionLimits } from '../http/listener.js';
import type { CorsPolicy } from './values.js';

/**
 * The service's whole configuration, parsed once from the environment at start.
 * Every variable is documented in the README's configuration table; a test keeps the
 * two (and docker-compose.yml) in step.
 */
export interface Config {
  readonly env: 'development' | 'production' | 'test';
  readonly host: string;
  readonly port: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly shutdownTimeoutMs: number;
  /**
   * Open watch streams (WatchConsultation, WatchWaitingRoom): caps per process and caller,
   * and how long a stream stays quiet before it sends a keep-alive.
   */
  readonly watch: {
    readonly maxStreams: number;
    readonly maxStreamsPerCaller: number;
    readonly keepAliveMs: number;
  };
  /** Which browser origins may call the service (CORS). */
  readonly cors: CorsPolicy;
  /** The built web app served at /app/ (relative to the working directory). */
  readonly webAppDir: string;
  /** Timeouts and caps of client connections (see src/http/listener.ts). */
  readonly http: ConnectionLimits;
  readonly database: {
    /** Unset: PostgreSQL's own engine runs embedded (PGlite) with data in `dataDir`. */
    readonly url: string | undefined;
    readonly dataDir: string;
    readonly migrateOnStart: boolean;
    readonly poolSize: number;
    /**
     * The role migrations run as (the tables' owner), when the service's own role is a
     * least-privilege one; undefined: migrations run as `url`'s role.
     */
    readonly migrationUrl: string | undefined;
    /** How long a call waits for a pooled connection (or a new one) before UNAVAILABLE. */
    readonly acquireTimeoutMs: number;
    /** PostgreSQL's statement_timeout for the service's sessions; 0 leaves the server's. */
    readonly statementTimeoutMs: number;
    /** PostgreSQL's idle_in_transaction_session_timeout; 0 leaves the server's. */
    readonly idleInTransactionTimeoutMs: number;
    /** How long the database may be out of reach before the service reports not ready. */
    readonly readinessGraceMs: number;
  };
  readonly auth: {
    /** HS256 secret; undefined when only public keys or a JWKS verify tokens. */
    readonly hs256Secret: string | undefined;
    /** The HS256 secret `npm run token` signs with (the development one by default). */
    readonly jwtSecret: string;
    readonly publicKeys: readonly string[];
    readonly jwksUrl: string | undefined;
    readonly jwksCooldownSeconds: number;
    readonly issuer: string | undefined;
    readonly audience: string | undefined;
    readonly clockSkewSeconds: number;
    /** The longest a token may live: `exp` − (`iat`, or now without it). */
    readonly maxTokenLifetimeSeconds: number;
    readonly usesDevelopmentSecret: boolean;
    /** Failed authentications a client address may have per window before it is refused. */
    readonly failures: { readonly limit: number; readonly windowSeconds: number };
  };
  readonly pageTokens: {
    /** The HMAC key of page tokens: PAGE_TOKEN_SECRET, or derived from the HS256 secret. */
    readonly secret: string;
    /** True when PAGE_TOKEN_SECRET is unset (development and tests only). */
    readonly derived: boolean;
  };
  readonly kafka: {
    /** Unset: events stay in the outbox and no appointment events are consumed. */
    readonly brokers: readonly string[] | undefined;
    readonly clientId: string;
    readonly topicPrefix: string;
    readonly topicPartitions: number;
    readonly replicationFactor: number;
    readonly consumerGroup: string;
    /** CloudEvents `ce_source` of the events this service produces. */
    readonly eventSource: string;
    /** Attempts before a message that keeps failing goes to its dead-letter topic. */
    readonly consumerMaxAttempts: number;
    /** Partitions whose appointment events are handled at once (order holds within each). */
    readonly consumerConcurrency: number;
    /** How often the broker's connectivity is checked; a check unanswered this long fails. */
    readonly healthIntervalMs: number;
  };
  readonly outbox: {
    readonly pollIntervalMs: number;
    readonly batchSize: number;
    /** How long a copy's claim on events lasts unless renewed (a dead copy's lapses). */
    readonly leaseMs: number;
  };
  readonly openVidu: {
    /** Unset: the OpenVidu webhook endpoint refuses everything. */
    readonly webhookSecret: string | undefined;
    /** The header OpenVidu sends the secret in (OPENVIDU_WEBHOOK_HEADERS on its side). */
    readonly webhookHeader: string;
  };
  readonly rateLimit: {
    /** Calls a caller may make per window; 0 turns limiting off. */
    readonly requests: number;
    readonly windowSeconds: number;
    /**
     * Where this limit and the failed-authentication one are counted: this copy's memory,
     * or the database, shared by every copy (the default with DATABASE_URL).
     */
    readonly store: 'memory' | 'postgres';
  };
  readonly consultation: {
    /** A patient may check in (and a doctor join) this long before the slot starts. */
    readonly joinWindowBeforeMinutes: number;
    /** Tokens and check-in stay valid this long after the slot ends. */
    readonly graceAfterEndMinutes: number;
    readonly maxImageBytes: number;
    /** After the slot's end, how long a patient who never joined is still waited for. */
    readonly noShowGraceMinutes: number;
    /** A started consultation open longer than this is ended by the service. */
    readonly maxConsultationMinutes: number;
    /** How often each copy looks for no-shows and overruns. */
    readonly sweepIntervalMs: number;
    /** How often a copy seals the audit entries written since the last seal (audit-seals.ts). */
    readonly auditSealIntervalMs: number;
    /** How often a consultation in progress is compared with the provider's live state. */
    readonly reconcileIntervalMs: number;
  };
  readonly providers: {
    /** The provider of a new consultation whose clinic has none of its own. */
    readonly default: ProviderName;
    /** Clinics that use another provider than the default. */
    readonly byClinic: Readonly<Record<string, ProviderName>>;
    /** Consecutive failures that open a provider's circuit (new sessions go elsewhere). */
    readonly failuresToOpen: number;
    /** How long an open circuit waits before one call may try the provider again. */
    readonly halfOpenAfterMs: number;
    /** Unset: OpenVidu is not configured. */
    readonly openVidu:
      | { readonly url: string; readonly secret: string; readonly timeoutMs: number }
      | undefined;
    readonly jitsi: {
      /** `self-hosted` (prosody token auth, HS256) or `jaas` (8x8 Jitsi as a Service, RS256). */
      readonly mode: 'self-hosted' | 'jaas';
      readonly jaasKeyId: string | undefined;
      readonly jaasPrivateKey: string | undefined;
      readonly domain: string;
      readonly appId: string;
      readonly appSecret: string;
      readonly audience: string;
      readonly usesDevelopmentSecret: boolean;
    };
  };
}
