import type http from 'node:http';
import type http2 from 'node:http2';
import type { Readable } from 'node:stream';
import type { DescService } from '@bufbuild/protobuf';
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createConnectRouter,
  createContextValues,
  type Interceptor,
} from '@connectrpc/connect';
import {
  type EnvelopedMessage,
  pipe,
  transformJoinEnvelopes,
  transformSplitEnvelope,
  type UniversalHandler,
  type UniversalServerResponse,
} from '@connectrpc/connect/protocol';
import { trailerFlag, trailerParse, trailerSerialize } from '@connectrpc/connect/protocol-grpc-web';
import {
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from '@connectrpc/connect-node';
import type { Logger } from 'pino';
import type { CorsPolicy } from '../config.js';
import { kClientAddress } from '../rpc/context.js';
import { grpcMessageReencode } from '../rpc/grpc-message.js';
import { REQUEST_DECODING } from '../rpc/request-decoding.js';
import { createApiDocs } from './api-docs.js';
import { createCors } from './cors.js';
import { type ConnectionLimits, createListener } from './listener.js';
import type { WebhookRequest } from './openvidu-webhooks.js';
import { createRestTranscoder, restRoutes } from './rest-transcoder.js';
import type { WebApp } from './web-app.js';

export interface HttpServerOptions {
  readonly host: string;
  readonly port: number;
  readonly routes: (router: ConnectRouter) => void;
  readonly interceptors: Interceptor[];
  /** Largest request message accepted, in bytes. */
  readonly readMaxBytes: number;
  /** Services whose `google.api.http` annotations are served as REST routes. */
  readonly restServices: readonly DescService[];
  /** Largest file of a multipart upload on a REST route. */
  readonly uploadMaxBytes: number;
  /** Which browser origins may call (CORS). */
  readonly cors: CorsPolicy;
  /** The web app's files, under /app/. */
  readonly webApp?: WebApp;
  /** Timeouts and caps of connections and HTTP/2 streams. */
  readonly limits: ConnectionLimits;
  /** Answers `GET /readyz`: whether the service can do its work (database up). */
  readonly ready: () => Promise<boolean>;
  /** What `/readyz` reports besides: outbox backlog and the like. */
  readonly details?: () => Promise<Record<string, unknown>>;
  /** `POST` endpoints for provider webhooks: path → the largest body and the receiver. */
  readonly webhooks?: Record<
    string,
    { readonly maxBytes: number; readonly receive: (request: WebhookRequest) => number }
  >;
  /** Prometheus text for `GET /metrics`. */
  readonly metrics?: { contentType: string; render: () => Promise<string> };
  readonly logger: Logger;
}

export interface HttpServer {
  /** Listens; answers the bound port (useful with port 0). */
  start(): Promise<number>;
  /**
   * Stops accepting, lets in-flight calls finish within the deadline, then aborts what
   * is left and closes every connection.
   */
  stop(deadlineMs: number): Promise<void>;
}

/**
 * One port for everything (cleartext HTTP/2 and HTTP/1.1, see createListener): Connect
 * (JSON and binary, GET for side-effect-free reads), gRPC and gRPC-Web, the REST routes of
 * the proto's annotations, the API documents, and the plain HTTP routes load balancers,
 * Prometheus and OpenVidu use; CORS in front of all of them.
 */
export function createHttpServer(options: HttpServerOptions): HttpServer {
  const shutdown = new AbortController();
  // connect-node's adapter, built here so that every handler can be wrapped (see
  // undecodableBodiesAsInvalidArgument).
  const router = createConnectRouter({
    interceptors: options.interceptors,
    readMaxBytes: options.readMaxBytes,
    shutdownSignal: shutdown.signal,
    ...REQUEST_DECODING,
  });
  options.routes(router);
  const handlers = new Map(
    router.handlers.map((h) => [h.requestPath, undecodableBodiesAsInvalidArgument(h)]),
  );
  const rest = createRestTranscoder({
    routes: restRoutes(options.restServices),
    handlers,
    readMaxBytes: options.readMaxBytes,
    uploadMaxBytes: options.uploadMaxBytes,
    logger: options.logger,
  });
  const cors = createCors(options.cors);
  options.logger.info({ origins: cors.description }, 'browsers may call from these origins');
  const docs = createApiDocs();
  /** The plain HTTP routes: health, readiness, metrics, provider webhooks, API documents. */
  function fallback(
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: JsonResponse & { writeHead: http.ServerResponse['writeHead'] },
  ) {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method === 'GET' && path === '/healthz') {
      return sendJson(res, 200, { status: 'ok' });
    }
    if ((req.method === 'GET' || req.method === 'HEAD') && path === '/') {
      return void sendRoot(req, res, options.webApp !== undefined);
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      const page = options.webApp?.answer(path);
      if (page) {
        res.writeHead(page.status, page.headers);
        res.end(req.method === 'HEAD' ? '' : page.body);
        return;
      }
      const served = docs.file(path);
      if (served !== undefined) {
        return void served.then(
          (file) => {
            res.writeHead(200, {
              'content-type': file.contentType,
              'content-length': String(file.body.length),
              'cache-control': 'public, max-age=300',
            });
            res.end(req.method === 'HEAD' ? '' : file.body);
          },
          () => sendJson(res, 500, { code: 'internal', message: 'document unavailable' }),
        );
      }
    }
    fallbackRoutes(req, res, path);
  }
  function fallbackRoutes(
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: JsonResponse & { writeHead: http.ServerResponse['writeHead'] },
    path: string,
  ) {
    const webhook = path ? options.webhooks?.[path] : undefined;
    if (req.method === 'POST' && webhook) {
      return void readBody(req, webhook.maxBytes).then(
        (body) => {
          const status = webhook.receive({ headers: req.headers, body });
          sendJson(res, status, status === 200 ? { status: 'accepted' } : { error: 'refused' });
        },
        () => sendJson(res, 413, { error: 'body too large' }),
      );
    }
    if (req.method === 'GET' && path === '/metrics' && options.metrics) {
      const { contentType, render } = options.metrics;
      return void render().then(
        (text) => {
          res.writeHead(200, { 'content-type': contentType });
          res.end(text);
        },
        () => sendJson(res, 500, { error: 'metrics unavailable' }),
      );
    }
    if (req.method === 'GET' && (path === '/readyz' || path === '/api/video/health')) {
      return void readiness().then(
        ({ ready, details }) =>
          sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', ...details }),
        () => sendJson(res, 503, { status: 'not ready' }),
      );
    }
    sendJson(res, 404, { code: 'not_found', message: `no route for ${req.method} ${path}` });
  }
  const handler = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => {
    if (cors.handle(req, res)) return;
    const contextValues = () => createContextValues().set(kClientAddress, req.socket.remoteAddress);
    const uHandler = handlers.get((req.url ?? '').split('?', 1)[0] ?? '');
    // Every answer of the API may carry health data: no shared or browser cache keeps it.
    res.setHeader('cache-control', NO_STORE);
    if (!uHandler) {
      if (!rest.serve(req, res, contextValues())) fallback(req, res as never);
      return;
    }
    const uReq = universalRequestFromNodeRequest(req, res, undefined, contextValues());
    uHandler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.logger.error(
          { err: reason, procedure: uHandler.requestPath },
          'rpc handler failed',
        );
      });
  };
  const readiness = async () => {
    const ready = await options.ready();
    // Not ready is when the details matter most: what is wedged, for how long.
    const details = options.details ? await options.details() : {};
    return { ready, details };
  };
  const listener = createListener({
    host: options.host,
    port: options.port,
    limits: options.limits,
    handler,
    logger: options.logger,
  });
  return {
    start: () => listener.start(),
    stop: (deadlineMs) => listener.stop(deadlineMs, () => shutdown.abort()),
  };
}

