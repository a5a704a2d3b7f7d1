import { Code, ConnectError, type Interceptor } from '@connectrpc/connect';
import { codeToString } from '@connectrpc/connect/protocol-connect';
import {
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from '@opentelemetry/api';
import type { IHeaders } from 'kafkajs';
import type { Logger } from 'pino';
import { headerValue } from './messaging/cloudevents.js';

/**
 * OpenTelemetry traces, off unless OTEL_TRACES_EXPORTER names an exporter (`otlp`,
 * `zipkin`, `console`); everything else is configured by the standard OTEL_* variables
 * (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_ZIPKIN_ENDPOINT,
 * OTEL_TRACES_SAMPLER…), read by the SDK itself.
 *
 * The spans are the service's own, not a library's monkey-patching: the production form
 * is one bundled module (scripts/service-bundle.ts), in which no instrumentation can hook
 * `pg` or `http2` as they load, and writing them here keeps health data out by
 * construction. Each span's attributes are chosen here: an RPC's service, method and
 * code (RPC conventions); a statement's operation and its text with every literal
 * replaced by `?` (MikroORM writes values into its SQL); a database error's SQLSTATE,
 * never its message (PostgreSQL's messages quote values). No body, no header beyond
 * `traceparent`.
 */
export interface Tracing {
  /** Exports what is buffered and stops. */
  stop(): Promise<void>;
}

/**
 * The attribute names of OpenTelemetry's semantic conventions (RPC, database, messaging)
 * these spans use, written out: the conventions' package is thousands of constants, too
 * many to load at every start for a dozen names.
 */
const ATTR_RPC_SYSTEM = 'rpc.system';
const ATTR_RPC_SERVICE = 'rpc.service';
const ATTR_RPC_METHOD = 'rpc.method';
const ATTR_RPC_GRPC_STATUS_CODE = 'rpc.grpc.status_code';
const ATTR_RPC_CONNECT_RPC_ERROR_CODE = 'rpc.connect_rpc.error_code';
const ATTR_DB_SYSTEM_NAME = 'db.system.name';
const ATTR_DB_NAMESPACE = 'db.namespace';
const ATTR_DB_OPERATION_NAME = 'db.operation.name';
const ATTR_DB_QUERY_TEXT = 'db.query.text';
const ATTR_DB_RESPONSE_STATUS_CODE = 'db.response.status_code';
const ATTR_SERVER_ADDRESS = 'server.address';
const ATTR_SERVER_PORT = 'server.port';
const ATTR_MESSAGING_SYSTEM = 'messaging.system';
const ATTR_MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
const ATTR_MESSAGING_DESTINATION_NAME = 'messaging.destination.name';
/** The service's own: which video provider a call went to, and what it asked. */
const ATTR_VIDEO_PROVIDER = 'video.provider';
const ATTR_VIDEO_OPERATION = 'video.provider.operation';

const TRACER_NAME = 'video-service';
const tracer = () => trace.getTracer(TRACER_NAME);
/** Set once the SDK runs: until then a call pays nothing for tracing. */
let tracing = false;

/**
 * Starts the SDK when OTEL_TRACES_EXPORTER asks for it. Loaded only then: the SDK and its
 * exporters are a large part of the service's code, and most starts do not trace.
 */
export async function startTracing(env: NodeJS.ProcessEnv, logger: Logger): Promise<Tracing> {
  const exporter = env.OTEL_TRACES_EXPORTER?.trim();
  if (!exporter || exporter === 'none' || env.OTEL_SDK_DISABLED === 'true') {
    return { stop: async () => {} };
  }
  const { NodeSDK } = await import('@opentelemetry/sdk-node');
  const sdk = new NodeSDK({
    serviceName: env.OTEL_SERVICE_NAME ?? 'video-service',
    instrumentations: [],
  });
  sdk.start();
  tracing = true;
  logger.info({ exporter }, 'tracing on');
  return {
    stop: async () => {
      await sdk.shutdown();
      tracing = false;
    },
  };
}

const headerGetter: TextMapGetter<Headers> = {
  keys: (headers) => [...headers.keys()],
  get: (headers, key) => headers.get(key) ?? undefined,
};

/** The RPC system of a request, by its content type (REST calls arrive here as Connect). */
function rpcSystem(header: Headers): string {
  const type = header.get('content-type') ?? '';
  if (type.startsWith('application/grpc-web')) return 'grpc_web';
  if (type.startsWith('application/grpc')) return 'grpc';
  return 'connect_rpc';
}

/**
 * A server span per call, named `<service>/<method>`, continuing the caller's
 * `traceparent` (Connect, gRPC, gRPC-Web, and REST, whose transcoder forwards it); the
 * handler's own work (its statements) is its children. A server stream's span covers its
 * opening (the checks and the first read), not the hours it may stay open.
 */
export function createTracingInterceptor(): Interceptor {
  return (next) => async (req) => {
    if (!tracing) return next(req);
    const parent = propagation.extract(context.active(), req.header, headerGetter);
    const system = rpcSystem(req.header);
    const span = tracer().startSpan(
      `${req.service.typeName}/${req.method.name}`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [ATTR_RPC_SYSTEM]: system,
          [ATTR_RPC_SERVICE]: req.service.typeName,
          [ATTR_RPC_METHOD]: req.method.name,
        },
      },
      parent,
    );
    try {
      const response = await context.with(trace.setSpan(parent, span), () => next(req));
      // gRPC's conventions record OK as 0; Connect's record a code only for an error.
      if (system !== 'connect_rpc') span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, 0);
      return response;
    } catch (error) {
      const code = ConnectError.from(error).code;
      if (system === 'connect_rpc') {
        span.setAttribute(ATTR_RPC_CONNECT_RPC_ERROR_CODE, codeToString(code));
      } else {
        span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, code);
      }
      // Server spans are errors for the server's own failures, not for the caller's.
      if (SERVER_FAULTS.has(code)) span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  };
}

