import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@connectrpc/connect';
import { createGrpcTransport } from '@connectrpc/connect-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Health, HealthCheckResponse_ServingStatus } from '../../gen/grpc/health/v1/health_pb.js';
import { Provider } from '../../gen/video/v1/consultation_pb.js';
import { bundleService } from '../../scripts/service-bundle.js';
import { mintToken } from '../../src/auth/jwt.js';
import { DEVELOPMENT_JWT_SECRET } from '../../src/config/variables.js';
import type { Role } from '../../src/domain/access.js';
import { buildWebApp } from '../../web/bundle.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { type OpenViduStandIn, startOpenViduStandIn } from '../support/openvidu-standin.js';
import { type ServiceProcess, startServiceProcess } from '../support/service-process.js';
import { zipkinTrace } from '../support/zipkin.js';

/**
 * The service as it ships: the one module `npm run build` bundles (scripts/service-bundle.ts),
 * started with `npm run serve`'s command. A bundler can break what works from the sources:
 * a dependency that reads files from beside its own module, a CommonJS `require`, a class
 * the ORM finds by its name. So the bundle is made afresh, started in a process of its
 * own, and called through each part it wires: the database and its migrations, OpenVidu
 * (the stand-in), Jitsi, Connect and gRPC, the REST routes, the API reference, the web
 * app, the metrics, and Kafka when the run has a broker.
 */
const OPENVIDU_SECRET = 'bundle-openvidu-secret';

let database: TestDatabase;
let standIn: OpenViduStandIn;
let service: ServiceProcess;
let webApp: string;
beforeAll(async () => {
  // What `npm run build` makes: the bundle, and the web app it serves.
  await bundleService();
  webApp = await mkdtemp(join(tmpdir(), 'bundle-web-app-'));
  await buildWebApp(webApp);
  database = await createTestDatabase();
  standIn = await startOpenViduStandIn({ secret: OPENVIDU_SECRET });
  service = await serve({
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    WEB_APP_DIR: webApp,
    ...database.env,
    OPENVIDU_URL: standIn.url,
    OPENVIDU_SECRET,
    PROVIDER_DEFAULT: 'openvidu',
    PROVIDER_BY_CLINIC: 'clinic-on-jitsi=jitsi',
    ...(process.env.KAFKA_BROKERS && { KAFKA_BROKERS: process.env.KAFKA_BROKERS }),
  });
}, 120_000);

afterAll(async () => {
  await service?.stop();
  await standIn?.close();
  await database?.drop();
  if (webApp) await rm(webApp, { recursive: true, force: true });
});

/** `npm run serve`, read from package.json, with `env` as its whole environment. */
function serve(env: Record<string, string>): Promise<ServiceProcess> {
  const manifest = JSON.parse(readFileSync('package.json', 'utf8')) as {
    scripts: Record<string, string>;
  };
  const [, ...args] = (manifest.scripts.serve ?? '').split(/\s+/);
  return startServiceProcess(args, env);
}

const token = (role: Role, userId: string, clinicId = 'clinic-1') =>
  mintToken({ secret: DEVELOPMENT_JWT_SECRET, role, userId, clinicId });

/** Schedules a consultation of the clinic, starts it and answers the doctor's join token. */
async function joinAsDoctor(clinicId: string) {
  const scheduler = videoClient(service.baseUrl, token('service', 'appointments', clinicId));
  const { consultation } = await scheduler.scheduleConsultation({
    appointmentId: appointmentId('bundle'),
    doctorId: 'doc-bundle',
    patientId: 'pat-bundle',
    ...slot(5),
  });
  const doctor = videoClient(service.baseUrl, token('doctor', 'doc-bundle', clinicId), 'grpc');
  await doctor.startConsultation({ consultationId: consultation!.id });
  return doctor.generateToken({ consultationId: consultation!.id });
}

