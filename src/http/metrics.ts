import type { Interceptor } from '@connectrpc/connect';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { codeName } from '../rpc/interceptors.js';

/**
 * Prometheus metrics at `GET /metrics`: RPC latency by procedure and code, the outbox
 * backlog and the age of its oldest event, whether the Kafka broker answers, the
 * providers' health, attendance reports, and the process's own.
 */
export interface Metrics {
  readonly registry: Registry;
  readonly interceptor: Interceptor;
  /** Counts one attendance report: a provider webhook or a reconciler repair, and its outcome. */
  attendanceReport(source: 'webhook' | 'reconciler', outcome: string): void;
  /** Counts a unit of work replayed after losing a race (contention on one consultation). */
  unitOfWorkReplay(reason: 'version_conflict' | 'deadlock'): void;
  /** Counts a refusal whose audit entry could not be written. */
  refusalNotAudited(): void;
  /** Observes how long after a change its view was sent on a watch stream. */
  watchDelivered(lagMs: number): void;
}

export function createMetrics(sources: {
  outbox: () => Promise<{ pending: number; oldestAgeSeconds: number }>;
  providers: () => Promise<{ name: string; healthy: boolean }[]>;
  /** Whether the Kafka broker answers now (false when none is configured). */
  kafkaConnected?: () => boolean;
  /** Watch streams open now. */
  watchStreams?: () => number;
  /** The database pool's connections: in use, idle, and calls waiting for one. */
  databasePool?: () => { used: number; free: number; pending: number };
}): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // The two outbox gauges are collected together: one backlog query serves both.
  let backlog: ReturnType<typeof sources.outbox> | undefined;
  const outbox = () =>
    (backlog ??= sources.outbox().finally(() => {
      backlog = undefined;
    }));

  const latency = new Histogram({
    name: 'rpc_server_duration_seconds',
    help: 'RPC handling time, by procedure and result code (snake_case, as on the wire)',
    labelNames: ['procedure', 'code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  new Gauge({
    name: 'outbox_pending_events',
    help: 'Committed events not yet published to Kafka',
    registers: [registry],
    async collect() {
      this.set((await outbox()).pending);
    },
  });
  new Gauge({
    name: 'outbox_oldest_pending_age_seconds',
    help: 'Age of the oldest event waiting in the outbox (0 when none waits)',
    registers: [registry],
    async collect() {
      this.set((await outbox()).oldestAgeSeconds);
    },
  });
  new Gauge({
    name: 'kafka_broker_connected',
    help: 'Whether the Kafka broker answered its last connectivity check (1) or not (0)',
    registers: [registry],
    collect() {
      this.set(sources.kafkaConnected?.() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'video_provider_healthy',
    help: 'Whether a video provider answered its last health probe (1) or not (0)',
    labelNames: ['provider'] as const,
    registers: [registry],
    async collect() {
      for (const provider of await sources.providers()) {
        this.set({ provider: provider.name }, provider.healthy ? 1 : 0);
      }
    },
  });

  const { databasePool } = sources;
  if (databasePool) {
    // With the event loop's lag (nodejs_eventloop_lag_*, among the defaults above), what
    // a wedged service shows: calls pending on a pool with no free connection.
    new Gauge({
      name: 'db_pool_connections',
      help: 'Database pool: connections in use (used), idle (free), calls waiting (pending)',
      labelNames: ['state'] as const,
      registers: [registry],
      collect() {
        const pool = databasePool();
        this.set({ state: 'used' }, pool.used);
        this.set({ state: 'free' }, pool.free);
        this.set({ state: 'pending' }, pool.pending);
      },
    });
  }

  const attendance = new Counter({
    name: 'video_attendance_reports_total',
    help: 'Attendance reports from provider webhooks and reconciler repairs, by outcome',
    labelNames: ['source', 'outcome'] as const,
    registers: [registry],
  });

  const { watchStreams } = sources;
  if (watchStreams) {
    new Gauge({
      name: 'watch_open_streams',
      help: 'Watch streams (WatchConsultation, WatchWaitingRoom) open in this process',
      registers: [registry],
      collect() {
        this.set(watchStreams());
      },
    });
  }
  const watchLag = new Histogram({
    name: 'watch_delivery_lag_seconds',
    help: 'From a change in the database to its view sent on a watch stream',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  const replays = new Counter({
    name: 'video_unit_of_work_replays_total',
    help: 'Units of work replayed after losing a race on a consultation, by reason',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const refusalsNotAudited = new Counter({
    name: 'audit_refusals_not_recorded_total',
    help: 'Refused calls whose audit entry could not be written (each is also logged as an error)',
    registers: [registry],
  });

  const interceptor: Interceptor = (next) => async (req) => {
    const stop = latency.startTimer({ procedure: `${req.service.typeName}/${req.method.name}` });
    try {
      const res = await next(req);
      stop({ code: 'ok' });
      return res;
    } catch (error) {
      // The wire's spelling (`failed_precondition`), as in the logs.
      stop({ code: codeName(error) });
      throw error;
    }
  };
  return {
    registry,
    interceptor,
    attendanceReport: (source, outcome) => attendance.inc({ source, outcome }),
    unitOfWorkReplay: (reason) => replays.inc({ reason }),
    refusalNotAudited: () => refusalsNotAudited.inc(),
    watchDelivered: (lagMs) => watchLag.observe(Math.max(0, lagMs) / 1000),
  };
}
