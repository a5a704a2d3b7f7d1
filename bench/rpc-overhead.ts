/**
 * RPC overhead: GetConsultationStatus on the real service (interceptors, auth, the read
 * with its audit row) against a bare connect-node handler on
 * `http2.createServer` that answers the same response message as a constant
 * (bare-server.ts). Each server runs in a Node process of its own, the load generator in
 * the bench's; same client code (Connect JSON over HTTP/2, one connection per server),
 * same concurrency; the two run alternately (baseline, service, baseline, service…) so
 * that machine noise falls on both.
 */
import { toJsonString } from '@bufbuild/protobuf';
import {
  type GetConsultationStatusResponse,
  GetConsultationStatusResponseSchema,
} from '../gen/video/v1/video_service_pb.js';
import { videoClient } from '../test/support/clients.js';
import { type ChildServer, startChildServer } from './child.js';
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
  readonly service: LoadSummary;
  /** Service throughput over baseline throughput. */
  readonly ratio: number;
}

export async function measureRpcOverhead(options: MeasurementOptions): Promise<RpcOverheadResult> {
  const service = videoClient(options.serviceUrl, options.token);
  const [first] = options.consultationIds;
  if (!first) throw new Error('no consultations to read');
  // The baseline answers exactly what the service answers, so both encode as much JSON.
  const constant = await service.getConsultationStatus({ consultationId: first });
  const baselineServer = await startBaseline(constant);
  const baseline = videoClient(baselineServer.url, options.token);

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
  const serviceRuns: LoadResult[] = [];
  try {
    for (let round = 0; round < options.rounds; round++) {
      baselineRuns.push(checked('baseline', await load(baseline, baselineServer.pid)));
      serviceRuns.push(checked('service', await load(service, options.servicePid)));
    }
  } finally {
    await baselineServer.stop();
  }
  const result = { baseline: summarize(baselineRuns), service: summarize(serviceRuns) };
  return { ...result, ratio: round(result.service.rps / result.baseline.rps, 3) };
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

/** The bare handler (bare-server.ts) in a process of its own, answering `response`. */
function startBaseline(response: GetConsultationStatusResponse): Promise<ChildServer> {
  return startChildServer({
    script: 'bench/bare-server.ts',
    env: { BARE_RESPONSE: toJsonString(GetConsultationStatusResponseSchema, response) },
    port: (line) => (typeof line.port === 'number' ? line.port : undefined),
  });
}
