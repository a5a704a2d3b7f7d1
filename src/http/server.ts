import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { Readable } from 'node:stream';
import {
  Code,
  ConnectError,
  type ConnectRouter,
  createConnectRouter,
  createContextValues,
  type Interceptor,
} from '@connectrpc/connect';
import type { UniversalHandler, UniversalServerResponse } from '@connectrpc/connect/protocol';
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from '@connectrpc/connect-node';
import type { Logger } from 'pino';
import { MAX_WEBHOOK_BYTES, type WebhookRequest } from '../providers/openvidu-webhooks.js';
import { kClientAddress } from '../rpc/interceptors.js';

export interface HttpServerOptions {
  readonly host: string;
  readonly port: number;
  readonly routes: (router: ConnectRouter) => void;
  readonly interceptors: Interceptor[];
  /** Largest request message accepted, in bytes. */
  readonly readMaxBytes: number;
  /** Answers `GET /readyz`: whether the service can do its work (database up). */
  readonly ready: () => Promise<boolean>;
  /** What `/readyz` reports besides: outbox backlog and the like. */
  readonly details?: () => Promise<Record<string, unknown>>;
  /** `POST` endpoints for provider webhooks: path → receiver answering an HTTP status. */
  readonly webhooks?: Record<string, (request: WebhookRequest) => number>;
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
 * One port for everything: cleartext HTTP/2 and HTTP/1.1, serving Connect (JSON and
 * binary, GET for side-effect-free reads), gRPC and gRPC-Web, plus the plain HTTP
 * routes load balancers use.
 *
 * Node's cleartext HTTP/2 server cannot fall back to HTTP/1.1 (that takes TLS and
 * ALPN), so a TCP listener looks at each connection's first bytes: the HTTP/2 client
 * preface starts with "PRI", which no HTTP/1.1 method does.
 */
export function createHttpServer(options: HttpServerOptions): HttpServer {
  const shutdown = new AbortController();
  // connect-node's adapter, built here so that every handler can be wrapped (see
  // undecodableBodiesAsInvalidArgument).
  const router = createConnectRouter({
    interceptors: options.interceptors,
    readMaxBytes: options.readMaxBytes,
    shutdownSignal: shutdown.signal,
    acceptCompression: [compressionGzip, compressionBrotli],
  });
  options.routes(router);
  const handlers = new Map(
    router.handlers.map((h) => [h.requestPath, undecodableBodiesAsInvalidArgument(h)]),
  );
  /** The plain HTTP routes: health, readiness, metrics, provider webhooks. */
  function fallback(
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: JsonResponse & { writeHead: http.ServerResponse['writeHead'] },
  ) {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') {
      return sendJson(res, 200, { status: 'ok' });
    }
    const webhook = path ? options.webhooks?.[path] : undefined;
    if (req.method === 'POST' && webhook) {
      return void readBody(req, MAX_WEBHOOK_BYTES).then(
        (body) => {
          const status = webhook({ headers: req.headers, body });
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
    if (req.method === 'GET' && path === '/readyz') {
      return void readiness().then(
        ({ ready, details }) =>
          sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', ...details }),
        () => sendJson(res, 503, { status: 'not ready' }),
      );
    }
    sendJson(res, 404, { error: 'not found' });
  }
  const handler = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => {
    const uHandler = handlers.get((req.url ?? '').split('?', 1)[0] ?? '');
    if (!uHandler) {
      fallback(req, res as never);
      return;
    }
    const uReq = universalRequestFromNodeRequest(
      req,
      res,
      undefined,
      createContextValues().set(kClientAddress, req.socket.remoteAddress),
    );
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
    const details = ready && options.details ? await options.details() : {};
    return { ready, details };
  };
  const h1 = http.createServer(handler);
  const h2 = http2.createServer(handler);
  const sessions = new Set<http2.Http2Session>();
  /** HTTP/1.1 connections and how many requests each is serving right now. */
  const h1Connections = new Map<net.Socket, number>();
  let draining = false;

  h2.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  // Runs before the handler: a response sent while draining closes its connection.
  h1.prependListener('request', (req, res) => {
    const socket = req.socket as net.Socket;
    h1Connections.set(socket, (h1Connections.get(socket) ?? 0) + 1);
    if (draining) res.setHeader('connection', 'close');
    res.once('close', () => {
      const busy = (h1Connections.get(socket) ?? 1) - 1;
      h1Connections.set(socket, busy);
      if (draining && busy === 0) socket.end();
    });
  });

  const server = net.createServer((socket) => {
    socket.once('data', (chunk: Buffer) => {
      socket.pause();
      socket.unshift(chunk);
      if (chunk.toString('latin1', 0, 3) === 'PRI') {
        // The HTTP/2 session reads what is already buffered on the socket.
        h2.emit('connection', socket);
      } else {
        h1Connections.set(socket, 0);
        socket.once('close', () => h1Connections.delete(socket));
        h1.emit('connection', socket);
        socket.resume();
      }
    });
  });

  return {
    start() {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          server.off('error', reject);
          const address = server.address();
          resolve(typeof address === 'object' && address ? address.port : options.port);
        });
      });
    },
    async stop(deadlineMs) {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // HTTP/2: GOAWAY, then the session closes once its open streams finish.
      for (const session of sessions) session.close();
      // HTTP/1.1: idle keep-alive connections close now, busy ones after their response.
      for (const [socket, busy] of h1Connections) if (busy === 0) socket.end();
      const timer = setTimeout(() => {
        options.logger.warn(
          { open: sessions.size + h1Connections.size },
          'shutdown deadline: aborting',
        );
        shutdown.abort();
        for (const session of sessions) session.destroy();
        for (const socket of h1Connections.keys()) socket.destroy();
      }, deadlineMs);
      await closed;
      clearTimeout(timer);
    },
  };
}

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
  end(body: string): unknown;
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
 * Connect protocol (HTTP 500 → 400 with a JSON error) and gRPC (grpc-status 13 → 3).
 */
function undecodableBodiesAsInvalidArgument(handler: UniversalHandler): UniversalHandler {
  const isParseFailure = (message: string | null | undefined) =>
    /^parse binary: /.test(decodeURIComponent(message ?? ''));
  const fixGrpc = (headers: Headers | undefined) => {
    if (headers?.get('grpc-status') === '13' && isParseFailure(headers.get('grpc-message'))) {
      headers.set('grpc-status', String(Code.InvalidArgument));
    }
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
  return Object.assign(wrapped, handler);
}
