import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Database } from '../persistence/database.js';

export interface Readiness {
  /** `/readyz` and gRPC health: whether the service can do its work now. */
  ready(): Promise<boolean>;
  /** What `/readyz` shows besides: outbox, Kafka, the database pool, the event loop's lag. */
  details(): Promise<Record<string, unknown>>;
}

/** How long `/readyz` waits for the outbox backlog (a database query) before it says so. */
const DETAIL_TIMEOUT_MS = 1_000;
/** The event-loop monitor's sampling interval; what it measures beyond this is lag. */
const LOOP_RESOLUTION_MS = 20;

/** One monitor for the process: the event loop is the process's. */
let loopDelay: ReturnType<typeof monitorEventLoopDelay> | undefined;

/**
 * Readiness: the database answers (or has been out of reach for less than the grace, see
 * Database.ready), within a bound, never hanging on a wedged pool. The details say what a
 * wedged service looks like from outside: calls pending on the pool, no free connection,
 * how long the database has been unreachable, and the event loop's lag since the last ask.
 */
export function createReadiness(deps: {
  database: Database;
  backlog: () => Promise<unknown>;
  kafka: boolean;
}): Readiness {
  if (!loopDelay) {
    loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    loopDelay.enable();
  }
  const loop = loopDelay;
  return {
    ready: () => deps.database.ready(),
    async details() {
      const lagMs = (ns: number) =>
        Math.max(0, Math.round((ns / 1e6 - LOOP_RESOLUTION_MS) * 10) / 10);
      const eventLoop = { lagP99Ms: lagMs(loop.percentile(99)), lagMaxMs: lagMs(loop.max) };
      loop.reset();
      const database = deps.database.status();
      // The backlog is a query: not asked of a database that just failed to answer.
      const outbox = database.reachable
        ? await within(DETAIL_TIMEOUT_MS, deps.backlog()).catch(() => 'unknown')
        : 'unknown';
      return { outbox, kafka: deps.kafka, database, eventLoop };
    },
  };
}

function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out')), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
