/**
 * The event targets, measured against a real Kafka broker (KAFKA_BROKERS) with the
 * service in a Node process of its own, started with that broker, a topic prefix and a
 * consumer group of this run's own:
 *
 * 1. Database commit → Kafka publish. GenerateToken at a steady rate on the seeded
 *    consultations; each call commits one outbox row (`video.token.generated`), which the
 *    service's relay publishes. A plain kafkajs consumer here stamps each record when it
 *    arrives; the latency is that stamp minus the record's `ce_time` header. `ce_time` is
 *    the outbox row's `created_at`, which is the service's clock read inside the
 *    transaction, after the consultation was loaded and before the audit and outbox rows
 *    are inserted and the transaction commits (src/video/events.ts `addEvent`, from each use case;
 *    src/messaging/outbox-relay.ts sends `new Date(row.created_at)` as `ce_time`). So the
 *    interval runs from just before the commit to the bench's consumer holding the record:
 *    the rest of the transaction and its commit, the relay's wake-up (the committing copy
 *    signals its relay at once; the 50 ms poll is for other copies' commits), its claim,
 *    the publish (acks=all) and the consumer's fetch.
 * 2. `appointment.created` on Kafka → consultation row. Appointment events at a steady
 *    rate, each stamped when handed to the producer; the service's consumer applies them.
 *    The latency is the consultation row's `created_at` (the service's clock read inside
 *    the committing transaction, just before the row is inserted and committed) minus the
 *    send stamp. Read from PostgreSQL after the run.
 *
 * 3. `appointment.created` sustained: a backlog of `drainEvents` events sent as fast as the
 *    producer goes (batches of 500), while the service consumes; rows per second over the
 *    span of their rows' `created_at` (first to last), which is the consumer's rate while
 *    it has a backlog, since the sends finish long before the rows do.
 *
 * Both processes run on the same machine, so their clocks are one clock; `ce_time` and
 * `Date.now()` have millisecond resolution.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { videoClient } from '../test/support/clients.js';
import { cpuSeconds } from './child.js';
import { CLINIC, startService, withClient } from './fixture.js';
import { type LatencySummary, latencySummary, paced } from './load.js';

export interface EventsOptions {
  readonly databaseUrl: string;
  readonly brokers: string;
  /** Seeded consultations the doctor may join (GenerateToken). */
  readonly consultationIds: readonly string[];
  /** GenerateToken calls per second (each publishes one event). */
  readonly publishRate: number;
  /** appointment.created events per second. */
  readonly consumeRate: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** How long after the last send events may still arrive or be applied. */
  readonly waitMs: number;
  /** The backlog of appointment.created whose draining measures the sustained rate. */
  readonly drainEvents: number;
}

export interface PublishResult {
  /** Events committed (by `ce_time`) in the measured window, per second. */
  readonly eventsPerSecond: number;
  /** GenerateToken calls made in the measured window, and their latency. */
  readonly calls: LatencySummary;
  /** CPU use of the service's process over the measured window, % of one core. */
  readonly serverCpuPercent: number;
  /** commit (ce_time) → received by the bench's consumer, events of the measured window. */
  readonly latency: LatencySummary;
  /** Events (of all calls) never received within `waitMs` of the last call. */
  readonly missing: number;
}

export interface ConsumeResult {
  readonly sent: number;
  /** Events sent per second, first send to last. */
  readonly sentPerSecond: number;
  /** send → acknowledged by the broker (acks=all), the bench's producer. */
  readonly ackLatency: LatencySummary;
  /** Events whose consultation row was created within `waitMs` of their send. */
  readonly applied: number;
  /** Rows created per second, from the first send to the last row of these events. */
  readonly appliedPerSecond: number;
  /**
   * send → consultation row `created_at`, over every event sent; an event without a row
   * (within the wait) counts as longer than the wait, so a percentile it decides is
   * reported as `Infinity` (JSON `null`).
   */
  readonly latency: LatencySummary;
  /** The same over the events that made a row. */
  readonly appliedLatency: LatencySummary;
  /** CPU use of the service's process from the first send until the wait ended. */
  readonly serverCpuPercent: number;
}

