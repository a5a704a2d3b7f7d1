import { randomBytes, randomUUID } from 'node:crypto';
import { Kafka, logLevel, type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  APPOINTMENT_EVENT_TYPES,
  type AppointmentEventType,
  createAppointmentConsumer,
} from '../../src/messaging/appointment-consumer.js';
import { appointmentId } from '../support/clients.js';
import { collectRecords, uniquePrefix } from '../support/events.js';
import { createTopics } from '../support/kafka.js';
import { openTestUseCases, type TestUseCases } from '../support/use-cases.js';

/**
 * The appointment consumer applies a fetched batch of a partition in one transaction, and
 * falls back to one event at a time when that transaction fails. The events of a test are
 * on the broker before the consumer starts, sent in one request, so that they reach it as
 * one batch. PostgreSQL's `xmin` tells which transaction wrote a row: the consultations,
 * inbox rows and audit entries of one batch share it. Real Kafka, either engine.
 */
const brokers = inject('kafkaBrokers');
const kafka = new Kafka({
  clientId: 'test-consumer-batch',
  brokers: brokers.split(','),
  logLevel: logLevel.NOTHING,
});
const SOURCE = '/appointments-service';
let u: TestUseCases;
let producer: Producer;

beforeAll(async () => {
  u = await openTestUseCases();
  producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
});
afterAll(async () => {
  await producer?.disconnect();
  await u?.stop();
});

/** The topics of one test, one partition each (so one batch holds all its events). */
async function topicsOf(prefix: string) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const topics = APPOINTMENT_EVENT_TYPES.map((type) => `${prefix}${type}`);
    await createTopics(admin, [...topics, ...topics.map((t) => `${t}.dlq`)], 1);
  } finally {
    await admin.disconnect();
  }
  return (type: AppointmentEventType) => `${prefix}${type}`;
}

interface Sent {
  readonly key: string;
  readonly value: string | object;
  readonly ceId?: string;
}

/** Sends the events in one request: one record batch on the broker, in this order. */
async function send(topic: string, events: readonly Sent[]) {
  await producer.send({
    topic,
    acks: -1,
    messages: events.map((e) => ({
      key: e.key,
      value: typeof e.value === 'string' ? e.value : JSON.stringify(e.value),
      headers: { ce_id: e.ceId ?? randomUUID(), ce_source: SOURCE, ce_specversion: '1.0' },
    })),
  });
}

/**
 * Runs the service's consumer until `done` holds, then stops it: a consumer group of its
 * own, so it reads the topics from the beginning, the events handled before included.
 */
