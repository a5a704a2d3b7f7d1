import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { TechnicalIssueType } from '../../gen/video/v1/video_service_pb.js';
import { EVENT_TYPES } from '../../src/video/events.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, slot, videoClient } from '../support/clients.js';
import { createTestDatabase, serverForSeveralCopies } from '../support/database.js';
import { appointmentsProducer, collectRecords, uniquePrefix } from '../support/events.js';
import { startRestartableKafka } from '../support/restartable-kafka.js';

/**
 * What Kafka at-least-once delivery must survive: a broker outage in the middle of the
 * day's work, and several copies of the service relaying and consuming at once.
 */
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

/** 50 consultations × 4 event-producing calls (check-in, start, report, end) = 200 events. */
async function runConsultations(t: TestApp, count: number, tag: string) {
  const service = videoClient(t.baseUrl, t.token('service', 'svc'));
  const ids: string[] = [];
  await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const patient = `pat-${tag}-${i}`;
      const doctor = `doc-${tag}-${i}`;
      const { consultation } = await service.scheduleConsultation({
        appointmentId: appointmentId(tag),
        doctorId: doctor,
        patientId: patient,
        ...slot(5),
      });
      const id = { consultationId: consultation!.id };
      ids.push(consultation!.id);
      await videoClient(t.baseUrl, t.token('patient', patient)).checkIn(id);
      await videoClient(t.baseUrl, t.token('doctor', doctor)).startConsultation(id);
      await videoClient(t.baseUrl, t.token('patient', patient)).reportTechnicalIssue({
        ...id,
        issueType: TechnicalIssueType.OTHER,
      });
      await videoClient(t.baseUrl, t.token('doctor', doctor)).endConsultation(id);
    }),
  );
  return ids;
}

/** Waits until the service's outbox is empty, or fails saying how much still waits. */
async function outboxDrained(t: TestApp, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  let pending = Number.POSITIVE_INFINITY;
  while (pending > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const ready = (await (await fetch(`${t.baseUrl}/readyz`)).json()) as {
      outbox: { pending: number };
    };
    pending = ready.outbox.pending;
  }
  expect(pending, 'events still waiting in the outbox').toBe(0);
}

describe('a broker outage', () => {
  it('loses no event: the API keeps serving, events wait, and all arrive after the restart', async () => {
    const kafka = await startRestartableKafka(19092);
    cleanups.push(() => kafka.remove());
    const prefix = uniquePrefix('outage');
    const t = await startTestApp({ KAFKA_BROKERS: kafka.brokers, KAFKA_TOPIC_PREFIX: prefix });
    cleanups.push(() => t.stop());
    // Connected and publishing before the outage: the warmup's events have left.
    await runConsultations(t, 1, 'warmup');
    await outboxDrained(t, 60_000);

    await kafka.stop();
    const ids = await runConsultations(t, 50, 'outage');
    const during = (await (await fetch(`${t.baseUrl}/readyz`)).json()) as {
      outbox: { pending: number };
    };
    expect(during.outbox.pending).toBeGreaterThanOrEqual(200);

    await kafka.start();
    // First: the relay publishes everything that waited (the outbox drains)...
    await outboxDrained(t, 90_000);
    // ...then: every one of the 200 events is on Kafka, counted by id.
    const reader = await collectRecords(
      kafka.brokers,
      EVENT_TYPES.map((type) => `${prefix}${type}`),
    );
    cleanups.push(() => reader.stop());
    const mine = new Set(ids);
    const delivered = () =>
      new Set(
        reader.records
          .filter((r) => mine.has(r.headers.ce_subject ?? ''))
          .map((r) => r.headers.ce_id),
      );
    await reader.waitFor(() => delivered().size >= 200, 60_000);
    expect(delivered().size).toBe(200);
  }, 180_000);
});

describe.runIf(serverForSeveralCopies)('two copies of the service', () => {
  it('relay and consume at once without duplicate effects', async () => {
    const brokers = inject('kafkaBrokers');
    const prefix = uniquePrefix('pair');
    const database = await createTestDatabase();
    cleanups.push(() => database.drop());
    const env = {
      KAFKA_BROKERS: brokers,
      KAFKA_TOPIC_PREFIX: prefix,
      KAFKA_CONSUMER_GROUP: `${prefix}service`,
    };
    const a = await startTestApp(env, database);
    const b = await startTestApp({ ...env, MIGRATE_ON_START: 'false' }, database);
    cleanups.push(
      () => a.stop(),
      () => b.stop(),
    );

    // Appointment events, some delivered twice: each applies once, whichever copy gets it.
    const producer = await appointmentsProducer(brokers);
    cleanups.push(() => producer.stop());
    const appointments = Array.from({ length: 30 }, () => appointmentId('pair'));
    for (const [i, appointment] of appointments.entries()) {
      const event = {
        appointmentId: appointment,
        clinicId: 'clinic-1',
        doctorId: 'doc-pair',
        patientId: `pat-pair-${i}`,
        scheduledStart: new Date(Date.now() + 3600_000).toISOString(),
        scheduledEnd: new Date(Date.now() + 5400_000).toISOString(),
        appointmentType: 'VIDEO',
      };
      const headers = {
        ce_id: randomUUID(),
        ce_type: 'appointment.created',
        ce_specversion: '1.0',
      };
      const times = i % 3 === 0 ? 2 : 1;
      for (let n = 0; n < times; n++) {
        await producer.send(`${prefix}appointment.created`, appointment, event, headers);
      }
    }
    const admin = videoClient(a.baseUrl, a.token('clinic_admin', 'admin'));
    const listed = async () =>
      (await admin.listConsultationHistory({ pageSize: 100 })).consultations.filter((c) =>
        c.appointmentId.startsWith('pair'),
      );
    const deadline = Date.now() + 30_000;
    while ((await listed()).length < 30 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const consultations = await listed();
    expect(consultations).toHaveLength(30);
    for (const c of consultations) {
      const trail = await admin.listAuditEntries({
        resourceId: c.id,
        action: 'consultation.schedule',
      });
      expect(trail.entries).toHaveLength(1);
    }

    // Both relays publish: every event arrives, and any duplicate carries the same ce_id.
    const reader = await collectRecords(
      brokers,
      EVENT_TYPES.map((type) => `${prefix}${type}`),
    );
    cleanups.push(() => reader.stop());
    const ids = [
      ...(await runConsultations(a, 10, 'pair-a')),
      ...(await runConsultations(b, 10, 'pair-b')),
    ];
    const mine = new Set(ids);
    const records = () => reader.records.filter((r) => mine.has(r.headers.ce_subject ?? ''));
    await reader.waitFor(() => new Set(records().map((r) => r.headers.ce_id)).size >= 80, 30_000);
    const perEvent = new Map<string, Set<string>>();
    for (const r of records()) {
      const key = `${r.headers.ce_subject}/${r.headers.ce_type}`;
      perEvent.set(key, (perEvent.get(key) ?? new Set()).add(r.headers.ce_id ?? ''));
    }
    expect(perEvent.size).toBe(80);
    for (const idsOfEvent of perEvent.values()) expect(idsOfEvent.size).toBe(1);
  }, 120_000);
});