export interface DrainResult {
  readonly events: number;
  /** First send to the last acknowledgement of the backlog. */
  readonly sendSeconds: number;
  /** First row to last row of the backlog (`created_at`). */
  readonly applySeconds: number;
  readonly rowsPerSecond: number;
  /** CPU use of the service's process from the first send until the last row. */
  readonly serverCpuPercent: number;
}

export interface EventsResult {
  readonly topicPrefix: string;
  readonly publish: PublishResult;
  readonly consume: ConsumeResult;
  readonly drain: DrainResult;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function measureEvents(options: EventsOptions): Promise<EventsResult> {
  const run = randomBytes(4).toString('hex');
  const prefix = `bench-${run}.`;
  const group = `bench-${run}`;
  const kafka = new Kafka({
    clientId: `bench-${run}`,
    brokers: options.brokers.split(','),
    logLevel: logLevel.NOTHING,
  });
  // Outbox rows of the earlier measurements (no broker then) would be published first
  // and delay this one's events: they are this bench database's own, marked sent. That
  // bulk update, which no running service makes, leaves the table as autovacuum would not
  // for long: a dead version of every row, still in the pending events' index until a
  // vacuum, and statistics from when all were pending. Measured on that, commit → Kafka
  // took 25 ms at the median instead of 3. So the bench does at once what the daemon does
  // within its next round.
  await withClient(options.databaseUrl, async (client) => {
    await client.query('update outbox_message set sent_at = now() where sent_at is null');
    await client.query('vacuum analyze outbox_message');
  });
  const service = await startService(options.databaseUrl, {
    KAFKA_BROKERS: options.brokers,
    KAFKA_TOPIC_PREFIX: prefix,
    KAFKA_CONSUMER_GROUP: group,
    KAFKA_CLIENT_ID: `video-service-bench-${run}`,
  });
  try {
    // Topics exist and the service consumes once its consumer group is stable.
    await waitForGroup(kafka, group);
    const pid = service.process.pid;
    const publish = await measurePublish(
      kafka,
      prefix,
      pid,
      service.baseUrl,
      service.doctorToken,
      options,
    );
    const consume = await measureConsume(kafka, prefix, pid, options);
    const drain = await measureDrain(kafka, prefix, pid, options);
    return { topicPrefix: prefix, publish, consume, drain };
  } finally {
    await service.process.stop();
  }
}

async function measurePublish(
  kafka: Kafka,
  prefix: string,
  pid: number,
  baseUrl: string,
  token: string,
  options: EventsOptions,
): Promise<PublishResult> {
  const topic = `${prefix}video.token.generated`;
  const received = new Map<string, { ceTime: number; at: number }>();
  const consumer = kafka.consumer({
    groupId: `${prefix}reader`,
    maxWaitTimeInMs: 100,
    metadataMaxAge: 1_000,
  });
  const joined = new Promise<void>((resolve) =>
    consumer.on(consumer.events.GROUP_JOIN, () => resolve()),
  );
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const at = Date.now();
      for (const message of batch.messages) {
        const id = message.headers?.ce_id?.toString();
        const time = message.headers?.ce_time?.toString();
        if (!id || !time || received.has(id)) continue;
        received.set(id, { ceTime: Date.parse(time), at });
      }
    },
  });
  await joined;

  const client = videoClient(baseUrl, token);
  const ids = options.consultationIds;
  let ok = 0;
  let errors = 0;
  let firstError: unknown;
  let measuring = false;
  const callMs: number[] = [];
  const pending = new Set<Promise<void>>();
  const fire = (i: number) => {
    const consultationId = ids[(i * 7919) % ids.length] ?? ids[0] ?? '';
    const measured = measuring;
    const started = performance.now();
    const call = client.generateToken({ consultationId }).then(
      () => {
        ok++;
        if (measured) callMs.push(performance.now() - started);
      },
      (error: unknown) => {
        errors++;
        firstError ??= error;
      },
    );
    pending.add(call);
    void call.finally(() => pending.delete(call));
  };

  let next = 0;
  await paced(options.publishRate, options.warmupMs, (from, to) => {
    for (let i = from; i < to; i++) fire(next++);
  });
  measuring = true;
  const cpuFrom = cpuSeconds(pid);
  const measureFrom = Date.now();
  const measured = await paced(options.publishRate, options.durationMs, (from, to) => {
    for (let i = from; i < to; i++) fire(next++);
  });
  const measureTo = Date.now();
  const cpu = cpuSeconds(pid) - cpuFrom;
  measuring = false;
  await Promise.all(pending);
  if (errors > 0) throw new Error(`GenerateToken failed ${errors} times: ${String(firstError)}`);
  const deadline = Date.now() + options.waitMs;
  while (received.size < ok && Date.now() < deadline) await sleep(20);
  await consumer.disconnect();

  // The events committed while the calls of the measured window were being made.
  const latencies = [...received.values()]
    .filter((event) => event.ceTime >= measureFrom && event.ceTime <= measureTo)
    .map((event) => event.at - event.ceTime);
  return {
    eventsPerSecond: Math.round(latencies.length / ((measureTo - measureFrom) / 1000)),
    calls: latencySummary(callMs),
    serverCpuPercent: Math.round((cpu / measured.seconds) * 100),
    latency: latencySummary(latencies),
    missing: Math.max(0, ok - received.size),
  };
}

