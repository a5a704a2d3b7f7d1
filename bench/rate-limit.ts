/**
 * What the shared rate limit costs (`npm run bench -- rate-limit`): GetConsultationStatus
 * at 64 callers on three copies of the service on one database, run alternately in the
 * same rounds: the limit off (as every other measurement runs it), the limit counted in
 * each copy's memory (RATE_LIMIT_STORE=memory), and the limit counted in the database
 * (RATE_LIMIT_STORE=postgres, the default with DATABASE_URL: one upsert per call). The
 * limit is set far above the load, so that every call is counted and none refused.
 *
 * Twice: with each caller a user of their own (64 keys, as patients and doctors call),
 * and with every caller the same principal (one key, as a backend service integrating
 * with its one identity calls): one row that every call updates.
 */
import { videoClient } from '../test/support/clients.js';
import { consultationId, type Service, startService } from './fixture.js';
import { type LoadResult, type LoadSummary, round, runLoad, summarize } from './load.js';
import { checked } from './rpc-overhead.js';

/** How the limit is counted, and the service settings that make it so. */
const SETUPS = {
  off: { RATE_LIMIT_REQUESTS: '0' },
  memory: { RATE_LIMIT_REQUESTS: '1000000', RATE_LIMIT_STORE: 'memory' },
  postgres: { RATE_LIMIT_REQUESTS: '1000000', RATE_LIMIT_STORE: 'postgres' },
} as const;
type Setup = keyof typeof SETUPS;

export interface RateLimitCostOptions {
  readonly databaseUrl: string;
  /** Seeded consultations to read, numbered from 1. */
  readonly consultations: number;
  readonly concurrency: number;
  readonly rounds: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

export type RateLimitCostResult = Readonly<
  Record<
    'callers' | 'oneCaller',
    Readonly<Record<Setup, LoadSummary>> & {
      /** Throughput with the limit counted in the database over with it off. */
      readonly postgresRatio: number;
      readonly memoryRatio: number;
    }
  >
>;

export async function measureRateLimitCost(
  options: RateLimitCostOptions,
): Promise<RateLimitCostResult> {
  const setups = Object.keys(SETUPS) as Setup[];
  const services = new Map<Setup, Service>();
  try {
    for (const setup of setups) {
      services.set(setup, await startService(options.databaseUrl, SETUPS[setup]));
    }
    const ids = Array.from({ length: options.consultations }, (_, i) => consultationId(i + 1));
    const load = (service: Service, callers: 'callers' | 'oneCaller') => {
      const client = videoClient(service.baseUrl);
      const headers = (worker: number) => ({
        authorization: `Bearer ${service.token('clinic_admin', callers === 'callers' ? `admin-${worker}` : 'admin')}`,
      });
      const tokens = Array.from({ length: options.concurrency }, (_, w) => headers(w));
      return runLoad({
        concurrency: options.concurrency,
        warmupMs: options.warmupMs,
        durationMs: options.durationMs,
        serverPid: service.process.pid,
        call: (worker, i) =>
          client.getConsultationStatus(
            { consultationId: ids[(worker * 7919 + i) % ids.length] },
            { headers: tokens[worker] },
          ),
      });
    };
    const measure = async (callers: 'callers' | 'oneCaller') => {
      const runs = new Map<Setup, LoadResult[]>(setups.map((s) => [s, []]));
      for (let r = 0; r < options.rounds; r++) {
        for (const setup of setups) {
          const service = services.get(setup);
          if (!service) throw new Error(`no service for ${setup}`);
          runs.get(setup)?.push(checked(`${setup}, ${callers}`, await load(service, callers)));
        }
      }
      const summary = Object.fromEntries(
        setups.map((s) => [s, summarize(runs.get(s) ?? [])]),
      ) as Record<Setup, LoadSummary>;
      return {
        ...summary,
        postgresRatio: round(summary.postgres.rps / summary.off.rps, 3),
        memoryRatio: round(summary.memory.rps / summary.off.rps, 3),
      };
    };
    return { callers: await measure('callers'), oneCaller: await measure('oneCaller') };
  } finally {
    for (const service of services.values()) await service.process.stop();
  }
}
