import { randomUUID } from 'node:crypto';
import { type DescMessage, fromJson, type JsonValue } from '@bufbuild/protobuf';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EndReason, ParticipantRole, Provider } from '../../gen/video/v1/consultation_pb.js';
import { TechnicalIssueType } from '../../gen/video/v1/video_service_pb.js';
import { EVENT_TYPES, EVENTS } from '../../src/video/events.js';
import { startTestApp, type TestApp } from '../support/app.js';
import { appointmentId, slot, type VideoClient, videoClient } from '../support/clients.js';
import {
  appointmentsProducer,
  collectRecords,
  type ReceivedRecord,
  uniquePrefix,
} from '../support/events.js';
import { png } from '../support/images.js';

/**
 * Events on a real Kafka broker: what the service publishes (read by a plain kafkajs
 * consumer and decoded with the generated events.proto types), and how it applies
 * appointment events (duplicates, poison messages, dead letters).
 */
const brokers = inject('kafkaBrokers');
const prefix = uniquePrefix('events');
/** The topics the service publishes to, one per event type. */
const topics = EVENT_TYPES.map((type) => `${prefix}${type}`);
let t: TestApp;
let reader: Awaited<ReturnType<typeof collectRecords>>;
let appointments: Awaited<ReturnType<typeof appointmentsProducer>>;
const as = (role: Parameters<TestApp['token']>[0], user: string, clinic?: string): VideoClient =>
  videoClient(t.baseUrl, t.token(role, user, clinic));

beforeAll(async () => {
  reader = await collectRecords(brokers, topics);
  t = await startTestApp({
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: prefix,
    KAFKA_CONSUMER_GROUP: `${prefix}service`,
    KAFKA_CONSUMER_MAX_ATTEMPTS: '2',
  });
  appointments = await appointmentsProducer(brokers);
});
afterAll(async () => {
  await appointments?.stop();
  await t?.stop();
  await reader?.stop();
});

const decode = <Desc extends DescMessage>(schema: Desc, value: unknown) =>
  fromJson(schema, value as JsonValue);

/** How long the topics must stay unchanged before everything published counts as read. */
const QUIET_MS = 1_000;

/** How many records share each key, as [key, count] pairs. */
const countBy = (records: readonly ReceivedRecord[], key: (r: ReceivedRecord) => string) => [
  ...records.reduce(
    (counts, r) => counts.set(key(r), (counts.get(key(r)) ?? 0) + 1),
    new Map<string, number>(),
  ),
];

/**
 * Every record on the produced topics, once the service is done publishing: the outbox is
 * empty (each event was published and acknowledged), and then the topics' end offsets have
 * not moved for QUIET_MS (so no late copy is on its way). Read from the beginning by a
 * consumer group of its own, up to exactly as many records as the offsets count.
 */
