import pg from 'pg';
import { tracedStatement } from '../tracing.js';

/** What the connection pool holds right now, for readiness and metrics. */
export interface PoolStats {
  /** Connections handed out to a transaction or a query. */
  readonly used: number;
  /** Open connections waiting in the pool. */
  readonly free: number;
  /** Calls waiting for a connection. */
  readonly pending: number;
  readonly max: number;
}

/** What the pool's connections tell about the database, as it happens. */
export interface PoolEvents {
  /** A new connection was established: the database answers. */
  connected(client: pg.Client): void;
  /** A connection broke: the server closed it, or the network dropped it. */
  broken(error: Error): void;
}

export interface PoolSettings {
  readonly max: number;
  /** How long a caller waits for a connection (pooled or new) before it fails. */
  readonly acquireTimeoutMs: number;
  /** statement_timeout of every session; 0 leaves the server's setting. */
  readonly statementTimeoutMs: number;
  /** idle_in_transaction_session_timeout of every session; 0 leaves the server's setting. */
  readonly idleInTransactionTimeoutMs: number;
}

/** How soon TCP keepalive starts probing a silent connection (a dead peer, a partition). */
const KEEPALIVE_INITIAL_DELAY_MS = 10_000;

/**
 * The `pg` pool options MikroORM passes through (its `driverOptions`): timeouts, keepalive,
 * and the self-releasing connection class. `onPool` receives the pool once it exists, and
 * a reading of what it holds.
 */
export function poolOptions(
  settings: PoolSettings,
  events: PoolEvents,
  onPool: (pool: pg.Pool, stats: () => PoolStats) => void,
): Record<string, unknown> {
  return {
    Client: selfReleasingClient(events),
    // pg-pool's one timeout covers both waiting for a pooled connection and opening one.
    connectionTimeoutMillis: settings.acquireTimeoutMs,
    // Sent as startup parameters: they hold for every statement of the session.
    statement_timeout: settings.statementTimeoutMs || undefined,
    idle_in_transaction_session_timeout: settings.idleInTransactionTimeoutMs || undefined,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MS,
    onPoolCreated(pool: pg.Pool) {
      pool.on('connect', (client) => events.connected(client));
      onPool(pool, () => ({
        used: pool.totalCount - pool.idleCount,
        free: pool.idleCount,
        pending: pool.waitingCount,
        max: settings.max,
      }));
    },
  };
}

type Release = (error?: Error | boolean) => void;

/**
 * A `pg` client class whose connections, once checked out of the pool, give themselves
 * back the moment they break, whatever their holder does.
 *
 * Why: Kysely, which MikroORM 7 runs its SQL through, returns a transaction's connection to
 * the pool only after its COMMIT or ROLLBACK succeeded (`ControlledTransaction.commit()` and
 * `.rollback()` in kysely/dist/kysely.js call `connection.release()` after the awaited
 * statement, and `ControlledTransactionBuilder.execute()` likewise after BEGIN). On a
 * connection PostgreSQL has terminated, both fail, so the connection stayed checked out
 * for good: pg-pool kept counting it against `max`, each blip took away the connections
 * that died inside a transaction, and once none was left every call waited forever.
 *
 * Here a checked-out connection whose socket ends, or that reports a fatal error, is
 * released with that error at once: pg-pool drops and closes it, and opens a fresh one
 * for the next caller. The holder's own release, if it ever comes, is then a no-op. A
 * connection that breaks while idle in the pool is pg-pool's own business (it drops it).
 */
export function selfReleasingClient(events: PoolEvents): typeof pg.Client {
  return class SelfReleasingClient extends pg.Client {
    /** This checkout's release; undefined while the connection is in the pool. */
    #checkout: Release | undefined;
    /** Released here because it broke: the holder's later release must do nothing. */
    #releasedBroken = false;

    constructor(config?: string | pg.ClientConfig) {
      super(config);
      this.on('error', (error: Error) => {
        events.broken(error);
        this.#releaseBroken(error);
      });
      // A socket can also end without an error event (a clean close by the server).
      this.on('end', () => this.#releaseBroken(new Error('Connection terminated')));
    }

    /** pg-pool assigns its release function at every checkout. */
    set release(poolRelease: Release) {
      this.#releasedBroken = false;
      this.#checkout = (error) => {
        this.#checkout = undefined;
        poolRelease(error);
      };
    }

    get release(): Release {
      if (this.#checkout) return this.#checkout;
      if (this.#releasedBroken) return () => {};
      // pg-pool's own answer to a second release of a healthy connection: a loud bug.
      return () => {
        throw new Error('Release called on client which has already been released to the pool.');
      };
    }

    /**
     * Each statement sent as a promise is traced (tracing.ts); callbacks and cursors are
     * not. (`never`: the result is whatever pg's own overload of these arguments answers.)
     */
    override query(...args: unknown[]): never {
      const [first, , last] = args;
      const text = typeof first === 'string' ? first : (first as { text?: unknown } | null)?.text;
      const send = () => (super.query as (...a: unknown[]) => unknown)(...args);
      if (typeof text !== 'string' || typeof last === 'function' || typeof args[1] === 'function') {
        return send() as never;
      }
      return tracedStatement(this, text, () => send() as Promise<unknown>) as never;
    }

    #releaseBroken(error: Error) {
      const release = this.#checkout;
      if (!release) return;
      this.#releasedBroken = true;
      release(error);
    }
  };
}
