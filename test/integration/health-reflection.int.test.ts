import { execFile } from 'node:child_process';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { fromBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { Code, type ConnectError, type ConnectRouter, createClient } from '@connectrpc/connect';
import {
  connectNodeAdapter,
  createGrpcTransport,
  Http2SessionManager,
} from '@connectrpc/connect-node';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  file_grpc_health_v1_health,
  Health,
  HealthCheckResponse_ServingStatus as Status,
} from '../../gen/grpc/health/v1/health_pb.js';
import {
  file_grpc_reflection_v1_reflection,
  ServerReflection,
  type ServerReflectionRequestSchema,
  type ServerReflectionResponse,
} from '../../gen/grpc/reflection/v1/reflection_pb.js';
import {
  file_grpc_reflection_v1alpha_reflection,
  ServerReflection as ServerReflectionV1Alpha,
} from '../../gen/grpc/reflection/v1alpha/reflection_pb.js';
import { file_video_v1_events } from '../../gen/video/v1/events_pb.js';
import { file_video_v1_video_service, VideoService } from '../../gen/video/v1/video_service_pb.js';
import { createHealthRoutes } from '../../src/rpc/health-service.js';
import { createReflectionRoutes } from '../../src/rpc/reflection-service.js';

/**
 * The standard health and reflection services on a real HTTP/2 server, asked by the
 * clients that use them in practice: connect-node over gRPC, grpc-js with the .proto
 * file, and buf curl, which finds its schema through reflection alone.
 */
const WATCH_INTERVAL_MS = 20;

interface TestServer {
  readonly baseUrl: string;
  /** A gRPC transport whose HTTP/2 session `close()` ends, so the server can stop. */
  client<T extends Parameters<typeof createClient>[0]>(
    service: T,
  ): ReturnType<typeof createClient<T>>;
  close(): Promise<void>;
}

