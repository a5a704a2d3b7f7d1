import { Code, ConnectError, type ConnectRouter } from '@connectrpc/connect';
import { Health, HealthCheckResponse_ServingStatus } from '../../gen/grpc/health/v1/health_pb.js';

export interface HealthOptions {
  /** Whether the service can do its work now, e.g. whether the database answers. */
  check: () => Promise<boolean>;
  /** The service names callers may ask about, besides '' (the whole server). */
  services: readonly string[];
  /** How often Watch re-runs `check`; the spec leaves the mechanism to the server. */
  watchIntervalMs?: number;
  /** Aborted when the server begins to shut down: Watch says NOT_SERVING and ends. */
  shutdownSignal?: AbortSignal;
}

const { SERVING, NOT_SERVING, SERVICE_UNKNOWN } = HealthCheckResponse_ServingStatus;

/**
 * The standard grpc.health.v1.Health service, so load balancers, Kubernetes gRPC probes
 * and grpc-health-probe can ask about the service the way they ask any gRPC server.
 * Every listed service shares one `check`: they live and die with the same process and
 * database.
 */
export function createHealthRoutes(options: HealthOptions): (router: ConnectRouter) => void {
  const { check, shutdownSignal, watchIntervalMs = 1000 } = options;
  const known = new Set(['', ...options.services]);

  /** A failing check is an answer, not an error: the caller asked whether we can serve. */
  async function status(): Promise<HealthCheckResponse_ServingStatus> {
    if (shutdownSignal?.aborted) return NOT_SERVING;
    try {
      return (await check()) ? SERVING : NOT_SERVING;
    } catch {
      return NOT_SERVING;
    }
  }

  return (router) =>
    router.service(Health, {
      async check(req) {
        // The spec asks for NOT_FOUND here, so probes can tell a typo from an outage.
        if (!known.has(req.service)) {
          throw new ConnectError(`unknown service '${req.service}'`, Code.NotFound);
        }
        return { status: await status() };
      },

      async *watch(req, ctx) {
        const stop = shutdownSignal ? AbortSignal.any([ctx.signal, shutdownSignal]) : ctx.signal;
        if (!known.has(req.service)) {
          // The spec keeps the call open: the service might become known later. Ours is a
          // fixed list, so the caller simply waits until it hangs up.
          yield { status: SERVICE_UNKNOWN };
          await aborted(stop);
          return;
        }
        let last: HealthCheckResponse_ServingStatus | undefined;
        while (!stop.aborted) {
          const current = await status();
          if (current !== last) {
            yield { status: current };
            last = current;
          }
          await delay(watchIntervalMs, stop);
        }
        // Tell watchers we are going away before the stream ends, so a load balancer
        // stops sending traffic instead of treating the end as a glitch and reconnecting.
        if (shutdownSignal?.aborted && !ctx.signal.aborted && last !== NOT_SERVING) {
          yield { status: NOT_SERVING };
        }
      },
    });
}

/** Resolves after `ms`, or as soon as `signal` aborts; never rejects. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
