/**
 * A bench server's process (bare-server.ts, floor-server.ts): `routes` on
 * `http2.createServer(connectNodeAdapter(...))` at an ephemeral port of 127.0.0.1. Prints
 * `{"port":N}` on stdout, as child.ts expects, and on SIGTERM closes, runs `closing`, and
 * exits.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';

export async function serveForBench(
  routes: (router: ConnectRouter) => void,
  closing: () => Promise<void> = async () => {},
): Promise<void> {
  const server = http2.createServer(connectNodeAdapter({ routes }));
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  console.log(JSON.stringify({ port: (server.address() as AddressInfo).port }));

  process.on('SIGTERM', () => {
    server.close(() => void closing().finally(() => process.exit(0)));
    // Clients keep their HTTP/2 session open; close() waits for it otherwise.
    for (const session of sessions) session.destroy();
  });
}
