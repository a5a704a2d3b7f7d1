import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { Logger } from 'pino';

/** How long and how much a client may hold of the server; every value is configurable. */
export interface ConnectionLimits {
  /** A new connection's first bytes, and an HTTP/1.1 request's headers, arrive within this. */
  readonly headersTimeoutMs: number;
  /** A whole request (headers and body) arrives within this; the answer may take longer. */
  readonly requestTimeoutMs: number;
  /** A connection with no request in flight is closed after this long. */
  readonly idleTimeoutMs: number;
  /** Open connections at once; more are closed as soon as they are accepted. */
  readonly maxConnections: number;
  /** HTTP/2 streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
  readonly maxConcurrentStreams: number;
  /** Memory one HTTP/2 connection may use, in megabytes, before new streams are refused. */
  readonly maxSessionMemoryMb: number;
}

type Handler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export interface Listener {
  /** Listens; answers the bound port (useful with port 0). */
  start(): Promise<number>;
  /**
   * Stops accepting and lets open requests finish: HTTP/2 connections get GOAWAY, idle
   * HTTP/1.1 connections close now and busy ones after their answer. `abort` runs when the
   * deadline passes first, then every connection is closed.
   */
  stop(deadlineMs: number, abort: () => void): Promise<void>;
}

/**
 * One TCP port for cleartext HTTP/2 and HTTP/1.1. Node's cleartext HTTP/2 server cannot
 * fall back to HTTP/1.1 (that takes TLS and ALPN), so a TCP listener looks at each
 * connection's first bytes: the HTTP/2 client preface starts with "PRI", which no HTTP/1.1
 * method does.
 *
 * Since the HTTP servers never listen themselves, every limit a listening Node server
 * would apply is applied here: a connection that sends nothing, or half a header, is
 * closed; idle connections are closed; connections and HTTP/2 streams are capped.
 */
export function createListener(options: {
  readonly host: string;
  readonly port: number;
  readonly limits: ConnectionLimits;
  readonly handler: Handler;
  readonly logger: Logger;
}): Listener {
  const { limits, logger } = options;
  const h1 = http.createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.idleTimeoutMs,
      connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
    },
    options.handler,
  );
  // Node checks the header and request timeouts on a timer that listen() starts, which
  // this server never calls: start it as listen() would.
  h1.emit('listening');
  const h2 = http2.createServer(
    {
      settings: { maxConcurrentStreams: limits.maxConcurrentStreams },
      maxSessionMemory: limits.maxSessionMemoryMb,
    },
    options.handler,
  );
  const sessions = new Map<http2.Http2Session, { streams: number }>();
  /** HTTP/1.1 connections and how many requests each is serving right now. */
  const h1Connections = new Map<net.Socket, number>();
  let draining = false;

  h2.on('session', (session) => {
    const state = { streams: 0 };
    sessions.set(session, state);
    session.once('close', () => sessions.delete(session));
    // Idle means no stream open: a server stream that is quiet for a while is not idle.
    session.setTimeout(limits.idleTimeoutMs, () => {
      if (state.streams === 0) session.close();
    });
    session.on('stream', (stream) => {
      state.streams += 1;
      stream.once('close', () => {
        state.streams -= 1;
      });
    });
  });
  h2.on('stream', (stream, headers, flags) => {
    const endStream = http2.constants.NGHTTP2_FLAG_END_STREAM;
    if ((flags & endStream) === endStream) return;
    // The request's body must arrive in time; the answer (a server stream) may take long.
    const timer = setTimeout(() => {
      logger.debug({ path: headers[':path'] }, 'HTTP/2 request not received in time');
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, limits.requestTimeoutMs);
    stream.once('end', () => clearTimeout(timer));
    stream.once('close', () => clearTimeout(timer));
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

  /** Every accepted connection: what the shutdown deadline destroys, whatever state it is in. */
  const sockets = new Set<net.Socket>();
  /**
   * Connections that have not sent a byte yet, such as the spare ones browsers open
   * ahead of need: nothing is in flight on them, so a stop closes them at once.
   */
  const silent = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    silent.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      silent.delete(socket);
    });
    // A connection must say something soon: the HTTP/2 preface or a request line.
    socket.setTimeout(limits.headersTimeoutMs, () => socket.destroy());
    socket.once('data', (chunk: Buffer) => {
      silent.delete(socket);
      socket.setTimeout(0);
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
  server.maxConnections = limits.maxConnections;
  let lastDropLog = 0;
  let dropped = 0;
  server.on('drop', () => {
    dropped += 1;
    const now = Date.now();
    if (now - lastDropLog < 10_000) return;
    logger.warn(
      { dropped, maxConnections: limits.maxConnections },
      'connections refused: HTTP_MAX_CONNECTIONS reached',
    );
    lastDropLog = now;
    dropped = 0;
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
    async stop(deadlineMs, abort) {
      draining = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions.keys()) session.close();
      for (const [socket, busy] of h1Connections) if (busy === 0) socket.end();
      for (const socket of silent) socket.destroy();
      const timer = setTimeout(() => {
        logger.warn({ open: sessions.size + h1Connections.size }, 'shutdown deadline: aborting');
        abort();
        for (const session of sessions.keys()) session.destroy();
        for (const socket of h1Connections.keys()) socket.destroy();
        // An HTTP/2 session whose client stopped reading a stream does not let go of its
        // socket when destroyed: the socket itself goes.
        for (const socket of sockets) socket.destroy();
      }, deadlineMs);
      await closed;
      clearTimeout(timer);
      h1.close();
    },
  };
}
