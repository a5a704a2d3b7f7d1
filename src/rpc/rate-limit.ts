import type pg from 'pg';
import type { Logger } from 'pino';
import {
  type RateLimiterAbstract,
  RateLimiterMemory,
  RateLimiterPostgres,
} from 'rate-limiter-flexible';

/**
 * Counts events per key in fixed windows (a caller's calls, an address's failed
 * authentications) and remembers, in this copy, the keys that went over their limit, so
 * that refusing them again costs no round trip to a shared store.
 */
export interface WindowCounter {
  /** How long `key` is known here to be over its limit, in ms; 0 when it is not. */
  blockedFor(key: string): number;
  /**
   * Counts one event of `key`. Once its count in the window reaches `blockAt`, the key is
   * blocked here until the window ends. Answers how long that is, in ms, when this event's
   * count reached it; 0 when it did not.
   */
  count(key: string): Promise<number>;
}

export interface WindowLimit {
  /** Names the counts of this limit apart from the others' in a shared store. */
  readonly name: string;
  /** The count at which a key is blocked. */
  readonly blockAt: number;
  readonly windowSeconds: number;
}

/** Where the counts live. */
export interface RateLimitStore {
  counter(limit: WindowLimit): WindowCounter;
}

/** This copy's memory: each copy counts alone (the embedded engine's single copy). */
export function memoryRateLimitStore(): RateLimitStore {
  return {
    counter: (limit) => windowCounter(limit, localCounts(limit)),
  };
}

/** After the shared store fails, how long each copy counts alone before it asks again. */
export const STORE_RETRY_MS = 5_000;

/**
 * The database every copy uses: a key's count is one row of the unlogged `rate_limit`
 * table, so N copies behind a load balancer allow a caller the limit once, not N times.
 * Each count is one statement (an upsert) on the service's pool.
 *
 * When the store fails (the database out of reach, no connection within the pool's
 * acquire timeout), each copy counts in its own memory for the next STORE_RETRY_MS, and
 * says so in a warning, before it asks the store again: the limit then holds per copy, as
 * it did before it was shared, and a database outage costs one wait for the store per
 * interval, not one per call. It neither lets every call through nor refuses them all:
 * the limit protects capacity and slows token guessing, and the calls that need the
 * database fail on their own while it is away.
 */
export function postgresRateLimitStore(pool: pg.Pool, logger: Logger): RateLimitStore {
  return {
    counter(limit) {
      const shared = new RateLimiterPostgres({
        storeClient: pool,
        storeType: 'pool',
        tableName: 'rate_limit',
        // Made by a migration (unlogged, granted to the service's role).
        tableCreated: true,
        keyPrefix: limit.name,
        points: limit.blockAt,
        duration: limit.windowSeconds,
      });
      const local = localCounts(limit);
      let aloneUntil = Number.NEGATIVE_INFINITY;
      return windowCounter(limit, async (key) => {
        if (performance.now() < aloneUntil) return local(key);
        try {
          return await shared.penalty(key, 1);
        } catch (error) {
          if (performance.now() >= aloneUntil) {
            logger.warn(
              { err: error, limit: limit.name, retryInMs: STORE_RETRY_MS },
              'rate-limit store failed: counting in this copy only for now',
            );
          }
          aloneUntil = performance.now() + STORE_RETRY_MS;
          return local(key);
        }
      });
    },
  };
}

/** Adds one to a key's count; answers the count in the window and the ms left in it. */
type Add = (key: string) => Promise<{ consumedPoints: number; msBeforeNext: number }>;

function localCounts(limit: WindowLimit): Add {
  const memory: RateLimiterAbstract = new RateLimiterMemory({
    keyPrefix: limit.name,
    points: limit.blockAt,
    duration: limit.windowSeconds,
  });
  return (key) => memory.penalty(key, 1);
}

/** Blocked keys kept at most this many; past it, those whose block ended are dropped. */
const MAX_BLOCKED_KEYS = 10_000;

function windowCounter(limit: WindowLimit, add: Add): WindowCounter {
  const blockedUntil = new Map<string, number>();
  const blockedFor = (key: string) => {
    const until = blockedUntil.get(key);
    if (until === undefined) return 0;
    const left = Math.ceil(until - performance.now());
    if (left > 0) return left;
    blockedUntil.delete(key);
    return 0;
  };
  return {
    blockedFor,
    async count(key) {
      const { consumedPoints, msBeforeNext } = await add(key);
      // This event's own count decides, not a block another one set meanwhile.
      if (consumedPoints < limit.blockAt || msBeforeNext <= 0) return 0;
      if (blockedUntil.size >= MAX_BLOCKED_KEYS) {
        for (const blocked of blockedUntil.keys()) blockedFor(blocked);
      }
      blockedUntil.set(key, performance.now() + msBeforeNext);
      return msBeforeNext;
    },
  };
}
