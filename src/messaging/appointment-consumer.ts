import { setTimeout as wait } from 'node:timers/promises';
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs';
import type { Logger } from 'pino';
import { inConsumerSpans } from '../tracing.js';
import { type Caller, EventAlreadyHandled } from '../video/audit.js';
import { addedEvents } from '../video/events.js';
import type { UseCaseDeps } from '../video/use-case.js';
import { cancelConsultation } from '../video/use-cases/cancel-consultation.js';
import { rescheduleConsultation } from '../video/use-cases/reschedule-consultation.js';
import { scheduleConsultation } from '../video/use-cases/schedule-consultation.js';
import {
  type InboxCaller,
  scheduleConsultations,
} from '../video/use-cases/schedule-consultations.js';
import {
  appointmentCancellation,
  appointmentCreation,
  appointmentMove,
  asPoison,
  errorText,
  IGNORED,
  parseJson,
} from './appointment-events.js';
import { cloudEventAttributes } from './cloudevents.js';

/** The appointment events this service reacts to (topic = type, with the prefix). */
export const APPOINTMENT_EVENT_TYPES = [
  'appointment.created',
  'appointment.cancelled',
  'appointment.rescheduled',
] as const;
export type AppointmentEventType = (typeof APPOINTMENT_EVENT_TYPES)[number];

/** The actor that audit entries name for changes made by appointment events. */
export const APPOINTMENT_EVENTS_ACTOR = 'appointment-events';

const MAX_BACKOFF_MS = 30_000;
/**
 * The most events of a fetched batch applied in one transaction: a commit per chunk, not
 * per event, while a poison event costs at most this many events applied a second time.
 */
const CHUNK = 100;
/**
 * The events applied in a shared transaction. A cancellation may close a live
 * consultation's provider session, which it does after its own commit: inside a batch that
 * would come before the batch commits, or even when it rolls back. Cancellations are few;
 * each keeps a transaction of its own.
 */
const APPLIED_TOGETHER: ReadonlySet<AppointmentEventType> = new Set([
  'appointment.created',
  'appointment.rescheduled',
]);

export interface AppointmentConsumerOptions {
  readonly kafka: Kafka;
  readonly producer: Producer;
  /** The use cases the events apply (scheduling, cancelling, rescheduling). */
  readonly useCases: UseCaseDeps;
  readonly logger: Logger;
  readonly groupId: string;
  readonly topicFor: (type: AppointmentEventType) => string;
  readonly maxAttempts: number;
  /** Partitions handled at once; messages of one partition stay in order. */
  readonly concurrency: number;
}

/**
 * Consumes appointment events and applies them through the same use cases as the RPCs.
 * Each event is applied once: its source and id (CloudEvents `ce_source` and `ce_id`, which
 * together identify an event; else the topic and the record's topic/partition/offset) go
 * into the inbox in the same transaction as its effect, and offsets are committed
 * only after that transaction committed. The events of a fetched batch are applied in
 * order in one transaction (per CHUNK): its inbox rows, effects, audit entries and outbox
 * events commit together. When that transaction fails for any reason, it rolls back and
 * the events are applied again one by one, each in its own: transient failures are
 * retried with backoff, and a message that cannot succeed goes to `<topic>.dlq` with the
 * reason in its headers while the others are applied.
 */