async function measureConsume(
  kafka: Kafka,
  prefix: string,
  pid: number,
  options: EventsOptions,
): Promise<ConsumeResult> {
  const topic = `${prefix}appointment.created`;
  const producer = kafka.producer();
  await producer.connect();
  const run = randomBytes(3).toString('hex');
  const sentAt = new Map<string, number>();
  const acks: number[] = [];
  let failed: unknown;
  const pending = new Set<Promise<void>>();
  const start = Date.now();
  const send = (appointmentIds: string[], measured: boolean) => {
    if (appointmentIds.length === 0) return;
    const at = Date.now();
    const messages = appointmentIds.map((appointmentId) => {
      if (measured) sentAt.set(appointmentId, at);
      return appointmentCreated(appointmentId, start, at);
    });
    const call = producer.send({ topic, acks: -1, messages }).then(
      () => {
        if (measured) for (const _ of messages) acks.push(Date.now() - at);
      },
      (error: unknown) => {
        failed ??= error;
      },
    );
    pending.add(call);
    void call.finally(() => pending.delete(call));
  };
  const appointment = (phase: string, i: number) => `bench-ev-${run}-${phase}-${i}`;

  try {
    // Warm-up: a few events at a low rate, applied before the measured run starts.
    const warmup = Math.ceil(options.warmupMs / 20);
    await paced(50, warmup * 20, (from, to) =>
      send(
        Array.from({ length: to - from }, (_, k) => appointment('w', from + k)),
        false,
      ),
    );
    await Promise.all(pending);
    if (failed) {
      throw new Error(`sending the warm-up's appointment.created failed: ${String(failed)}`);
    }
    const warmIds = Array.from({ length: warmup }, (_, i) => appointment('w', i));
    const warmDeadline = Date.now() + options.waitMs;
    while ((await createdAt(options.databaseUrl, warmIds)).size < warmup) {
      if (Date.now() > warmDeadline) throw new Error('appointment.created warm-up never applied');
      await sleep(100);
    }

    const cpuFrom = cpuSeconds(pid);
    const cpuStart = performance.now();
    const measured = await paced(options.consumeRate, options.durationMs, (from, to) =>
      send(
        Array.from({ length: to - from }, (_, k) => appointment('m', from + k)),
        true,
      ),
    );
    await Promise.all(pending);
    if (failed) throw new Error(`sending appointment.created failed: ${String(failed)}`);
    const ids = [...sentAt.keys()];
    const deadline = Date.now() + options.waitMs;
    let rows = new Map<string, number>();
    for (;;) {
      rows = await createdAt(options.databaseUrl, ids);
      if (rows.size >= ids.length || Date.now() > deadline) break;
      await sleep(250);
    }
    const cpu = cpuSeconds(pid) - cpuFrom;
    const cpuWindow = (performance.now() - cpuStart) / 1000;

    const latencies = ids.map((id) => {
      const row = rows.get(id);
      const sent = sentAt.get(id) ?? 0;
      return row === undefined || row - sent > options.waitMs ? Infinity : row - sent;
    });
    const applied = latencies.filter(Number.isFinite);
    const firstSend = Math.min(...sentAt.values());
    const lastRow = Math.max(...rows.values());
    return {
      sent: ids.length,
      sentPerSecond: Math.round(ids.length / measured.seconds),
      ackLatency: latencySummary(acks),
      applied: applied.length,
      appliedPerSecond:
        rows.size === 0 ? 0 : Math.round(rows.size / ((lastRow - firstSend) / 1000)),
      latency: latencySummary(latencies),
      appliedLatency: latencySummary(applied),
      serverCpuPercent: Math.round((cpu / cpuWindow) * 100),
    };
  } finally {
    await producer.disconnect();
  }
}

