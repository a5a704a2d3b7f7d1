import { randomBytes } from 'node:crypto';
import { setTimeout } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TechnicalIssueType } from '../../gen/video/v1/video_service_pb.js';
import { mintToken } from '../../src/auth/jwt.js';
import { DEVELOPMENT_JWT_SECRET } from '../../src/config.js';
import type { Role } from '../../src/domain/access.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { appointmentsProducer, collectRecords, uniquePrefix } from '../support/events.js';
import { type ServiceProcess, startServiceProcess } from '../support/service-process.js';
import { type ZipkinSpan, zipkinTrace } from '../support/zipkin.js';

/**
 * Traces as a platform team sees them: the service run as a process of its own with
 * OTEL_TRACES_EXPORTER=zipkin, called with a caller's `traceparent`, its spans read back
 * from a real Zipkin server.
 */
const SERVICE_NAME = `video-service-test-${randomBytes(3).toString('hex')}`;
const MARKER = 'PHI-MARKER-Jane-Roe-diabetic';
const PREFIX = uniquePrefix('tracing');
const brokers = inject('kafkaBrokers');

const zipkinUrl = inject('zipkinUrl');
let database: TestDatabase;
let service: ServiceProcess;
let baseUrl: string;

beforeAll(async () => {
  database = await createTestDatabase();
  service = await startServiceProcess(['--import', 'tsx', 'src/main.ts'], {
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'info',
    ...database.env,
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: PREFIX,
    KAFKA_CONSUMER_GROUP: `${PREFIX}video-service`,
    OTEL_TRACES_EXPORTER: 'zipkin',
    OTEL_EXPORTER_ZIPKIN_ENDPOINT: `${zipkinUrl}/api/v2/spans`,
    OTEL_SERVICE_NAME: SERVICE_NAME,
    OTEL_BSP_SCHEDULE_DELAY: '100',
  });
  baseUrl = service.baseUrl;
}, 300_000);

afterAll(async () => {
  await service?.stop();
  await database?.drop();
});

const token = (role: Role, userId: string) =>
  mintToken({ secret: DEVELOPMENT_JWT_SECRET, role, userId, clinicId: 'clinic-1' });

