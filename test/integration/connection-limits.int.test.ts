import http2 from 'node:http2';
import net from 'node:net';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Health } from '../../gen/grpc/health/v1/health_pb.js';
import { startTestApp, type TestApp } from '../support/app.js';

/**
 * Clients cannot hold the server's connections, streams or memory: every timeout and cap
 * a listening Node server would apply, and more, with small values so the test is quick.
 */
const HEADERS_TIMEOUT_MS = 600;
const REQUEST_TIMEOUT_MS = 1_200;
const IDLE_TIMEOUT_MS = 900;
const MAX_CONNECTIONS = 6;
const MAX_STREAMS = 8;

let t: TestApp;
let port: number;
beforeAll(async () => {
  t = await startTestApp({
    HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
    HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
    HTTP_IDLE_TIMEOUT_MS: String(IDLE_TIMEOUT_MS),
    HTTP_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
    HTTP2_MAX_CONCURRENT_STREAMS: String(MAX_STREAMS),
  });
  port = t.app.port;
});
afterAll(async () => {
  await t?.stop();
});

/** A raw TCP connection: what it was sent back, and when it closed. */
function rawConnection(firstBytes?: string) {
  const socket = net.connect(port, '127.0.0.1');
  const opened = Date.now();
  let received = '';
  socket.on('data', (chunk) => {
    received += chunk.toString('latin1');
  });
  socket.on('error', () => {});
  if (firstBytes !== undefined) socket.write(firstBytes);
  const closed = new Promise<{ afterMs: number; received: string }>((resolve) =>
    socket.once('close', () => resolve({ afterMs: Date.now() - opened, received })),
  );
  return { socket, closed };
}

describe('HTTP/1.1 and raw connections', () => {
  it('closes a connection that never says anything', async () => {
    const { closed } = rawConnection();
    const { afterMs } = await closed;
    expect(afterMs).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
    expect(afterMs).toBeLessThan(HEADERS_TIMEOUT_MS + 2_000);
  });

  it('answers 408 to half a header (slowloris) and closes', async () => {
    const { socket, closed } = rawConnection('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    // Keep trickling header lines, as a slowloris client does.
    const trickle = setInterval(() => socket.write('X-a: b\r\n'), 100);
    const { afterMs, received } = await closed;
    clearInterval(trickle);
    expect(received).toMatch(/^HTTP\/1\.1 408/);
    expect(afterMs).toBeLessThan(HEADERS_TIMEOUT_MS + 2_000);
  });

  it('closes a keep-alive connection left idle', async () => {
    const { closed } = rawConnection('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    const { afterMs, received } = await closed;
    expect(received).toMatch(/^HTTP\/1\.1 200/);
    expect(afterMs).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS - 50);
    expect(afterMs).toBeLessThan(IDLE_TIMEOUT_MS + 2_000);
  });

  it('answers 408 to a body that never finishes', async () => {
    const { closed } = rawConnection(
      'POST /api/video/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"consul',
    );
    const { afterMs, received } = await closed;
    expect(received).toMatch(/^HTTP\/1\.1 408/);
    expect(afterMs).toBeLessThan(REQUEST_TIMEOUT_MS + 2_000);
  });

  it('caps open connections and serves again once they are gone', async () => {
    const connections = Array.from({ length: MAX_CONNECTIONS + 6 }, () =>
      rawConnection('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'),
    );
    // The ones over the cap are closed at once, with nothing answered.
    const early = await Promise.all(
      connections.map(({ closed }) =>
        Promise.race([closed, new Promise<undefined>((r) => setTimeout(() => r(undefined), 300))]),
      ),
    );
    const refused = early.filter((c) => c !== undefined && c.received === '');
    expect(refused.length).toBeGreaterThanOrEqual(6);
    for (const { socket } of connections) socket.destroy();
    await Promise.all(connections.map(({ closed }) => closed));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await fetch(`${t.baseUrl}/healthz`)).status).toBe(200);
  });
});