/** An `appointment.created` record, a video appointment an hour after `start`. */
function appointmentCreated(appointmentId: string, start: number, at: number) {
  return {
    key: appointmentId,
    value: JSON.stringify({
      appointmentId,
      clinicId: CLINIC,
      doctorId: 'bench-events-doctor',
      patientId: 'bench-events-patient',
      scheduledStart: new Date(start + 3_600_000).toISOString(),
      scheduledEnd: new Date(start + 5_400_000).toISOString(),
      appointmentType: 'VIDEO',
    }),
    headers: {
      ce_specversion: '1.0',
      ce_id: randomUUID(),
      ce_source: '/appointments',
      ce_type: 'appointment.created',
      ce_time: new Date(at).toISOString(),
      'content-type': 'application/json',
    },
  };
}

/** Sends a backlog as fast as the producer goes, and times the service's draining of it. */
async function measureDrain(
  kafka: Kafka,
  prefix: string,
  pid: number,
  options: EventsOptions,
): Promise<DrainResult> {
  const topic = `${prefix}appointment.created`;
  const producer = kafka.producer();
  await producer.connect();
  const run = randomBytes(3).toString('hex');
  const ids = Array.from({ length: options.drainEvents }, (_, i) => `bench-ev-${run}-d-${i}`);
  try {
    const cpuFrom = cpuSeconds(pid);
    const started = performance.now();
    const start = Date.now();
    const sends = [];
    for (let i = 0; i < ids.length; i += 500) {
      const messages = ids.slice(i, i + 500).map((id) => appointmentCreated(id, start, Date.now()));
      sends.push(producer.send({ topic, acks: -1, messages }));
    }
    await Promise.all(sends);
    const sendSeconds = (performance.now() - started) / 1000;
    const deadline = Date.now() + options.waitMs + options.drainEvents;
    let rows = new Map<string, number>();
    for (;;) {
      rows = await createdAt(options.databaseUrl, ids);
      if (rows.size >= ids.length) break;
      if (Date.now() > deadline) {
        throw new Error(`only ${rows.size} of ${ids.length} backlog events made a row in time`);
      }
      await sleep(250);
    }
    const cpuPercent = ((cpuSeconds(pid) - cpuFrom) / ((performance.now() - started) / 1000)) * 100;
    const times = [...rows.values()];
    const applySeconds = (Math.max(...times) - Math.min(...times)) / 1000;
    return {
      events: ids.length,
      sendSeconds: Math.round(sendSeconds * 100) / 100,
      applySeconds: Math.round(applySeconds * 100) / 100,
      rowsPerSecond: Math.round(ids.length / applySeconds),
      serverCpuPercent: Math.round(cpuPercent),
    };
  } finally {
    await producer.disconnect();
  }
}

/** `created_at` of the consultations of these appointments, in epoch milliseconds. */
async function createdAt(
  databaseUrl: string,
  appointmentIds: string[],
): Promise<Map<string, number>> {
  return withClient(databaseUrl, async (client) => {
    const result = await client.query<{ appointment_id: string; ms: string }>(
      `select appointment_id, extract(epoch from created_at) * 1000 as ms
         from consultation where appointment_id = any($1)`,
      [appointmentIds],
    );
    return new Map(result.rows.map((row) => [row.appointment_id, Number(row.ms)]));
  });
}

/** Waits until consumer group `group` is stable with a member (it has joined and consumes). */
async function waitForGroup(kafka: Kafka, group: string, timeoutMs = 60_000): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { groups } = await admin.describeGroups([group]);
      const found = groups[0];
      if (found?.state === 'Stable' && found.members.length > 0) return;
      if (Date.now() > deadline) throw new Error(`consumer group ${group} never became stable`);
      await sleep(200);
    }
  } finally {
    await admin.disconnect();
  }
}
