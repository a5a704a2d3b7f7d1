/**
 * RPC overhead: GetConsultationStatus on the real service (interceptors, auth, the read
 * with its audit row) against a bare connect-node handler on
 * `http2.createServer` that answers the same response message as a constant
 * (bare-server.ts). Each server runs in a Node process of its own, the load generator in
 * the bench's; same client code (Connect JSON over HTTP/2, one connection per server),
 * same concurrency; they run alternately (baseline, floor, service, baseline…) so that
 * machine noise falls on all. The floor (floor-server.ts) is the bare handler plus the
 * read's database work: what no code of the service can go below on this machine. The
 * grouped floor is the same with the read's audit entries group-committed (floor-server.ts):
 * the experiment of what that would give the service.
 */
import { toJsonString } from '@bufbuild/protobuf';
import {
  type GetConsultationStatusResponse,
  GetConsultationStatusResponseSchema,
} from '../gen/video/v1/video_service_pb.js';
import { videoClient } from '../test/support/clients.js';
import { type ChildServer, startChildServer } from './child.js';
import { CLINIC, DOCTOR } from './fixture.js';
import {
  type LoadResult,
  type LoadSummary,
  type MeasurementOptions,
  round,
  runLoad,
  summarize,
} from './load.js';

export interface RpcOverheadResult {
  readonly baseline: LoadSummary;
  readonly floor: LoadSummary;
  readonly service: LoadSummary;
  /** Service throughput over baseline throughput. */
  readonly ratio: number;
  /** The floor's throughput over the baseline's: the most any service could reach here. */
  readonly floorRatio: number;
  /** The floor with the read audits group-committed. */
  readonly groupedFloor: LoadSummary;
  readonly groupedFloorRatio: number;
}

export interface RpcOverheadOptions extends MeasurementOptions {
  /** The database the service uses, for the floor. */
  readonly databaseUrl: string;
}

export async function measureRpcOverhead(options: RpcOverheadOptions): Promise<RpcOverheadResult> {
  const service = videoClient(options.serviceUrl, options.token);
  const [first] = options.consultationIds;
  if (!first) throw new Error('no consultations to read');
  // The baseline answers exactly what the service answers, so both encode as much JSON.
  const constant = await service.getConsultationStatus({ consultationId: first });
  const baselineServer = await startBaseline(constant);
  const baseline = videoClient(baselineServer.url, options.token);
  const floorServer = await startFloor(constant, options.databaseUrl);
  const floor = videoClient(floorServer.url, options.token);
  const groupedFloorServer = await startFloor(constant, options.databaseUrl, 'grouped');
  const groupedFloor = videoClient(groupedFloorServer.url, options.token);

  const ids = options.consultationIds;
  const load = (client: typeof service, serverPid: number) =>
    runLoad({
      concurrency: options.concurrency,
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      serverPid,
      call: (worker, i) =>
        client.getConsultationStatus({
          consultationId: ids[(worker * 7919 + i) % ids.length] ?? first,
        }),
    });

  const baselineRuns: LoadResult[] = [];
  const floorRuns: LoadResult[] = [];
  const serviceRuns: LoadResult[] = [];
  const groupedFloorRuns: LoadResult[] = [];
  try {
    for (let round = 0; round < options.rounds; round++) {
      baselineRuns.push(checked('baseline', await load(baseline, baselineServer.pid)));
      floorRuns.push(checked('floor', await load(floor, floorServer.pid)));
      serviceRuns.push(checked('service', await load(service, options.servicePid)));
      groupedFloorRuns.push(
        checked('grouped floor', await load(groupedFloor, groupedFloorServer.pid)),
      );
    }
  } finally {
    await baselineServer.stop();
    await floorServer.stop();
    await groupedFloorServer.stop();
  }
  const result = {
    baseline: summarize(baselineRuns),
    floor: summarize(floorRuns),
    service: summarize(serviceRuns),
    groupedFloor: summarize(groupedFloorRuns),
  };
  return {
    ...result,
    ratio: round(result.service.rps / result.baseline.rps, 3),
    floorRatio: round(result.floor.rps / result.baseline.rps, 3),
    groupedFloorRatio: round(result.groupedFloor.rps / result.baseline.rps, 3),
  };
}

/** A run with a failed call, in its warm-up or its window, measures something else: stop there. */
export function checked(name: string, result: LoadResult): LoadResult {
  if (result.errors > 0 || result.calls === 0) {
    throw new Error(
      `${name}: ${result.errors} failed calls (warm-up included), ${result.calls} measured calls succeeded`,
      { cause: result.firstError },
    );
  }
  return result;
}

/**
 * The floor (floor-server.ts) in a process of its own, on the service's database, for the
 * bench's clinic and doctor, answering `response` to the read.
 */
export function startFloor(
  response: GetConsultationStatusResponse,
  databaseUrl: string,
  audit: 'per read' | 'grouped' = 'per read',
): Promise<ChildServer> {
  return startChildServer({
    script: 'bench/floor-server.ts',
    env: {
      BARE_RESPONSE: toJsonString(GetConsultationStatusResponseSchema, response),
      FLOOR_DATABASE_URL: databaseUrl,
      FLOOR_CLINIC: CLINIC,
      FLOOR_DOCTOR: DOCTOR,
      ...(audit === 'grouped' && { FLOOR_AUDIT: 'grouped' }),
    },
    port: (line) => (typeof line.port === 'number' ? line.port : undefined),
  });
}

/** The bare handler (bare-server.ts) in a process of its own, answering `response`. */
function startBaseline(response: GetConsultationStatusResponse): Promise<ChildServer> {
  return startChildServer({
    script: 'bench/bare-server.ts',
    env: { BARE_RESPONSE: toJsonString(GetConsultationStatusResponseSchema, response) },
    port: (line) => (typeof line.port === 'number' ? line.port : undefined),
  });
}
