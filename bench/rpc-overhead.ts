/**
 * RPC overhead: GetConsultationStatus on the real service (interceptors, auth, a
 * transaction with its read and audit row) against a bare connect-node handler on
 * `http2.createServer` that answers the same response message as a constant. Same
 * process, same client code (Connect JSON over HTTP/2, one connection per server), same
 * concurrency; the two run alternately (baseline, service, baseline, service…) so that
 * machine noise falls on both.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import {
  type GetConsultationStatusResponse,
  VideoService,
} from '../gen/video/v1/video_service_pb.js';
import { videoClient } from '../test/support/clients.js';
import { type LoadResult, type LoadSummary, round, runLoad, summarize } from './load.js';

export interface RpcOverheadOptions {
  readonly serviceUrl: string;
  readonly token: string;
  /** The consultations the callers pick from, round robin. */
  readonly consultationIds: readonly string[];
  readonly concurrency: number;
  /** Rounds of each target, alternating. */
  readonly rounds: number;
  readonly warmupMs: number;
  readonly durationMs: number;
}

export interface RpcOverheadResult {
  readonly baseline: LoadSummary;
  readonly service: LoadSummary;
  /** Service throughput over baseline throughput. */
  readonly ratio: number;
}

export async function measureRpcOverhead(options: RpcOverheadOptions): Promise<RpcOverheadResult> {
  const service = videoClient(options.serviceUrl, options.token);
  const [first] = options.consultationIds;
  if (!first) throw new Error('no consultations to read');
  // The baseline answers exactly what the service answers, so both encode as much JSON.
  const constant = await service.getConsultationStatus({ consultationId: first });
  const baselineServer = await startBaseline(constant);
  const baseline = videoClient(baselineServer.url, options.token);

  const ids = options.consultationIds;
  const load = (client: typeof service) =>
    runLoad({
      concurrency: options.concurrency,
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      call: (worker, i) =>
        client.getConsultationStatus({
          consultationId: ids[(worker * 7919 + i) % ids.length] ?? first,
        }),
    });

  const baselineRuns: LoadResult[] = [];
  const serviceRuns: LoadResult[] = [];
  try {
    for (let round = 0; round < options.rounds; round++) {
      baselineRuns.push(checked('baseline', await load(baseline)));
      serviceRuns.push(checked('service', await load(service)));
    }
  } finally {
    await baselineServer.close();
  }
  const result = { baseline: summarize(baselineRuns), service: summarize(serviceRuns) };
  return { ...result, ratio: round(result.service.rps / result.baseline.rps, 3) };
}

/** A run with failed calls measures something else: stop there. */
export function checked(name: string, result: LoadResult): LoadResult {
  if (result.errors > 0 || result.calls === 0) {
    throw new Error(`${name}: ${result.errors} failed calls of ${result.calls + result.errors}`, {
      cause: result.firstError,
    });
  }
  return result;
}

/** The bare handler: VideoService.getConsultationStatus answering a constant. */
async function startBaseline(
  response: GetConsultationStatusResponse,
): Promise<{ url: string; close(): Promise<void> }> {
  const routes = (router: ConnectRouter) =>
    router.service(VideoService, { getConsultationStatus: () => response });
  const server = http2.createServer(connectNodeAdapter({ routes }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Clients keep their HTTP/2 session open; close() waits for it otherwise.
        for (const session of sessions) session.destroy();
      }),
  };
}