describe('HTTP/2', () => {
  it('advertises the stream cap and resets streams whose request never finishes', async () => {
    const session = http2.connect(t.baseUrl);
    try {
      await new Promise((resolve) => session.once('remoteSettings', resolve));
      expect(session.remoteSettings.maxConcurrentStreams).toBe(MAX_STREAMS);
      const started = Date.now();
      const streams = Array.from({ length: MAX_STREAMS }, () => {
        const stream = session.request({
          ':method': 'POST',
          ':path': '/video.v1.VideoService/GetProviderStatus',
          'content-type': 'application/grpc',
        });
        stream.on('error', () => {});
        stream.write(Buffer.from([0, 0, 0, 0, 10])); // a frame head, and never its body
        return new Promise<number>((resolve) =>
          stream.once('close', () => resolve(Date.now() - started)),
        );
      });
      const closedAfter = await Promise.all(streams);
      for (const ms of closedAfter) expect(ms).toBeLessThan(REQUEST_TIMEOUT_MS + 2_000);
    } finally {
      session.destroy();
    }
  });

  it('closes an idle connection, but not one with a quiet server stream', async () => {
    const idle = http2.connect(t.baseUrl);
    idle.on('error', () => {});
    const idleClosed = new Promise<number>((resolve) => {
      const opened = Date.now();
      idle.once('close', () => resolve(Date.now() - opened));
    });
    await new Promise<void>((resolve) => {
      const req = idle.request({ ':path': '/healthz' });
      req.on('data', () => {});
      req.once('end', resolve);
      req.end();
    });
    expect(await idleClosed).toBeLessThan(IDLE_TIMEOUT_MS + 2_000);

    // Health Watch sends its first status, then nothing while nothing changes.
    const health = createClient(Health, createGrpcTransport({ baseUrl: t.baseUrl }));
    const abort = new AbortController();
    const watch = health.watch({ service: '' }, { signal: abort.signal })[Symbol.asyncIterator]();
    const first = await watch.next();
    expect(first.done).toBe(false);
    const next = watch.next();
    const outcome = await Promise.race([
      next.then(
        () => 'message',
        () => 'closed',
      ),
      new Promise((resolve) => setTimeout(() => resolve('still open'), IDLE_TIMEOUT_MS * 3)),
    ]);
    expect(outcome).toBe('still open');
    abort.abort();
    await next.catch(() => {});
  });
});

describe('HTTP/2 rapid reset', () => {
  it('ends a connection that opens and cancels streams without end, and serves others', async () => {
    const session = http2.connect(t.baseUrl);
    session.on('error', () => {});
    const ended = new Promise<string>((resolve) => {
      session.once('goaway', (code) => resolve(`goaway ${code}`));
      session.once('close', () => resolve('closed'));
    });
    await new Promise((resolve) => session.once('remoteSettings', resolve));
    let sent = 0;
    for (let i = 0; i < 20_000 && !session.destroyed && !session.closed; i++) {
      try {
        const stream = session.request({ ':path': '/video.v1.VideoService/GetProviderStatus' });
        stream.on('error', () => {});
        stream.close(http2.constants.NGHTTP2_CANCEL);
        sent += 1;
      } catch {
        break; // the session is going away
      }
      if (i % 100 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await ended).toMatch(/goaway|closed/);
    expect(sent).toBeLessThan(20_000);
    session.destroy();
    expect((await fetch(`${t.baseUrl}/healthz`)).status).toBe(200);
  });
});

describe('failed authentication', () => {
  it('is limited per client address, before the token is even verified', async () => {
    const limited = await startTestApp({
      AUTH_FAILURE_LIMIT: '5',
      AUTH_FAILURE_WINDOW_SECONDS: '60',
    });
    try {
      const call = (token: string) =>
        fetch(`${limited.baseUrl}/api/video/providers/status`, {
          headers: { authorization: `Bearer ${token}` },
        });
      const codes: number[] = [];
      for (let i = 0; i < 200; i++) codes.push((await call(`forged.token.${i}`)).status);
      expect(codes.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
      expect(codes.slice(5).every((code) => code === 429)).toBe(true);
      const refused = await call('forged.token.again');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      // The address is refused even with a good token until the window passes.
      expect((await call(limited.token('doctor', 'd1'))).status).toBe(429);
    } finally {
      await limited.stop();
    }
  });

  it('does not count calls that authenticate', async () => {
    const limited = await startTestApp({ AUTH_FAILURE_LIMIT: '2' });
    try {
      const token = limited.token('doctor', 'd1');
      for (let i = 0; i < 20; i++) {
        const response = await fetch(`${limited.baseUrl}/api/video/providers/status`, {
          headers: { authorization: `Bearer ${token}` },
        });
        expect(response.status).toBe(200);
      }
    } finally {
      await limited.stop();
    }
  });
});