async function consumeUntil(
  topicFor: (type: AppointmentEventType) => string,
  done: () => Promise<boolean>,
) {
  const groupId = `test-batch-${randomBytes(4).toString('hex')}`;
  const consumer = createAppointmentConsumer({
    kafka,
    producer,
    useCases: u.deps,
    logger: u.deps.logger,
    groupId,
    topicFor,
    maxAttempts: 2,
    concurrency: 3,
  });
  await consumer.start();
  try {
    const deadline = Date.now() + 30_000;
    while (!(await done())) {
      if (Date.now() > deadline) throw new Error('the events were not applied in time');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    await consumer.stop();
  }
}

const created = (appointment: string, doctorId = 'doc-batch', hours = 1) => ({
  appointmentId: appointment,
  clinicId: 'clinic-1',
  doctorId,
  patientId: 'pat-batch',
  scheduledStart: new Date(Date.now() + hours * 3600_000).toISOString(),
  scheduledEnd: new Date(Date.now() + hours * 3600_000 + 1800_000).toISOString(),
  appointmentType: 'VIDEO',
});

const rescheduled = (appointment: string, start: Date) => ({
  appointmentId: appointment,
  clinicId: 'clinic-1',
  scheduledStart: start.toISOString(),
  scheduledEnd: new Date(start.getTime() + 1800_000).toISOString(),
});

async function count(from: string, params: unknown[]): Promise<number> {
  const [row] = await u.sql<{ n: string | number }>(`select count(*) as n from ${from}`, params);
  return Number(row?.n);
}

/** The transactions (`xmin`) that wrote the rows the query selects. */
async function writers(query: string, params: unknown[]): Promise<string[]> {
  const rows = await u.sql<{ x: string }>(`select distinct xmin::text as x from ${query}`, params);
  return rows.map((row) => row.x);
}

const consultationsOf = (appointments: readonly string[]) =>
  count('consultation where appointment_id in (?)', [appointments]);

/** Consultations, inbox rows and `consultation.schedule` audit entries of these events. */
async function traces(appointments: readonly string[], ceIds: readonly string[]) {
  return {
    consultations: await consultationsOf(appointments),
    inbox: await count('inbox_message where event_id in (?)', [ceIds]),
    scheduled: await count(
      `audit_entry where request_id in (?) and action = 'consultation.schedule' and outcome = 'allowed'`,
      [ceIds],
    ),
  };
}

const fellBack = () =>
  u.logLines().filter((line) => String(line.msg).includes('could not be applied together'));

describe('a batch of appointment events', () => {
  it('is applied in one transaction: effects, inbox rows and audit entries, in order', async () => {
    const topicFor = await topicsOf(uniquePrefix('batch'));
    const appointments = Array.from({ length: 40 }, () => appointmentId('batch'));
    const ceIds = appointments.map(() => randomUUID());
    await send(
      topicFor('appointment.created'),
      appointments.map((a, i) => ({ key: a, value: created(a), ceId: ceIds[i] })),
    );
    await consumeUntil(topicFor, async () => (await consultationsOf(appointments)) === 40);

    expect(await traces(appointments, ceIds)).toEqual({
      consultations: 40,
      inbox: 40,
      scheduled: 40,
    });
    // One transaction wrote them all (one by one, each event would have had its own).
    const transactions = [
      ...(await writers('consultation where appointment_id in (?)', [appointments])),
      ...(await writers('inbox_message where event_id in (?)', [ceIds])),
      ...(await writers('audit_entry where request_id in (?)', [ceIds])),
    ];
    expect(new Set(transactions).size).toBe(1);

    // Three moves of one appointment in one batch: applied in order, the last one wins.
    const moved = appointments[0]!;
    const starts = [5, 3, 7].map((h) => new Date(Math.floor(Date.now() / 1000 + h * 3600) * 1000));
    const moveIds = starts.map(() => randomUUID());
    await send(
      topicFor('appointment.rescheduled'),
      starts.map((start, i) => ({
        key: moved,
        value: rescheduled(moved, start),
        ceId: moveIds[i],
      })),
    );
    const startOf = async () => {
      const [row] = await u.sql<{ start: Date | string }>(
        'select scheduled_start as start from consultation where appointment_id = ?',
        [moved],
      );
      return row && new Date(row.start).getTime();
    };
    await consumeUntil(
      topicFor,
      async () => (await count('inbox_message where event_id in (?)', [moveIds])) === 3,
    );
    expect(await startOf()).toBe(starts[2]!.getTime());
    expect(
      await writers(`audit_entry where request_id in (?) and outcome = 'allowed'`, [moveIds]),
    ).toHaveLength(1);
    expect(fellBack()).toEqual([]);
  }, 90_000);

  it('sends a poison event in the middle alone to the dead-letter topic and applies the rest once', async () => {
    const prefix = uniquePrefix('batch-poison');
    const topicFor = await topicsOf(prefix);
    const topic = topicFor('appointment.created');
    // An appointment that has its consultation: created again with another doctor, it is
    // refused (ALREADY_EXISTS) however often it is tried.
    const taken = appointmentId('batch-taken');
    await send(topic, [{ key: taken, value: created(taken) }]);
    await consumeUntil(topicFor, async () => (await consultationsOf([taken])) === 1);

    const before = Array.from({ length: 10 }, () => appointmentId('batch-before'));
    const after = Array.from({ length: 10 }, () => appointmentId('batch-after'));
    const good = [...before, ...after];
    const ceIds = good.map(() => randomUUID());
    const poisonId = randomUUID();
    await send(topic, [
      ...before.map((a, i) => ({ key: a, value: created(a), ceId: ceIds[i] })),
      { key: taken, value: created(taken, 'another-doctor'), ceId: poisonId },
      ...after.map((a, i) => ({ key: a, value: created(a), ceId: ceIds[10 + i] })),
    ]);
    const dlq = await collectRecords(brokers, [`${topic}.dlq`]);
    try {
      await consumeUntil(topicFor, async () => (await consultationsOf(good)) === 20);
      const letters = await dlq.waitFor((records) => records.length >= 1);
      // Nothing else follows it there.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(letters.map((r) => [r.key, r.headers.ce_id, r.headers['dlq-reason']])).toEqual([
        [taken, poisonId, 'already_exists'],
      ]);
    } finally {
      await dlq.stop();
    }
    expect(fellBack()).not.toEqual([]);
    expect(await traces(good, ceIds)).toEqual({ consultations: 20, inbox: 20, scheduled: 20 });
    // The refusal is audited once: by the one-by-one replay, not by the batch rolled back.
    expect(await u.sql(`select outcome from audit_entry where request_id = ?`, [poisonId])).toEqual(
      [{ outcome: 'already_exists' }],
    );
    expect(await count('inbox_message where event_id = ?', [poisonId])).toBe(0);
    expect(await consultationsOf([taken])).toBe(1);
  }, 90_000);

  it('schedules an appointment once when a batch holds it twice or it was scheduled before', async () => {
    const topicFor = await topicsOf(uniquePrefix('batch-twice'));
    const topic = topicFor('appointment.created');
    const fellBackBefore = fellBack().length;
    const before = appointmentId('batch-scheduled-before');
    await send(topic, [{ key: before, value: created(before) }]);
    await consumeUntil(topicFor, async () => (await consultationsOf([before])) === 1);

    // Two events of one new appointment (the appointments service sent it twice, with ids
    // of its own), one of the appointment scheduled before, and a new one.
    const [twice, fresh] = [appointmentId('batch-twice'), appointmentId('batch-fresh')];
    const ceIds = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    await send(topic, [
      { key: twice, value: created(twice), ceId: ceIds[0] },
      { key: before, value: created(before), ceId: ceIds[1] },
      { key: twice, value: created(twice), ceId: ceIds[2] },
      { key: fresh, value: created(fresh), ceId: ceIds[3] },
    ]);
    await consumeUntil(topicFor, async () => (await consultationsOf([fresh])) === 1);

    expect(await traces([twice, before, fresh], ceIds)).toEqual({
      consultations: 3,
      inbox: 4,
      scheduled: 4,
    });
    // Each audit entry names the one consultation of its appointment.
    const named = await u.sql<{ appointment: string; n: string | number }>(
      `select c.appointment_id as appointment, count(*) as n
         from audit_entry a join consultation c on c.id::text = a.resource_id
        where a.request_id in (?) group by c.appointment_id order by 1`,
      [ceIds],
    );
    expect(named.map((r) => [r.appointment, Number(r.n)]).sort()).toEqual(
      [
        [before, 1],
        [fresh, 1],
        [twice, 2],
      ].sort(),
    );
    expect(
      await count(
        'participant p join consultation c on c.id = p.consultation_id where c.appointment_id = ?',
        [twice],
      ),
    ).toBe(2);
    expect(fellBack()).toHaveLength(fellBackBefore);
  }, 90_000);

  it('applies nothing twice when a handled batch is delivered again', async () => {
    const topicFor = await topicsOf(uniquePrefix('batch-again'));
    const topic = topicFor('appointment.created');
    const appointments = Array.from({ length: 20 }, () => appointmentId('batch-again'));
    const events = appointments.map((a) => ({ key: a, value: created(a), ceId: randomUUID() }));
    const ceIds = events.map((e) => e.ceId);
    await send(topic, events);
    await consumeUntil(topicFor, async () => (await consultationsOf(appointments)) === 20);
    const fellBackBefore = fellBack().length;

    // The same events again (a producer's retry) between two new ones, to a consumer group
    // that has committed nothing: it gets the batch handled before, then the copies.
    const [first, last] = [appointmentId('batch-first'), appointmentId('batch-last')];
    await send(topic, [
      { key: first, value: created(first) },
      ...events,
      { key: last, value: created(last) },
    ]);
    await consumeUntil(topicFor, async () => (await consultationsOf([last])) === 1);

    expect(await traces(appointments, ceIds)).toEqual({
      consultations: 20,
      inbox: 20,
      scheduled: 20,
    });
    expect(await consultationsOf([first, last])).toBe(2);
    // The events handled before were skipped inside the batch, which did not fail for them:
    // the new ones around them committed together.
    expect(fellBack()).toHaveLength(fellBackBefore);
    expect(await writers('consultation where appointment_id in (?)', [[first, last]])).toHaveLength(
      1,
    );
  }, 90_000);
});
