/**
 * The bare baseline server, run as a process of its own (see rpc-overhead.ts):
 * `http2.createServer(connectNodeAdapter(...))` implementing only
 * `VideoService.getConsultationStatus`, answering the constant message that
 * BARE_RESPONSE holds (the JSON of a GetConsultationStatusResponse). It listens on an
 * ephemeral port of 127.0.0.1, prints `{"port":N}` on stdout and exits on SIGTERM.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fromJson, type JsonValue } from '@bufbuild/protobuf';
import type { ConnectRouter } from '@connectrpc/connect';
import { connectNodeAdapter } from '@connectrpc/connect-node';
import {
  GetConsultationStatusResponseSchema,
  VideoService,
} from '../gen/video/v1/video_service_pb.js';

const json = process.env.BARE_RESPONSE;
if (!json) throw new Error('BARE_RESPONSE: the JSON of a GetConsultationStatusResponse');
const response = fromJson(GetConsultationStatusResponseSchema, JSON.parse(json) as JsonValue);

const routes = (router: ConnectRouter) =>
  router.service(VideoService, { getConsultationStatus: () => response });
const server = http2.createServer(connectNodeAdapter({ routes }));
const sessions = new Set<http2.ServerHttp2Session>();
server.on('session', (session) => {
  sessions.add(session);
  session.on('close', () => sessions.delete(session));
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
console.log(JSON.stringify({ port: (server.address() as AddressInfo).port }));

process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  // Clients keep their HTTP/2 session open; close() waits for it otherwise.
  for (const session of sessions) session.destroy();
});