const SERVER_FAULTS = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

/** Where a client's statements go: what a statement's span says of its database. */
export interface DatabaseTarget {
  readonly database?: string | undefined;
  readonly host?: string | undefined;
  readonly port?: number | undefined;
}

/**
 * A client span around one statement, under the active span (none without one: the
 * relay's and sweeper's polls are not traced on their own). `run` sends it.
 */
export function tracedStatement<T>(
  target: DatabaseTarget,
  text: string,
  run: () => Promise<T>,
): Promise<T> {
  if (!inRecordedSpan()) return run();
  const operation = /^\s*(\w+)/.exec(text)?.[1]?.toLowerCase() ?? 'query';
  const span = tracer().startSpan(`${operation} ${target.database ?? ''}`.trim(), {
    kind: SpanKind.CLIENT,
    attributes: {
      [ATTR_DB_SYSTEM_NAME]: 'postgresql',
      [ATTR_DB_OPERATION_NAME]: operation,
      [ATTR_DB_QUERY_TEXT]: withoutLiterals(text),
      ...(target.database && { [ATTR_DB_NAMESPACE]: target.database }),
      ...(target.host && { [ATTR_SERVER_ADDRESS]: target.host }),
      ...(target.port && { [ATTR_SERVER_PORT]: target.port }),
    },
  });
  return runIn(span, run, statementFailed);
}

/**
 * A client span around one call to a video provider (OpenVidu's REST API; Jitsi signs
 * locally), under the active span: where a slow join went. It names the provider and
 * the operation only; session and participant ids stay out (they are derived from the
 * consultation's).
 */
export function tracedProviderCall<T>(
  provider: string,
  operation: string,
  run: () => Promise<T>,
): Promise<T> {
  if (!inRecordedSpan()) return run();
  const span = tracer().startSpan(`${provider} ${operation}`, {
    kind: SpanKind.CLIENT,
    attributes: { [ATTR_VIDEO_PROVIDER]: provider, [ATTR_VIDEO_OPERATION]: operation },
  });
  return runIn(span, run);
}

/** Whether a recorded span is active: only then are child spans made. */
const inRecordedSpan = () => tracing && !!trace.getSpan(context.active())?.isRecording();

/** Runs `run` as `span`'s work and ends the span with it; a failure marks it an error. */
function runIn<T>(
  span: Span,
  run: () => Promise<T>,
  failed: (span: Span, error: unknown) => void = () => {},
): Promise<T> {
  return context.with(trace.setSpan(context.active(), span), run).then(
    (result) => {
      span.end();
      return result;
    },
    (error: unknown) => {
      failed(span, error);
      span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      throw error;
    },
  );
}

/** A failed statement: its SQLSTATE, never its message (which quotes values). */
function statementFailed(span: Span, error: unknown): void {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    span.setAttribute(ATTR_DB_RESPONSE_STATUS_CODE, code);
  }
}

/**
 * SQL with every literal replaced by `?`: quoted strings (with '' and E'\'' escapes),
 * dollar-quoted bodies, and numbers standing alone. Identifiers, keywords, `$n`
 * placeholders and comments' words stay, so the statement is still recognisable.
 */