const NO_STORE = 'private, no-store';

/** Reads a request body, refusing one larger than `limit` bytes. */
function readBody(req: Readable, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('body too large'));
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/** Just what the fallback needs of the adapter's response (HTTP/1.1 or HTTP/2). */
interface JsonResponse {
  writeHead(status: number, headers: Record<string, string>): unknown;
  end(body: string | Uint8Array): unknown;
}

function sendJson(res: JsonResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(text);
}

/**
 * connect-es decodes a request before any interceptor runs and answers a protobuf body it
 * cannot decode with INTERNAL ("parse binary: …"), which would tell a client with a
 * broken body that the server failed. That one answer becomes INVALID_ARGUMENT, for the
 * Connect protocol (HTTP 500 → 400 with a JSON error), gRPC (grpc-status 13 → 3 in the
 * trailers) and gRPC-Web (the same, in the trailer frame at the end of the body).
 */
/** What the service serves besides its API, for whoever opens its address. */
const ROOT_LINKS = {
  app: '/app/',
  docs: '/docs',
  openapi: '/openapi.json',
  health: '/healthz',
  ready: '/readyz',
  metrics: '/metrics',
};

/**
 * `/`: a browser goes on to the web app (or the API reference when the service has no
 * app); anything else is told, in JSON, where things are.
 */