describe('the bundled service', () => {
  it('schedules, starts and issues join tokens through OpenVidu and Jitsi', async () => {
    for (const [clinicId, provider] of [
      ['clinic-1', Provider.OPENVIDU],
      ['clinic-on-jitsi', Provider.JITSI],
    ] as const) {
      const joining = await joinAsDoctor(clinicId);
      expect(joining.provider).toBe(provider);
      expect(joining.token).not.toBe('');
    }
    expect(standIn.requests.some((r) => r.path.startsWith('/openvidu/api/sessions'))).toBe(true);
  });

  it('answers gRPC health, REST, its API reference, the web app and the metrics', async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: service.baseUrl }));
    expect((await health.check({})).status).toBe(HealthCheckResponse_ServingStatus.SERVING);

    const rest = await fetch(`${service.baseUrl}/api/video/providers/status`, {
      headers: { authorization: `Bearer ${token('doctor', 'doc-bundle')}` },
    });
    expect(rest.status).toBe(200);
    for (const [path, type] of [
      ['/openapi.json', 'application/json'],
      ['/docs/', 'text/html'],
      ['/docs/swagger-ui-bundle.js', 'text/javascript'],
      ['/app/', 'text/html'],
      ['/metrics', 'text/plain'],
    ] as const) {
      const res = await fetch(`${service.baseUrl}${path}`);
      expect([path, res.status, res.headers.get('content-type')]).toEqual([
        path,
        200,
        expect.stringContaining(type),
      ]);
    }
  });

  it('traces when asked to, loading the tracing SDK from node_modules', async () => {
    const zipkinUrl = inject('zipkinUrl');
    const serviceName = `video-service-bundle-${randomBytes(3).toString('hex')}`;
    // A database of its own: the embedded engine's folder belongs to one process.
    const own = await createTestDatabase();
    const traced = await serve({
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      ...own.env,
      OTEL_TRACES_EXPORTER: 'zipkin',
      OTEL_EXPORTER_ZIPKIN_ENDPOINT: `${zipkinUrl}/api/v2/spans`,
      OTEL_SERVICE_NAME: serviceName,
      OTEL_BSP_SCHEDULE_DELAY: '100',
    });
    try {
      const traceId = randomBytes(16).toString('hex');
      await videoClient(traced.baseUrl, token('doctor', 'doc-bundle')).getProviderStatus(
        {},
        { headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } },
      );
      await expect
        .poll(async () => (await zipkinTrace(zipkinUrl, traceId)).map((s) => s.name), {
          timeout: 10_000,
        })
        .toContain('video.v1.videoservice/getproviderstatus');
      expect(traced.log.some((entry) => entry.msg === 'tracing on')).toBe(true);
    } finally {
      await traced.stop();
      await own.drop();
    }
  });

  it.runIf(process.env.KAFKA_BROKERS)('publishes what it committed to Kafka', async () => {
    // Events of its own to publish (the start's and the token's), whatever ran before.
    await joinAsDoctor('clinic-on-jitsi');
    const deadline = Date.now() + 30_000;
    let outbox: unknown;
    while (Date.now() < deadline) {
      const ready = (await (await fetch(`${service.baseUrl}/readyz`)).json()) as {
        outbox: { pending: number };
      };
      outbox = ready.outbox;
      if (ready.outbox.pending === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(outbox).toMatchObject({ pending: 0 });
  });

  it('logged no error of its own', () => {
    // kafkajs logs the protocol errors it retries (a group rebalancing, a leader being
    // elected for a new topic) at error level: the broker's moments, not the bundle's.
    const errors = service.log.filter(
      (entry) => (entry.level as number) >= 50 && entry.component !== 'kafka',
    );
    expect(errors).toEqual([]);
  });

  it('printed no warning of Node on stderr', () => {
    // kafkajs 2.2.4 sets a negative timer on every broker connection (tulios/kafkajs#1751),
    // which Node 24 reports on stderr as a TimeoutNegativeWarning at each start.
    const warnings = service.stderr().match(/^\(node:\d+\) .*$/gm);
    expect(warnings).toBeNull();
  });
});