/** A caller's span: a new trace id and span id, sampled, as W3C trace context. */
function callerSpan() {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

/** The trace's spans once Zipkin holds `until` of them (the exporter sends in batches). */
async function spansOf(
  traceId: string,
  until: (spans: ZipkinSpan[]) => boolean,
): Promise<ZipkinSpan[]> {
  let spans: ZipkinSpan[] = [];
  for (const started = Date.now(); Date.now() - started < 15_000; await setTimeout(100)) {
    spans = await zipkinTrace(zipkinUrl, traceId);
    if (until(spans)) return spans;
  }
  return spans;
}

async function schedule(patientId: string): Promise<string> {
  const service = videoClient(baseUrl, token('service', 'appointments'));
  const { consultation } = await service.scheduleConsultation({
    appointmentId: appointmentId('trace'),
    doctorId: 'doc-trace',
    patientId,
    ...slot(5),
  });
  return consultation?.id ?? '';
}

describe('traces in a real Zipkin', () => {
  it('shows GenerateToken as a child of the caller’s span, with its provider calls and statements', async () => {
    const consultationId = await schedule('pat-trace');
    const caller = callerSpan();
    await videoClient(baseUrl, token('doctor', 'doc-trace')).generateToken(
      { consultationId },
      { headers: { traceparent: caller.traceparent } },
    );
    const isRpc = (s: ZipkinSpan) => s.name === 'video.v1.videoservice/generatetoken';
    const spans = await spansOf(caller.traceId, (all) => {
      const rpc = all.find(isRpc);
      return (
        !!rpc && all.filter((s) => s.parentId === rpc.id && s.tags?.['db.system.name']).length >= 2
      );
    });
    const rpc = spans.find(isRpc);
    expect(rpc).toMatchObject({
      parentId: caller.spanId,
      kind: 'SERVER',
      localEndpoint: { serviceName: SERVICE_NAME },
      tags: {
        'rpc.system': 'connect_rpc',
        'rpc.service': 'video.v1.VideoService',
        'rpc.method': 'GenerateToken',
      },
    });
    const children = spans.filter((s) => s.parentId === rpc?.id);
    // The provider's calls: the session (created by this first token) and the token.
    expect(children.map((s) => s.name)).toEqual(
      expect.arrayContaining(['jitsi ensuresession', 'jitsi issuetoken']),
    );
    // Its statements (the relay's publish, a producer span, may be there too: see below).
    const statements = children.filter((s) => s.tags?.['db.system.name']);
    // The read, then the one statement that records the token (token-record.ts).
    expect(statements.map((s) => s.tags?.['db.operation.name'])).toEqual(['select', 'with']);
    for (const statement of statements) {
      expect(statement).toMatchObject({ kind: 'CLIENT', tags: { 'db.system.name': 'postgresql' } });
      expect(statement.tags?.['db.query.text']).not.toMatch(/'/);
    }
    expect(statements.map((s) => s.tags?.['db.query.text']).join('\n')).not.toContain(
      consultationId,
    );
  });

  it('continues the trace over gRPC, gRPC-Web and REST as over Connect', async () => {
    const consultationId = await schedule('pat-trace-2');
    const overGrpc = callerSpan();
    await videoClient(baseUrl, token('doctor', 'doc-trace'), 'grpc').getConsultationStatus(
      { consultationId },
      { headers: { traceparent: overGrpc.traceparent } },
    );
    const overGrpcWeb = callerSpan();
    await videoClient(baseUrl, token('doctor', 'doc-trace'), 'grpc-web').getConsultationStatus(
      { consultationId },
      { headers: { traceparent: overGrpcWeb.traceparent } },
    );
    const overRest = callerSpan();
    const rest = await fetch(`${baseUrl}/api/video/consultation/${consultationId}/status`, {
      headers: {
        authorization: `Bearer ${token('doctor', 'doc-trace')}`,
        traceparent: overRest.traceparent,
      },
    });
    expect(rest.status).toBe(200);
    const name = 'video.v1.videoservice/getconsultationstatus';
    const grpc = await spansOf(overGrpc.traceId, (all) => all.some((s) => s.name === name));
    expect(grpc.find((s) => s.name === name)).toMatchObject({
      parentId: overGrpc.spanId,
      tags: { 'rpc.system': 'grpc', 'rpc.grpc.status_code': '0' },
    });
    const web = await spansOf(overGrpcWeb.traceId, (all) => all.some((s) => s.name === name));
    expect(web.find((s) => s.name === name)).toMatchObject({
      parentId: overGrpcWeb.spanId,
      tags: { 'rpc.system': 'grpc_web', 'rpc.grpc.status_code': '0' },
    });
    const viaRest = await spansOf(overRest.traceId, (all) => all.some((s) => s.name === name));
    expect(viaRest.find((s) => s.name === name)?.parentId).toBe(overRest.spanId);
  });

  it('names the trace and span in the log lines of a traced call', async () => {
    const caller = callerSpan();
    await videoClient(baseUrl, token('doctor', 'doc-trace')).getProviderStatus(
      {},
      { headers: { traceparent: caller.traceparent } },
    );
    await setTimeout(200);
    const line = service.log.find((l) => l.msg === 'rpc' && l.trace_id === caller.traceId);
    expect(line?.span_id).toMatch(/^[0-9a-f]{16}$/);
    expect(line?.span_id).not.toBe(caller.spanId);
  });

  it('exports no health data: no request content in any attribute of any span', async () => {
    const consultationId = await schedule(`pat-${MARKER}`);
    const caller = callerSpan();
    const patient = videoClient(baseUrl, token('patient', `pat-${MARKER}`));
    const headers = { traceparent: caller.traceparent };
    await patient.checkIn({ consultationId }, { headers }).catch(() => undefined);
    await patient.reportTechnicalIssue(
      { consultationId, issueType: TechnicalIssueType.AUDIO, description: MARKER },
      { headers },
    );
    // A failing statement too: its error message would quote the value.
    await patient
      .reportTechnicalIssue(
        { consultationId, issueType: TechnicalIssueType.AUDIO, description: `${MARKER}\u0000` },
        { headers },
      )
      .catch(() => undefined);
    const spans = await spansOf(caller.traceId, (all) => all.length >= 6);
    expect(spans.length).toBeGreaterThanOrEqual(6);
    // Every span of the service so far, this trace's and the others'.
    const all = await (
      await fetch(`${zipkinUrl}/api/v2/traces?serviceName=${SERVICE_NAME}&limit=1000`)
    ).text();
    expect(all).toContain(caller.traceId);
    expect(all).not.toContain(MARKER);
    expect(all).not.toContain(consultationId);
  });

  it('shows the relay’s publish in the call’s trace, and the record carries it on', async () => {
    const topic = `${PREFIX}video.token.generated`;
    const reader = await collectRecords(brokers, [topic]);
    try {
      const consultationId = await schedule('pat-trace-3');
      const caller = callerSpan();
      await videoClient(baseUrl, token('doctor', 'doc-trace')).generateToken(
        { consultationId },
        { headers: { traceparent: caller.traceparent } },
      );
      const publish = `publish ${topic}`.toLowerCase();
      const spans = await spansOf(caller.traceId, (all) => all.some((s) => s.name === publish));
      const rpc = spans.find((s) => s.name === 'video.v1.videoservice/generatetoken');
      const published = spans.find((s) => s.name === publish);
      expect(published).toMatchObject({
        parentId: rpc?.id,
        kind: 'PRODUCER',
        tags: { 'messaging.system': 'kafka', 'messaging.destination.name': topic },
      });
      const ours = (r: { headers: Record<string, string> }) =>
        r.headers.ce_traceparent?.includes(caller.traceId);
      const record = (await reader.waitFor((records) => records.some(ours))).find(ours);
      const traceparent = `00-${caller.traceId}-${published?.id}-01`;
      expect(record?.headers).toMatchObject({ traceparent, ce_traceparent: traceparent });
    } finally {
      await reader.stop();
    }
  });

  it('continues the trace of an appointment.created event that carries one', async () => {
    const producer = await appointmentsProducer(brokers);
    try {
      const caller = callerSpan();
      const appointment = appointmentId('trace-event');
      const start = Date.now() + 3600_000;
      await producer.send(
        `${PREFIX}appointment.created`,
        appointment,
        {
          appointmentId: appointment,
          clinicId: 'clinic-1',
          doctorId: 'doc-trace',
          patientId: 'pat-trace-event',
          scheduledStart: new Date(start).toISOString(),
          scheduledEnd: new Date(start + 1800_000).toISOString(),
          appointmentType: 'VIDEO',
        },
        { ce_id: appointment, ce_traceparent: caller.traceparent },
      );
      const name = `process ${PREFIX}appointment.created`.toLowerCase();
      const spans = await spansOf(caller.traceId, (all) => {
        const consumed = all.find((s) => s.name === name);
        return !!consumed && all.some((s) => s.parentId === consumed.id);
      });
      const consumed = spans.find((s) => s.name === name);
      expect(consumed).toMatchObject({ parentId: caller.spanId, kind: 'CONSUMER' });
      // Its statements (the inbox row, the consultation, its audit entry and event).
      expect(spans.filter((s) => s.parentId === consumed?.id).length).toBeGreaterThan(0);
    } finally {
      await producer.stop();
    }
  }, 60_000);
});