function sendRoot(
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: JsonResponse & { writeHead: http.ServerResponse['writeHead'] },
  hasWebApp: boolean,
) {
  // The answer depends on Accept (and, as every answer here, on Origin for CORS): a cache
  // must not give one client the other's.
  if ((req.headers.accept ?? '').includes('text/html')) {
    res.writeHead(302, {
      location: hasWebApp ? ROOT_LINKS.app : ROOT_LINKS.docs,
      vary: 'Origin, Accept',
    });
    return res.end('');
  }
  const { app, ...rest } = ROOT_LINKS;
  const body = JSON.stringify({ service: 'video-service', links: hasWebApp ? ROOT_LINKS : rest });
  res.writeHead(200, { 'content-type': 'application/json', vary: 'Origin, Accept' });
  res.end(body);
}

function undecodableBodiesAsInvalidArgument(handler: UniversalHandler): UniversalHandler {
  const isParseFailure = (message: string | null | undefined) =>
    /^parse binary: /.test(decodeURIComponent(message ?? ''));
  const fixGrpc = (headers: Headers | undefined) => {
    if (headers?.get('grpc-status') === '13' && isParseFailure(headers.get('grpc-message'))) {
      headers.set('grpc-status', String(Code.InvalidArgument));
    }
    // connect-es percent-encodes more than gRPC says, and grpc-js would show the escapes.
    const message = headers?.get('grpc-message');
    if (message) headers?.set('grpc-message', grpcMessageReencode(message));
  };
  const wrapped = async (request: Parameters<UniversalHandler>[0]) => {
    const response: UniversalServerResponse = await handler(request);
    const type = response.header?.get('content-type') ?? '';
    if (response.status === 500 && type.startsWith('application/json') && response.body) {
      const chunks: Uint8Array[] = [];
      for await (const chunk of response.body) chunks.push(chunk);
      const text = Buffer.concat(chunks).toString('utf8');
      let error: { code?: string; message?: string } = {};
      try {
        error = JSON.parse(text) as typeof error;
      } catch {
        // Not a Connect error body: passed on unchanged below.
      }
      const refused = error.code === 'internal' && isParseFailure(error.message);
      const body = refused
        ? JSON.stringify({ code: 'invalid_argument', message: error.message })
        : text;
      response.header?.delete('content-length');
      return {
        ...response,
        status: refused ? 400 : response.status,
        body: (async function* () {
          yield new TextEncoder().encode(body);
        })(),
      };
    }
    fixGrpc(response.header);
    const { body, trailer } = response;
    if (body && type.startsWith('application/grpc-web')) {
      return {
        ...response,
        body: pipe(
          body,
          transformSplitEnvelope(Infinity),
          fixTrailerFrame,
          transformJoinEnvelopes(),
        ),
      };
    }
    if (body && trailer) {
      return {
        ...response,
        body: (async function* () {
          yield* body;
          fixGrpc(trailer);
        })(),
      };
    }
    return response;
  };
  async function* fixTrailerFrame(frames: AsyncIterable<EnvelopedMessage>) {
    for await (const frame of frames) {
      if ((frame.flags & trailerFlag) !== trailerFlag) {
        yield frame;
        continue;
      }
      const trailer = trailerParse(frame.data);
      fixGrpc(trailer);
      yield { flags: frame.flags, data: trailerSerialize(trailer) };
    }
  }
  return Object.assign(wrapped, handler);
}