async function everythingPublished(): Promise<ReceivedRecord[]> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ready = (await (await fetch(`${t.baseUrl}/readyz`)).json()) as {
      outbox: { pending: number };
    };
    if (ready.outbox.pending === 0) break;
    if (Date.now() > deadline) throw new Error(`${ready.outbox.pending} events still pending`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const admin = new Kafka({ brokers: brokers.split(','), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  let ends: { partition: number; high: string; low: string }[];
  try {
    const endOffsets = async () =>
      (await Promise.all(topics.map((topic) => admin.fetchTopicOffsets(topic)))).flat();
    ends = await endOffsets();
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
      const now = await endOffsets();
      if (JSON.stringify(now) === JSON.stringify(ends)) break;
      ends = now;
    }
  } finally {
    await admin.disconnect();
  }
  // No transactions, so no control records: the offsets count the records exactly.
  const count = ends.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  const fresh = await collectRecords(brokers, topics);
  try {
    const records = await fresh.waitFor((all) => all.length >= count);
    expect(records).toHaveLength(count);
    return [...records];
  } finally {
    await fresh.stop();
  }
}

describe('produced events', () => {
  it('publishes each change once it is committed, as CloudEvents with events.proto payloads', async () => {
    const { consultation } = await as('service', 'svc').scheduleConsultation({
      appointmentId: appointmentId('ev'),
      doctorId: 'doc-e',
      patientId: 'pat-e',
      ...slot(5),
    });
    const c = consultation!;
    const id = { consultationId: c.id };
    await as('patient', 'pat-e').checkIn(id);
    await as('doctor', 'doc-e').admitPatient(id);
    await as('patient', 'pat-e').generateToken(id);
    await as('doctor', 'doc-e').startConsultation(id);
    await as('patient', 'pat-e').reportTechnicalIssue({
      ...id,
      issueType: TechnicalIssueType.CONNECTION,
      description: 'frozen picture',
    });
    await as('patient', 'pat-e').shareMedicalImage({ ...id, content: png() });
    await as('doctor', 'doc-e').endConsultation(id);

    // Everything on the topics once the service is done publishing: a duplicate, early or
    // late, is among it.
    const everything = await everythingPublished();
    const copies = countBy(everything, (r) => `${r.headers.ce_type} ${r.headers.ce_id}`);
    expect(copies.filter(([, n]) => n > 1)).toEqual([]);
    const records = everything.filter((r) => r.headers.ce_subject === c.id);
    expect(records).toHaveLength(6);
    expect(records.every((r) => r.key === c.appointmentId)).toBe(true);
    expect(Object.fromEntries(countBy(records, (r) => r.headers.ce_type ?? ''))).toEqual({
      'video.patient.waiting': 1,
      'video.token.generated': 1,
      'video.consultation.started': 1,
      'video.technical.issue.reported': 1,
      'video.image.shared': 1,
      'video.consultation.ended': 1,
    });

    // Each type has its own topic, so arrival order across topics means nothing; the
    // CloudEvents time shows they were committed (and so published) in order.
    const byTime = [...records].sort(
      (a, b) => Date.parse(a.headers.ce_time ?? '') - Date.parse(b.headers.ce_time ?? ''),
    );
    expect(byTime.map((r) => r.headers.ce_type)).toEqual([
      'video.patient.waiting',
      'video.token.generated',
      'video.consultation.started',
      'video.technical.issue.reported',
      'video.image.shared',
      'video.consultation.ended',
    ]);
    for (const r of records) {
      expect(r.topic).toBe(`${prefix}${r.headers.ce_type}`);
      expect(r.headers).toMatchObject({
        ce_specversion: '1.0',
        ce_source: '/video-service',
        ce_subject: c.id,
        'content-type': 'application/json',
      });
      expect(r.headers.ce_id).toMatch(/^[0-9a-f-]{36}$/);
      expect(Number.isNaN(Date.parse(r.headers.ce_time ?? ''))).toBe(false);
      // Every payload is the JSON of its events.proto message.
      const type = r.headers.ce_type as keyof typeof EVENTS;
      expect(() => decode(EVENTS[type], r.value)).not.toThrow();
    }

    const payloadOf = (type: keyof typeof EVENTS) =>
      records.find((r) => r.headers.ce_type === type)?.value;
    const started = decode(
      EVENTS['video.consultation.started'],
      payloadOf('video.consultation.started'),
    );
    expect(started).toMatchObject({
      appointmentId: c.appointmentId,
      consultationId: c.id,
      userId: 'doc-e',
      userRole: ParticipantRole.DOCTOR,
      provider: Provider.JITSI,
      clinicId: 'clinic-1',
    });
    expect(started.sessionId).not.toBe('');
    const ended = decode(EVENTS['video.consultation.ended'], payloadOf('video.consultation.ended'));
    expect(ended.reason).toBe(EndReason.COMPLETED);
    expect(ended.version).toBeGreaterThan(started.version);
    const image = decode(EVENTS['video.image.shared'], payloadOf('video.image.shared'));
    expect(image.sha256).toMatch(/^[0-9a-f]{64}$/);
    // Payloads carry ids and codes, never image bytes.
    expect(JSON.stringify(payloadOf('video.image.shared'))).not.toContain(
      Buffer.from(png()).toString('base64'),
    );
  });
});

describe('cancellation events', () => {
  it('announces a cancelled live consultation as cancelled and ended', async () => {
    const { consultation } = await as('service', 'svc').scheduleConsultation({
      appointmentId: appointmentId('ev-cancel'),
      doctorId: 'doc-c',
      patientId: 'pat-c',
      ...slot(5),
    });
    const c = consultation!;
    await as('doctor', 'doc-c').startConsultation({ consultationId: c.id });
    await as('service', 'svc').cancelConsultation({
      target: { case: 'consultationId', value: c.id },
    });
    const mine = (records: typeof reader.records) =>
      records.filter((r) => r.key === c.appointmentId);
    const records = mine(await reader.waitFor((all) => mine(all).length >= 3));
    const types = records.map((r) => r.headers.ce_type).sort();
    expect(types).toEqual([
      'video.consultation.cancelled',
      'video.consultation.ended',
      'video.consultation.started',
    ]);
    const ended = records.find((r) => r.headers.ce_type === 'video.consultation.ended')!;
    expect(decode(EVENTS['video.consultation.ended'], ended.value).reason).toBe(
      EndReason.CANCELLED,
    );
    const cancelled = records.find((r) => r.headers.ce_type === 'video.consultation.cancelled')!;
    expect(decode(EVENTS['video.consultation.cancelled'], cancelled.value)).toMatchObject({
      appointmentId: c.appointmentId,
      consultationId: c.id,
      clinicId: 'clinic-1',
    });
  });
});

describe('consumed appointment events', () => {
  const created = (id: string, extra: object = {}) => ({
    appointmentId: id,
    clinicId: 'clinic-1',
    doctorId: 'doc-k',
    patientId: 'pat-k',
    scheduledStart: new Date(Date.now() + 3600_000).toISOString(),
    scheduledEnd: new Date(Date.now() + 5400_000).toISOString(),
    appointmentType: 'VIDEO',
    ...extra,
  });

  async function consultationsOf(appointment: string) {
    const page = await as('service', 'svc').listConsultationHistory({ pageSize: 100 });
    return page.consultations.filter((c) => c.appointmentId === appointment);
  }

  async function eventually<T>(
    read: () => Promise<T>,
    done: (value: T) => boolean,
    timeoutMs = 20_000,
  ) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = await read();
      if (done(value)) return value;
      if (Date.now() > deadline) return value;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  it('applies an appointment.created delivered three times once', async () => {
    const appointment = appointmentId('kafka');
    const ceId = randomUUID();
    for (let i = 0; i < 3; i++) {
      await appointments.send(`${prefix}appointment.created`, appointment, created(appointment), {
        ce_id: ceId,
        ce_type: 'appointment.created',
        ce_specversion: '1.0',
        ce_source: '/appointments',
      });
    }
    const found = await eventually(
      () => consultationsOf(appointment),
      (list) => list.length > 0,
    );
    expect(found).toHaveLength(1);
    // Give the two redeliveries time to be (not) applied, then look again.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await consultationsOf(appointment)).toHaveLength(1);
    const trail = await as('clinic_admin', 'admin').listAuditEntries({ resourceId: found[0]!.id });
    expect(trail.entries.filter((e) => e.action === 'consultation.schedule')).toHaveLength(1);
    expect(trail.entries[0]?.actorId).toBe('appointment-events');
  });

  it('tells events apart by source and id: one id from two sources applies twice, a redelivery once', async () => {
    const topic = `${prefix}appointment.created`;
    const ceId = `evt-${randomUUID()}`;
    const headers = (source: string, id = ceId) => ({
      ce_id: id,
      ce_source: source,
      ce_type: 'appointment.created',
      ce_specversion: '1.0',
    });
    const ours = appointmentId('src-ours');
    const theirs = appointmentId('src-theirs');
    const redelivered = appointmentId('src-again');
    const after = appointmentId('src-after');
    // One record key, so one partition: the four are handled in the order sent.
    await appointments.send(topic, ours, created(ours), headers('/appointments'));
    // Another system that happens to use the same id: a different event.
    await appointments.send(topic, ours, created(theirs), headers('/other-system'));
    // The same source and id again (a redelivery, whatever its body says): skipped.
    await appointments.send(topic, ours, created(redelivered), headers('/appointments'));
    await appointments.send(topic, ours, created(after), headers('/appointments', randomUUID()));

    // The last one applied means the three before it were handled.
    expect(
      await eventually(
        () => consultationsOf(after),
        (list) => list.length > 0,
      ),
    ).toHaveLength(1);
    expect(await consultationsOf(ours)).toHaveLength(1);
    expect(await consultationsOf(theirs)).toHaveLength(1);
    expect(await consultationsOf(redelivered)).toHaveLength(0);
  });

  it('sends a poison message to the dead-letter topic and goes on with the next', async () => {
    await appointments.send(`${prefix}appointment.created`, 'poison-1', '{not json');
    await appointments.send(
      `${prefix}appointment.created`,
      'poison-2',
      created('bad id with spaces'),
    );
    const next = appointmentId('after-poison');
    await appointments.send(`${prefix}appointment.created`, next, created(next));

    // The next good message is applied: the partition did not stop at the bad ones.
    expect(
      await eventually(
        () => consultationsOf(next),
        (list) => list.length > 0,
      ),
    ).toHaveLength(1);

    const dlq = await collectRecords(brokers, [`${prefix}appointment.created.dlq`]);
    try {
      const letters = await dlq.waitFor((all) => all.length >= 2);
      expect(letters.map((r) => [r.key, r.headers['dlq-reason']]).sort()).toEqual([
        ['poison-1', 'unparseable'],
        ['poison-2', 'invalid'],
      ]);
      for (const letter of letters) {
        expect(letter.headers['dlq-original-topic']).toBe(`${prefix}appointment.created`);
        expect(letter.headers['dlq-error']).not.toBe('');
      }
    } finally {
      await dlq.stop();
    }
  });

  it('cancels and reschedules through events', async () => {
    const appointment = appointmentId('lifecycle');
    await appointments.send(`${prefix}appointment.created`, appointment, created(appointment));
    await eventually(
      () => consultationsOf(appointment),
      (list) => list.length > 0,
    );
    const start = new Date(Date.now() + 7200_000);
    await appointments.send(`${prefix}appointment.rescheduled`, appointment, {
      appointmentId: appointment,
      clinicId: 'clinic-1',
      scheduledStart: start.toISOString(),
      scheduledEnd: new Date(start.getTime() + 1800_000).toISOString(),
    });
    const moved = await eventually(
      () => consultationsOf(appointment),
      (list) => list[0]?.scheduledStart?.seconds === BigInt(Math.floor(start.getTime() / 1000)),
    );
    expect(moved[0]?.scheduledStart?.seconds).toBe(BigInt(Math.floor(start.getTime() / 1000)));
    await appointments.send(`${prefix}appointment.cancelled`, appointment, {
      appointmentId: appointment,
      clinicId: 'clinic-1',
    });
    const cancelled = await eventually(
      () => consultationsOf(appointment),
      (list) => list[0]?.endReason === EndReason.CANCELLED,
    );
    expect(cancelled[0]?.endReason).toBe(EndReason.CANCELLED);
  });
});