export function createAppointmentConsumer(options: AppointmentConsumerOptions) {
  const { useCases, logger, producer } = options;
  const stopping = new AbortController();
  const consumer: Consumer = options.kafka.consumer({
    groupId: options.groupId,
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
    // Refresh partition metadata often enough that partitions added or moved are
    // picked up in seconds, not kafkajs's default five minutes.
    metadataMaxAge: 30_000,
    // After a crash kafkajs restarts the consumer itself, unless it is being stopped.
    retry: { restartOnFailure: async () => !stopping.signal.aborted },
  });
  const byTopic = new Map(APPOINTMENT_EVENT_TYPES.map((type) => [options.topicFor(type), type]));
  /** consumer.run was called: from then on kafkajs joins, rejoins and restarts it. */
  let running = false;
  let restartTimer: NodeJS.Timeout | undefined;
  let restarts = 0;
  let joined = false;
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    restarts = 0;
    // Rebalances rejoin often (new partitions, a broker restart): only the first join is news.
    const details = { groupId: payload.groupId, durationMs: payload.duration };
    if (joined) logger.debug(details, 'appointment consumer rejoined its group');
    else logger.info(details, 'appointment consumer joined its group');
    joined = true;
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (payload.restart || stopping.signal.aborted) return;
    // An error kafkajs does not retry: it stopped the consumer for good, so start it anew.
    running = false;
    restartLater(payload.error);
  });

  function restartLater(error: unknown) {
    joined = false;
    const delay = Math.min(MAX_BACKOFF_MS, 1_000 * 2 ** Math.min(restarts++, 5));
    logger.error({ err: error, delayMs: delay }, 'appointment consumer stopped; starting it again');
    clearTimeout(restartTimer);
    restartTimer = setTimeout(() => {
      start().catch((failure: unknown) => restartLater(failure));
    }, delay);
  }

  /**
   * Connects, subscribes and runs, once. The group join that follows belongs to kafkajs,
   * however long the broker takes: waiting for it under a timeout and starting again would
   * only find the consumer running ("Cannot subscribe to topic while consumer is running").
   */
  async function start(): Promise<void> {
    if (running || stopping.signal.aborted) return;
    await consumer.connect();
    // stop() may have disconnected while this connected: leave nothing connected behind.
    if (stopping.signal.aborted) return void (await consumer.disconnect());
    await consumer.subscribe({ topics: [...byTopic.keys()], fromBeginning: true });
    if (stopping.signal.aborted) return void (await consumer.disconnect());
    running = true;
    consumer
      .run({
        autoCommit: true,
        // Offsets are resolved as the transactions commit, never for a batch cut short.
        eachBatchAutoResolve: false,
        // One appointment's events share a partition (keyed by appointment id), so they
        // stay in order; different appointments are independent.
        partitionsConsumedConcurrently: options.concurrency,
        eachBatch: handleBatch,
      })
      .catch((error: unknown) => {
        running = false;
        if (!stopping.signal.aborted) restartLater(error);
      });
  }

  async function apply(
    deps: UseCaseDeps,
    type: AppointmentEventType,
    message: KafkaMessage,
    caller: (clinicId: string) => Caller,
  ) {
    const json = parseJson(message.value);
    switch (type) {
      case 'appointment.created': {
        const creation = appointmentCreation(json);
        if (creation === IGNORED) return creation;
        await scheduleConsultation(deps, caller(creation.clinicId), creation.request);
        return 'applied';
      }
      case 'appointment.cancelled': {
        const { clinicId, request } = appointmentCancellation(json);
        await cancelConsultation(deps, caller(clinicId), request);
        return 'applied';
      }
      case 'appointment.rescheduled': {
        const { clinicId, request } = appointmentMove(json);
        await rescheduleConsultation(deps, caller(clinicId), request);
        return 'applied';
      }
    }
  }

  /**
   * A fetched batch of one partition, in order: chunk by chunk in one transaction each, a
   * chunk that fails one event at a time. Offsets move only past what committed; a stop or
   * a rebalance ends the batch between transactions, and the rest is fetched again.
   */
  async function handleBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, commitOffsetsIfNecessary } = payload;
    const type = byTopic.get(batch.topic);
    const goOn = () => payload.isRunning() && !payload.isStale();
    for (let from = 0; from < batch.messages.length && goOn(); from += CHUNK) {
      const chunk = batch.messages.slice(from, from + CHUNK);
      const together =
        type &&
        APPLIED_TOGETHER.has(type) &&
        (await inConsumerSpans(batch.topic, chunk, () => applyTogether(type, batch, chunk)));
      if (together) {
        resolveOffset(chunk[chunk.length - 1]!.offset);
      } else {
        for (const message of chunk) {
          if (!goOn()) break;
          await inConsumerSpans(batch.topic, [message], () =>
            handle(batch.topic, batch.partition, message),
          );
          resolveOffset(message.offset);
          await heartbeat();
        }
      }
      await commitOffsetsIfNecessary();
      await heartbeat();
    }
  }

  /**
   * Applies the events in one transaction, each in order with its inbox row, audit entry
   * and outbox events; an event handled before is skipped. False when the transaction
   * failed and rolled back (a poison event, a refusal, a lost race, the database): the
   * caller then applies the events one by one, which sends the culprit alone to the
   * dead-letter topic and records a refusal once.
   */
  async function applyTogether(
    type: AppointmentEventType,
    batch: EachBatchPayload['batch'],
    messages: KafkaMessage[],
  ): Promise<boolean> {
    const { topic, partition } = batch;
    const deliveries = messages.map((message) => ({
      message,
      outcome: '',
      ...delivery(topic, partition, message),
    }));
    let events = false;
    const scheduled: string[] = [];
    try {
      await useCases.orm.em.fork().transactional(async (em) => {
        if (type === 'appointment.created') {
          // The set-based path: a few statements for the whole chunk.
          const wanted = deliveries.flatMap((d) => {
            const creation = appointmentCreation(parseJson(d.message.value));
            if (creation === IGNORED) d.outcome = creation;
            return creation === IGNORED ? [] : [{ d, creation }];
          });
          const done = await scheduleConsultations(
            useCases,
            em,
            wanted.map(({ d, creation }) => ({
              caller: d.caller(creation.clinicId),
              request: creation.request,
            })),
          );
          for (const [i, result] of done.entries()) {
            wanted[i]!.d.outcome = result.outcome;
            if (result.outcome === 'applied' && result.created)
              scheduled.push(result.consultationId);
          }
          events = addedEvents(em);
          return;
        }
        const inTransaction: UseCaseDeps = { ...useCases, transaction: em };
        for (const d of deliveries) {
          d.outcome = await apply(inTransaction, type, d.message, d.caller).catch(
            (error: unknown) => {
              if (error instanceof EventAlreadyHandled) return 'already handled: skipped';
              throw error;
            },
          );
          // Each event's writes go out before the next is applied, and the EntityManager
          // forgets them: every flush and query compares all the entities it manages, so
          // keeping the whole chunk's would make it quadratic.
          await em.flush();
          em.clear();
        }
        events = addedEvents(em);
      });
    } catch (error) {
      const offsets = `${messages[0]?.offset}-${messages.at(-1)?.offset}`;
      logger.warn(
        { err: error, topic, partition, offsets },
        'appointment events could not be applied together: applying them one by one',
      );
      return false;
    }
    if (events) useCases.outbox?.committed();
    for (const consultationId of scheduled) {
      logger.info({ consultationId }, 'consultation scheduled');
    }
    for (const { log, outcome } of deliveries) log.info({ outcome }, 'appointment event handled');
    return true;
  }

  /**
   * Who an event is, for the inbox and the logs. CloudEvents: source and id together
   * identify an event. Without a ce_id the record's position identifies it; without a
   * ce_source its topic stands in for the source.
   */
  function delivery(topic: string, partition: number, message: KafkaMessage) {
    const attributes = cloudEventAttributes(message.headers);
    const eventId = attributes.id?.slice(0, 200) || `${topic}/${partition}/${message.offset}`;
    const source = attributes.source?.slice(0, 200) || `kafka:${topic}`;
    return {
      log: logger.child({ eventId, source, topic, partition, offset: message.offset }),
      caller: (clinicId: string): InboxCaller => ({
        principal: { userId: APPOINTMENT_EVENTS_ACTOR, role: 'service', clinicId },
        requestId: eventId,
        inbox: { source, eventId, topic },
      }),
    };
  }

  /** One event in a transaction of its own, retried, or sent to the dead-letter topic. */
  async function handle(topic: string, partition: number, message: KafkaMessage): Promise<void> {
    const type = byTopic.get(topic);
    if (!type) return;
    const { log, caller } = delivery(topic, partition, message);

    for (let attempt = 1; ; attempt++) {
      try {
        const outcome = await apply(useCases, type, message, caller);
        log.info({ outcome }, 'appointment event handled');
        return;
      } catch (error) {
        if (error instanceof EventAlreadyHandled) {
          log.info('appointment event already handled: skipped');
          return;
        }
        const poison = asPoison(error);
        if (poison || attempt >= options.maxAttempts) {
          const reason = poison?.reason ?? 'retries-exhausted';
          await deadLetter(topic, partition, message, reason, errorText(error), attempt);
          log.warn({ reason, attempt }, 'appointment event sent to the dead-letter topic');
          return;
        }
        if (stopping.signal.aborted) throw error; // redelivered after the restart
        const delay = Math.min(MAX_BACKOFF_MS, 200 * 2 ** attempt);
        log.warn({ err: error, attempt, delayMs: delay }, 'appointment event failed: retrying');
        // A stop ends the wait early (the abort rejects, which is the point).
        await wait(delay, undefined, { signal: stopping.signal }).catch(() => {});
      }
    }
  }

  async function deadLetter(
    topic: string,
    partition: number,
    message: KafkaMessage,
    reason: string,
    detail: string,
    attempts: number,
  ): Promise<void> {
    await producer.send({
      topic: `${topic}.dlq`,
      acks: -1,
      messages: [
        {
          key: message.key,
          value: message.value,
          headers: {
            ...message.headers,
            'dlq-reason': reason,
            'dlq-error': detail.slice(0, 500),
            'dlq-original-topic': topic,
            'dlq-original-partition': String(partition),
            'dlq-original-offset': message.offset,
            'dlq-attempts': String(attempts),
          },
        },
      ],
    });
  }

  return {
    topics: [...byTopic.keys()],
    /** Connects and subscribes; resolves once kafkajs is running it (joining the group). */
    start,
    /**
     * Finishes the transaction in hand, commits offsets, leaves the group and disconnects,
     * whatever state the consumer is in (connecting, joining, running, crashed).
     */
    async stop() {
      stopping.abort();
      clearTimeout(restartTimer);
      await consumer.disconnect();
    },
  };
}
