import type { Timestamp } from '@bufbuild/protobuf/wkt';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import {
  type Client,
  type Code,
  ConnectError,
  createClient,
  type Interceptor,
} from '@connectrpc/connect';
import {
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from '@connectrpc/connect-node';
import { VideoService } from '../../gen/video/v1/video_service_pb.js';

export type VideoClient = Client<typeof VideoService>;
export type Protocol = 'connect-json' | 'connect-binary' | 'grpc' | 'grpc-web';

/** Sends `Authorization: Bearer <token>` on every call. */
export const bearer =
  (token: string): Interceptor =>
  (next) =>
  (req) => {
    req.header.set('authorization', `Bearer ${token}`);
    return next(req);
  };

/** A VideoService client over one protocol (Connect JSON over HTTP/2 by default). */
export function videoClient(
  baseUrl: string,
  token?: string,
  protocol: Protocol = 'connect-json',
  options: { useHttpGet?: boolean } = {},
): VideoClient {
  const interceptors = token ? [bearer(token)] : [];
  const transport =
    protocol === 'grpc'
      ? createGrpcTransport({ baseUrl, interceptors })
      : protocol === 'grpc-web'
        ? createGrpcWebTransport({ baseUrl, httpVersion: '1.1', interceptors })
        : createConnectTransport({
            baseUrl,
            httpVersion: '2',
            useBinaryFormat: protocol === 'connect-binary',
            useHttpGet: options.useHttpGet ?? false,
            interceptors,
          });
  return createClient(VideoService, transport);
}

let sequence = 0;
/** A unique appointment id, so tests never collide on one database. */
export const appointmentId = (prefix = 'apt') =>
  `${prefix}-${Date.now().toString(36)}-${++sequence}`;

/** A slot starting `minutesFromNow` from now, lasting `minutes`. */
export function slot(
  minutesFromNow: number,
  minutes = 30,
): { scheduledStart: Timestamp; scheduledEnd: Timestamp } {
  const start = new Date(Date.now() + minutesFromNow * 60_000);
  return {
    scheduledStart: timestampFromDate(start),
    scheduledEnd: timestampFromDate(new Date(start.getTime() + minutes * 60_000)),
  };
}

/** The code a call was answered with: 'ok', or the error's Connect code. */
export async function codeOf(call: Promise<unknown>): Promise<Code | 'ok'> {
  return call.then(
    () => 'ok' as const,
    (error: unknown) => ConnectError.from(error).code,
  );
}