async function startServer(routes: (router: ConnectRouter) => void): Promise<TestServer> {
  // Cleartext HTTP/2 only: Node honours allowHTTP1 only with TLS, and every client here
  // speaks h2c. The app's own server sniffs the preface to serve HTTP/1.1 as well.
  const server = http2.createServer(connectNodeAdapter({ routes }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const sessions = new Http2SessionManager(baseUrl);
  const transport = createGrpcTransport({ baseUrl, sessionManager: sessions });
  return {
    baseUrl,
    client: (service) => createClient(service, transport),
    async close() {
      sessions.abort();
      await new Promise<void>((resolve, reject) =>
        server.close((e) => (e ? reject(e) : resolve())),
      );
    },
  };
}

let healthy = true;
let failing = false;
let checks = 0;
let t: TestServer;

beforeAll(async () => {
  t = await startServer((router) => {
    createHealthRoutes({
      check: async () => {
        checks++;
        if (failing) throw new Error('database unreachable');
        return healthy;
      },
      services: [VideoService.typeName],
      watchIntervalMs: WATCH_INTERVAL_MS,
    })(router);
    createReflectionRoutes([
      file_video_v1_video_service,
      file_video_v1_events,
      file_grpc_health_v1_health,
      file_grpc_reflection_v1_reflection,
      file_grpc_reflection_v1alpha_reflection,
    ])(router);
  });
});
afterAll(async () => {
  await t?.close();
});

/** Each test starts from a healthy server, whatever the one before it flipped. */
function resetHealth() {
  healthy = true;
  failing = false;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('grpc.health.v1.Health', () => {
  it('answers Check for the server and for each listed service', async () => {
    resetHealth();
    const health = t.client(Health);
    expect((await health.check({ service: '' })).status).toBe(Status.SERVING);
    expect((await health.check({ service: VideoService.typeName })).status).toBe(Status.SERVING);

    healthy = false;
    expect((await health.check({ service: '' })).status).toBe(Status.NOT_SERVING);

    failing = true;
    expect((await health.check({ service: VideoService.typeName })).status).toBe(
      Status.NOT_SERVING,
    );
  });

  it('answers NOT_FOUND for an unknown service, as the spec asks', async () => {
    const error = await t
      .client(Health)
      .check({ service: 'no.such.Service' })
      .catch((e: ConnectError) => e);
    expect(error).toMatchObject({ code: Code.NotFound });
  });

  it('streams the status from Watch at once and again when it changes', async () => {
    resetHealth();
    const controller = new AbortController();
    const stream = t.client(Health).watch({ service: '' }, { signal: controller.signal });
    const statuses: Status[] = [];
    for await (const res of stream) {
      statuses.push(res.status);
      if (statuses.length === 1) healthy = false;
      if (statuses.length === 2) break;
    }
    controller.abort();
    // Only changes are sent: a status that stays the same between polls is not repeated.
    expect(statuses).toEqual([Status.SERVING, Status.NOT_SERVING]);

    // The server stops polling once the client has gone.
    await sleep(WATCH_INTERVAL_MS * 5);
    const settled = checks;
    await sleep(WATCH_INTERVAL_MS * 5);
    expect(checks).toBe(settled);
  });

  it('answers Watch for an unknown service with SERVICE_UNKNOWN and keeps the call open', async () => {
    const controller = new AbortController();
    const stream = t
      .client(Health)
      .watch({ service: 'no.such.Service' }, { signal: controller.signal })
      [Symbol.asyncIterator]();
    expect((await stream.next()).value?.status).toBe(Status.SERVICE_UNKNOWN);
    const next = stream.next().then(
      () => 'ended',
      () => 'failed',
    );
    expect(await Promise.race([next, sleep(WATCH_INTERVAL_MS * 5).then(() => 'open')])).toBe(
      'open',
    );
    controller.abort();
    expect(await next).toBe('failed');
  });

  it('says NOT_SERVING and ends Watch when the server shuts down', async () => {
    const shutdown = new AbortController();
    const s = await startServer(
      createHealthRoutes({
        check: async () => true,
        services: [],
        watchIntervalMs: WATCH_INTERVAL_MS,
        shutdownSignal: shutdown.signal,
      }),
    );
    try {
      const statuses: Status[] = [];
      for await (const res of s.client(Health).watch({ service: '' })) {
        statuses.push(res.status);
        shutdown.abort();
      }
      expect(statuses).toEqual([Status.SERVING, Status.NOT_SERVING]);
      expect((await s.client(Health).check({ service: '' })).status).toBe(Status.NOT_SERVING);
    } finally {
      await s.close();
    }
  });
});

type ReflectionRequest = MessageInitShape<typeof ServerReflectionRequestSchema>;

/** Sends the requests on one stream and collects the answers. */
async function reflect(requests: ReflectionRequest[]): Promise<ServerReflectionResponse[]> {
  async function* send() {
    yield* requests;
  }
  const responses: ServerReflectionResponse[] = [];
  for await (const res of t.client(ServerReflection).serverReflectionInfo(send())) {
    responses.push(res);
  }
  return responses;
}

/** The file names in a file_descriptor_response, after decoding each file. */
function fileNames(res: ServerReflectionResponse | undefined): string[] {
  expect(res?.messageResponse.case).toBe('fileDescriptorResponse');
  if (res?.messageResponse.case !== 'fileDescriptorResponse') return [];
  return res.messageResponse.value.fileDescriptorProto.map(
    (bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name,
  );
}

describe('grpc.reflection.v1.ServerReflection', () => {
  it('lists every served service', async () => {
    const [res] = await reflect([{ messageRequest: { case: 'listServices', value: '' } }]);
    expect(res?.messageResponse.case).toBe('listServicesResponse');
    const names =
      res?.messageResponse.case === 'listServicesResponse'
        ? res.messageResponse.value.service.map((s) => s.name)
        : [];
    expect(names.sort()).toEqual([
      'grpc.health.v1.Health',
      'grpc.reflection.v1.ServerReflection',
      'grpc.reflection.v1alpha.ServerReflection',
      'video.v1.VideoService',
    ]);
  });

  it('answers file_containing_symbol with the file first, then its imports', async () => {
    const [res] = await reflect([
      {
        host: 'video.example',
        messageRequest: { case: 'fileContainingSymbol', value: 'video.v1.VideoService' },
      },
    ]);
    const names = fileNames(res);
    expect(names[0]).toBe('video/v1/video_service.proto');
    expect(names).toContain('video/v1/consultation.proto');
    expect(names).toContain('google/protobuf/timestamp.proto');
    expect(res?.validHost).toBe('video.example');
    expect(res?.originalRequest?.messageRequest).toEqual({
      case: 'fileContainingSymbol',
      value: 'video.v1.VideoService',
    });
  });

  it('finds methods, nested names, enum values, and files by name', async () => {
    const responses = await reflect([
      { messageRequest: { case: 'fileContainingSymbol', value: 'video.v1.VideoService.CheckIn' } },
      { messageRequest: { case: 'fileContainingSymbol', value: 'video.v1.Consultation' } },
      { messageRequest: { case: 'fileContainingSymbol', value: 'video.v1.ConsultationStatus' } },
      {
        messageRequest: {
          case: 'fileContainingSymbol',
          value: 'grpc.health.v1.HealthCheckResponse.ServingStatus',
        },
      },
      {
        messageRequest: {
          case: 'fileContainingSymbol',
          value: 'grpc.health.v1.HealthCheckResponse.SERVING',
        },
      },
      { messageRequest: { case: 'fileByFilename', value: 'video/v1/events.proto' } },
      { messageRequest: { case: 'fileByFilename', value: 'google/protobuf/timestamp.proto' } },
    ]);
    expect(responses.map((res) => fileNames(res)[0])).toEqual([
      'video/v1/video_service.proto',
      'video/v1/consultation.proto',
      'video/v1/consultation.proto',
      'grpc/health/v1/health.proto',
      'grpc/health/v1/health.proto',
      'video/v1/events.proto',
      'google/protobuf/timestamp.proto',
    ]);
    expect(fileNames(responses[5])).toEqual(
      expect.arrayContaining(['video/v1/video_service.proto', 'google/protobuf/timestamp.proto']),
    );
  });

  it('answers a miss with error_response NOT_FOUND and keeps the stream going', async () => {
    const responses = await reflect([
      { messageRequest: { case: 'fileContainingSymbol', value: 'video.v1.NoSuchThing' } },
      { messageRequest: { case: 'fileByFilename', value: 'video/v1/missing.proto' } },
      {
        messageRequest: {
          case: 'fileContainingExtension',
          value: { containingType: 'video.v1.Consultation', extensionNumber: 1000 },
        },
      },
      { messageRequest: { case: 'allExtensionNumbersOfType', value: 'video.v1.NoSuchThing' } },
      { messageRequest: { case: 'fileContainingSymbol', value: 'video.v1.VideoService' } },
    ]);
    expect(responses).toHaveLength(5);
    for (const res of responses.slice(0, 4)) {
      expect(res.messageResponse.case).toBe('errorResponse');
      expect(res.messageResponse.value).toMatchObject({ errorCode: Code.NotFound });
    }
    expect(fileNames(responses[4])[0]).toBe('video/v1/video_service.proto');
  });

  it('answers all_extension_numbers_of_type for a known type', async () => {
    const [res] = await reflect([
      { messageRequest: { case: 'allExtensionNumbersOfType', value: 'video.v1.Consultation' } },
    ]);
    expect(res?.messageResponse).toMatchObject({
      case: 'allExtensionNumbersResponse',
      value: { baseTypeName: 'video.v1.Consultation', extensionNumber: [] },
    });
  });
});

describe('grpc.reflection.v1alpha.ServerReflection', () => {
  it('answers the same questions for older tools', async () => {
    async function* send() {
      yield { messageRequest: { case: 'listServices', value: '' } } as const;
      yield {
        messageRequest: { case: 'fileContainingSymbol', value: 'video.v1.VideoService' },
      } as const;
      yield { messageRequest: { case: 'fileContainingSymbol', value: 'video.v1.Nope' } } as const;
    }
    const responses = [];
    for await (const res of t.client(ServerReflectionV1Alpha).serverReflectionInfo(send())) {
      expect(res.$typeName).toBe('grpc.reflection.v1alpha.ServerReflectionResponse');
      responses.push(res);
    }
    const [list, file, miss] = responses;
    expect(list?.messageResponse.case).toBe('listServicesResponse');
    if (list?.messageResponse.case === 'listServicesResponse') {
      expect(list.messageResponse.value.service.map((s) => s.name)).toContain(
        'video.v1.VideoService',
      );
    }
    expect(file?.messageResponse.case).toBe('fileDescriptorResponse');
    if (file?.messageResponse.case === 'fileDescriptorResponse') {
      const names = file.messageResponse.value.fileDescriptorProto.map(
        (bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name,
      );
      expect(names[0]).toBe('video/v1/video_service.proto');
      expect(names).toContain('google/protobuf/timestamp.proto');
    }
    expect(miss?.messageResponse).toMatchObject({ case: 'errorResponse', value: { errorCode: 5 } });
  });
});

type HealthClientConstructor = new (
  address: string,
  credentials: grpc.ChannelCredentials,
) => grpc.Client & {
  Check(
    request: { service: string },
    callback: (err: grpc.ServiceError | null, value: { status: string }) => void,
  ): void;
};

describe('other clients', () => {
  it('@grpc/grpc-js with health.proto gets SERVING over h2c', async () => {
    resetHealth();
    const definition = await protoLoader.load('grpc/health/v1/health.proto', {
      includeDirs: [fileURLToPath(new URL('../../proto', import.meta.url))],
      enums: String,
      defaults: true,
    });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      grpc: { health: { v1: { Health: HealthClientConstructor } } };
    };
    const client = new loaded.grpc.health.v1.Health(
      t.baseUrl.replace('http://', ''),
      grpc.credentials.createInsecure(),
    );
    try {
      const res = await new Promise<{ status: string }>((resolve, reject) =>
        client.Check({ service: '' }, (err, value) => (err ? reject(err) : resolve(value))),
      );
      expect(res.status).toBe('SERVING');
    } finally {
      client.close();
    }
  });

  // buf curl (a devDependency) has no .proto files here: it must learn the whole
  // schema, imports included, from reflection, and it is the same Go code as grpcurl.
  for (const reflectProtocol of ['grpc-v1', 'grpc-v1alpha']) {
    it(`buf curl calls Health/Check with a schema from ${reflectProtocol} reflection`, async () => {
      resetHealth();
      const buf = fileURLToPath(new URL('../../node_modules/.bin/buf', import.meta.url));
      const curl = (...args: string[]) =>
        promisify(execFile)(buf, [
          'curl',
          '--protocol',
          'grpc',
          '--http2-prior-knowledge',
          '--reflect-protocol',
          reflectProtocol,
          ...args,
        ]);
      const services = await curl('--list-services', t.baseUrl);
      expect(services.stdout.split('\n')).toContain('video.v1.VideoService');
      const methods = await curl('--list-methods', t.baseUrl);
      expect(methods.stdout).toContain('video.v1.VideoService/ScheduleConsultation');
      const check = await curl(
        '--data',
        '{"service": ""}',
        `${t.baseUrl}/grpc.health.v1.Health/Check`,
      );
      expect(JSON.parse(check.stdout)).toEqual({ status: 'SERVING' });
    });
  }
});