export function withoutLiterals(sql: string): string {
  return sql
    .replace(/\$(\w*)\$[\s\S]*?\$\1\$/g, '?')
    .replace(/[eE]?'(?:[^'\\]|''|\\.)*'/g, '?')
    .replace(/(?<![\w$."])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?\b/g, '?');
}

/** The active span's ids, for a log line (pino's mixin); nothing outside a recorded span. */
export function traceFields(): { trace_id?: string; span_id?: string } {
  const span = tracing ? trace.getSpan(context.active()) : undefined;
  if (!span?.isRecording()) return {};
  const { traceId, spanId } = span.spanContext();
  return { trace_id: traceId, span_id: spanId };
}

/** A carrier's `traceparent`: how an outbox row and a Kafka record keep a trace context. */
type Carrier = Record<string, string>;
const carrierGetter: TextMapGetter<Carrier> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/** The active span's context as a `traceparent`, to keep with an outbox row; null outside one. */
export function activeTraceparent(): string | null {
  if (!inRecordedSpan()) return null;
  const carrier: Carrier = {};
  propagation.inject(context.active(), carrier);
  return carrier.traceparent ?? null;
}

/** A context continuing `traceparent` (the root context without one). */
function continuing(traceparent: string | null | undefined) {
  return traceparent
    ? propagation.extract(ROOT_CONTEXT, { traceparent }, carrierGetter)
    : ROOT_CONTEXT;
}

/**
 * The relay's spans for one publish: a producer span per event, the child of the context
 * its outbox row kept (the call that wrote it) and linked to it, so that the publish
 * shows in that call's trace; one span per event rather than one per batch linked to
 * every event's call, because Zipkin shows no links. Answers the headers each record
 * carries: the CloudEvents distributed-tracing extension's `ce_traceparent` and plain
 * `traceparent`, naming its publish span (or, with tracing off in this copy, the context
 * the row kept, passed on).
 */
export function publishSpans(events: readonly { topic: string; traceParent: string | null }[]): {
  readonly headers: readonly Carrier[];
  end(error?: unknown): void;
} {
  const spans = events.map(({ topic, traceParent }) => {
    const parent = continuing(traceParent);
    const written = trace.getSpanContext(parent);
    const span = tracer().startSpan(
      `publish ${topic}`,
      {
        kind: SpanKind.PRODUCER,
        // Also a link, as the messaging conventions have it, for backends that show links.
        links: written ? [{ context: written }] : [],
        attributes: {
          [ATTR_MESSAGING_SYSTEM]: 'kafka',
          [ATTR_MESSAGING_OPERATION_TYPE]: 'send',
          [ATTR_MESSAGING_DESTINATION_NAME]: topic,
        },
      },
      parent,
    );
    return { span, traceParent };
  });
  return {
    headers: spans.map(({ span, traceParent }) => {
      const carrier: Carrier = {};
      if (span.isRecording()) propagation.inject(trace.setSpan(ROOT_CONTEXT, span), carrier);
      const value = carrier.traceparent ?? traceParent;
      return value ? { traceparent: value, ce_traceparent: value } : ({} as Carrier);
    }),
    end(error) {
      for (const { span } of spans) {
        if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR });
        span.end();
      }
    },
  };
}

/** A consumed record's trace context: `traceparent`, else CloudEvents' `ce_traceparent`. */
function recordTraceparent(headers: IHeaders | undefined): string | undefined {
  return headerValue(headers, 'traceparent') ?? headerValue(headers, 'ce_traceparent');
}

/**
 * Runs the handling of consumed records under consumer spans, one per record, each the
 * child of the trace context its record carries (a new trace without one). Records
 * handled together in one transaction share its statements: they appear under the first
 * record's span.
 */
export async function inConsumerSpans<T>(
  topic: string,
  records: readonly { readonly headers?: IHeaders }[],
  work: () => Promise<T>,
): Promise<T> {
  if (!tracing) return work();
  const spans = records.map((record) =>
    tracer().startSpan(
      `process ${topic}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          [ATTR_MESSAGING_SYSTEM]: 'kafka',
          [ATTR_MESSAGING_OPERATION_TYPE]: 'process',
          [ATTR_MESSAGING_DESTINATION_NAME]: topic,
        },
      },
      continuing(recordTraceparent(record.headers)),
    ),
  );
  const first = spans[0];
  try {
    return await (first ? context.with(trace.setSpan(ROOT_CONTEXT, first), work) : work());
  } catch (error) {
    for (const span of spans) span.setStatus({ code: SpanStatusCode.ERROR });
    throw error;
  } finally {
    for (const span of spans) span.end();
  }
}
