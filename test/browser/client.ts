import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  Code,
  ConnectError,
  createClient,
  type Interceptor,
  type Transport,
} from '@connectrpc/connect';
import { createConnectTransport, createGrpcWebTransport } from '@connectrpc/connect-web';
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '../../gen/grpc/health/v1/health_pb.js';
import { ConsultationStatus } from '../../gen/video/v1/consultation_pb.js';
import { VideoService } from '../../gen/video/v1/video_service_pb.js';

/**
 * The browser side of test/integration/browser.int.test.ts: bundled by esbuild at test
 * start and loaded by a page served from another origin than the service. It only makes
 * calls and reports what happened; every assertion stays in the test.
 */

export type BrowserTransport = 'connect' | 'grpc-web';

export interface RunOptions {
  readonly baseUrl: string;
  readonly transport: BrowserTransport;
  /** Schedules the consultation (a `service` token). */
  readonly serviceToken: string;
  /** Reads it back (the consultation's doctor). */
  readonly doctorToken: string;
  readonly doctorId: string;
  readonly appointmentId: string;
  /** The deadline of each call, so a hung call fails instead of hanging the page. */
  readonly timeoutMs: number;
}

/** What one call answered, or how it failed, as plain JSON the test can read. */
export type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | {
      readonly ok: false;
      /** The ConnectError's code name (`Unknown`, `Unavailable`, …) when it is one. */
      readonly code: string | undefined;
      readonly name: string;
      readonly message: string;
      /** The error the transport wrapped (fetch's `TypeError: Failed to fetch`). */
      readonly cause: string | undefined;
    };

export interface CallSummary {
  readonly transport: BrowserTransport;
  readonly providerStatus: Outcome<{ providers: number }>;
  readonly schedule: Outcome<{ consultationId: string }>;
  readonly consultationStatus: Outcome<{ consultationId: string; status: string }>;
  /** Connect GET (`useHttpGet`), on the Connect transport only: gRPC-Web has no GET. */
  readonly getConsultationStatus?: Outcome<{ consultationId: string; status: string }>;
  readonly getProviderStatus?: Outcome<{ providers: number }>;
  /** The first message of grpc.health.v1.Health/Watch, then the call is aborted. */
  readonly watch: Outcome<{ status: string }>;
}

const bearer =
  (token: string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set('Authorization', `Bearer ${token}`);
    return next(req);
  };

function transportFor(
  options: RunOptions,
  token: string | undefined,
  useHttpGet = false,
): Transport {
  const interceptors = token ? [bearer(token)] : [];
  return options.transport === 'grpc-web'
    ? createGrpcWebTransport({ baseUrl: options.baseUrl, interceptors })
    : createConnectTransport({ baseUrl: options.baseUrl, interceptors, useHttpGet });
}

async function outcome<T>(call: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await call() };
  } catch (e) {
    const error = e instanceof Error ? e : new Error(String(e));
    const connect = e instanceof ConnectError ? e : undefined;
    return {
      ok: false,
      code: connect ? Code[connect.code] : undefined,
      name: error.name,
      message: error.message,
      cause: error.cause === undefined ? undefined : String(error.cause),
    };
  }
}

/** Runs the calls of the test over one transport; never throws. */
export async function runCalls(options: RunOptions): Promise<CallSummary> {
  const timeoutMs = options.timeoutMs;
  const asService = createClient(VideoService, transportFor(options, options.serviceToken));
  const asDoctor = createClient(VideoService, transportFor(options, options.doctorToken));

  const providerStatus = await outcome(async () => {
    const res = await asDoctor.getProviderStatus({}, { timeoutMs });
    return { providers: res.providers.length };
  });

  const start = new Date(Date.now() + 30 * 60_000);
  const schedule = await outcome(async () => {
    const res = await asService.scheduleConsultation(
      {
        appointmentId: options.appointmentId,
        doctorId: options.doctorId,
        patientId: `patient-${options.appointmentId}`,
        scheduledStart: timestampFromDate(start),
        scheduledEnd: timestampFromDate(new Date(start.getTime() + 30 * 60_000)),
      },
      { timeoutMs },
    );
    return { consultationId: res.consultation?.id ?? '' };
  });
  const consultationId = schedule.ok ? schedule.value.consultationId : 'none';

  const readStatus = (client: typeof asDoctor) => async () => {
    const res = await client.getConsultationStatus({ consultationId }, { timeoutMs });
    return {
      consultationId: res.consultation?.id ?? '',
      status: ConsultationStatus[res.consultation?.status ?? ConsultationStatus.UNSPECIFIED],
    };
  };
  const consultationStatus = await outcome(readStatus(asDoctor));

  let viaGet: Pick<CallSummary, 'getConsultationStatus' | 'getProviderStatus'> = {};
  if (options.transport === 'connect') {
    const getClient = createClient(VideoService, transportFor(options, options.doctorToken, true));
    viaGet = {
      getConsultationStatus: await outcome(readStatus(getClient)),
      getProviderStatus: await outcome(async () => {
        const res = await getClient.getProviderStatus({}, { timeoutMs });
        return { providers: res.providers.length };
      }),
    };
  }

  const watch = await outcome(async () => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      const health = createClient(Health, transportFor(options, undefined));
      for await (const res of health.watch({ service: '' }, { signal: controller.signal })) {
        return { status: ServingStatus[res.status] };
      }
      throw new Error('Watch ended without a message');
    } finally {
      clearTimeout(timer);
      controller.abort();
    }
  });

  return {
    transport: options.transport,
    providerStatus,
    schedule,
    consultationStatus,
    ...viaGet,
    watch,
  };
}

/** What the page exposes to the test, on `window`. */
export interface BrowserApi {
  runCalls: typeof runCalls;
}

(globalThis as unknown as BrowserApi).runCalls = runCalls;
