import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsultationStatus } from '../../gen/video/v1/consultation_pb.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, type Protocol, slot, videoClient } from '../support/clients.js';

/**
 * Every way a client can reach the service on its one port: the four connect-node
 * transports, Connect GET, grpc-js loading the .proto files, and plain fetch with JSON.
 */
let t: TestApp;
let consultationId: string;

beforeAll(async () => {
  t = await startTestApp();
  const res = await videoClient(t.baseUrl, t.token('service', 'svc')).scheduleConsultation({
    appointmentId: appointmentId('interop'),
    doctorId: 'doc-i',
    patientId: 'pat-i',
    ...slot(30),
  });
  consultationId = res.consultation!.id;
});
afterAll(async () => {
  await t?.stop();
});

describe('connect-node transports', () => {
  const protocols: Protocol[] = ['connect-json', 'connect-binary', 'grpc', 'grpc-web'];
  for (const protocol of protocols) {
    it(`answers over ${protocol}`, async () => {
      const client = videoClient(t.baseUrl, t.token('doctor', 'doc-i'), protocol);
      const res = await client.getConsultationStatus({ consultationId });
      expect(res.consultation?.id).toBe(consultationId);
      expect(res.consultation?.status).toBe(ConsultationStatus.SCHEDULED);
      const providers = await client.getProviderStatus({});
      expect(providers.providers.length).toBeGreaterThan(0);
    });
  }

  it('answers Connect GET for side-effect-free reads', async () => {
    const client = videoClient(t.baseUrl, t.token('doctor', 'doc-i'), 'connect-json', {
      useHttpGet: true,
    });
    const res = await client.getConsultationStatus({ consultationId });
    expect(res.consultation?.id).toBe(consultationId);
  });
});

describe('plain HTTP', () => {
  it('takes a JSON POST from fetch (HTTP/1.1)', async () => {
    const res = await fetch(`${t.baseUrl}/video.v1.VideoService/GetConsultationStatus`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${t.token('patient', 'pat-i')}`,
      },
      body: JSON.stringify({ consultationId }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { consultation: { id: string; status: string } };
    expect(body.consultation).toMatchObject({
      id: consultationId,
      status: 'CONSULTATION_STATUS_SCHEDULED',
    });
  });

  it('takes a Connect GET from fetch, as a cacheable URL', async () => {
    const url = new URL(`${t.baseUrl}/video.v1.VideoService/GetConsultationStatus`);
    url.searchParams.set('connect', 'v1');
    url.searchParams.set('encoding', 'json');
    url.searchParams.set('message', JSON.stringify({ consultationId }));
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${t.token('patient', 'pat-i')}` },
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ consultation: { id: consultationId } });
  });

  it('answers errors as Connect JSON with the right HTTP status', async () => {
    const res = await fetch(`${t.baseUrl}/video.v1.VideoService/GetConsultationStatus`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ consultationId }),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ code: 'unauthenticated' });
  });

  it('serves /healthz and /readyz', async () => {
    expect((await fetch(`${t.baseUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${t.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', outbox: { pending: 0 } });
    expect((await fetch(`${t.baseUrl}/nope`)).status).toBe(404);
  });

  it('serves Prometheus metrics: RPC latency by procedure and code, outbox backlog', async () => {
    await videoClient(t.baseUrl, t.token('doctor', 'doc-i')).getProviderStatus({});
    const res = await fetch(`${t.baseUrl}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toMatch(
      /rpc_server_duration_seconds_count\{procedure="video\.v1\.VideoService\/GetProviderStatus",code="ok"\} [1-9]/,
    );
    expect(text).toMatch(/^outbox_pending_events \d+$/m);
    expect(text).toMatch(/^outbox_oldest_pending_age_seconds /m);
    expect(text).toMatch(/^video_provider_healthy\{provider="jitsi"\} 1$/m);
    expect(text).toMatch(/^process_resident_memory_bytes /m);
  });
});

/** The one method this test calls, as grpc-js builds it from the loaded .proto. */
interface GrpcVideoClient extends grpc.Client {
  getConsultationStatus(
    request: { consultationId: string },
    metadata: grpc.Metadata,
    callback: (err: grpc.ServiceError | null, value?: unknown) => void,
  ): void;
}

describe('@grpc/grpc-js with the .proto files', () => {
  it('calls VideoService over gRPC', async () => {
    const definition = await protoLoader.load('video/v1/video_service.proto', {
      includeDirs: [fileURLToPath(new URL('../../proto', import.meta.url))],
      keepCase: false,
      longs: String,
      enums: String,
      defaults: true,
    });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      video: { v1: { VideoService: grpc.ServiceClientConstructor } };
    };
    const client = new loaded.video.v1.VideoService(
      t.baseUrl.replace('http://', ''),
      grpc.credentials.createInsecure(),
    ) as unknown as GrpcVideoClient;
    try {
      const metadata = new grpc.Metadata();
      metadata.set('authorization', `Bearer ${t.token('doctor', 'doc-i')}`);
      const res = await new Promise<{ consultation: { id: string; status: string } }>(
        (resolve, reject) =>
          client.getConsultationStatus({ consultationId }, metadata, (err, value) =>
            err ? reject(err) : resolve(value as { consultation: { id: string; status: string } }),
          ),
      );
      expect(res.consultation.id).toBe(consultationId);
      expect(res.consultation.status).toBe('CONSULTATION_STATUS_SCHEDULED');

      const denied = await new Promise<grpc.ServiceError>((resolve) =>
        client.getConsultationStatus({ consultationId }, new grpc.Metadata(), (err) =>
          resolve(err!),
        ),
      );
      expect(denied.code).toBe(grpc.status.UNAUTHENTICATED);
    } finally {
      client.close();
    }
  });
});
