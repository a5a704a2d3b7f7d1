/**
 * The bare baseline server, run as a process of its own (see rpc-overhead.ts):
 * `http2.createServer(connectNodeAdapter(...))` implementing only
 * `VideoService.getConsultationStatus`, answering the constant message that
 * BARE_RESPONSE holds (the JSON of a GetConsultationStatusResponse). It listens on an
 * ephemeral port of 127.0.0.1, prints `{"port":N}` on stdout and exits on SIGTERM.
 */
import { fromJson, type JsonValue } from '@bufbuild/protobuf';
import {
  GetConsultationStatusResponseSchema,
  VideoService,
} from '../gen/video/v1/video_service_pb.js';
import { serveForBench } from './serve-for-bench.js';

const json = process.env.BARE_RESPONSE;
if (!json) throw new Error('BARE_RESPONSE: the JSON of a GetConsultationStatusResponse');
const response = fromJson(GetConsultationStatusResponseSchema, JSON.parse(json) as JsonValue);

await serveForBench((router) =>
  router.service(VideoService, { getConsultationStatus: () => response }),
);
