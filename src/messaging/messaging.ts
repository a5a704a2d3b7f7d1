import { setTimeout as delay } from 'node:timers/promises';
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { OutboxSignal } from '../video/events.js';
import { EVENT_TYPES } from '../video/events.js';
import type { UseCaseDeps } from '../video/use-case.js';
import { createAppointmentConsumer } from './appointment-consumer.js';
import {
  createBrokerMonitor,
  createKafka,
  createKafkaPublisher,
  ensureTopics,
  topicName,
} from './kafka.js';
import { createOutboxRelay, type OutboxBacklog } from './outbox-relay.js';

export interface Messaging {
  /** Whether a broker is configured (else events wait in the outbox). */
  readonly enabled: boolean;
  /** Whether the broker answers now (false when none is configured). */
  connected(): boolean;
  backlog(): Promise<OutboxBacklog>;
  stop(): Promise<void>;
}

const RECONNECT_MS = 5_000;
/** A connect step the broker stops answering mid-way is abandoned and retried. */
const STEP_TIMEOUT_MS = 30_000;
/** At shutdown: how long a publish in flight (and a last flush) may take. */
const FLUSH_MS = 5_000;
/** At shutdown: how long leaving the group and closing connections may take. */
const DISCONNECT_MS = 10_000;

function withTimeout<T>(step: string, promise: Promise<T>, ms = STEP_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${step} timed out`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Kafka, both ways: the outbox relay publishes committed events, the consumer applies
 * appointment events. Connecting never blocks the service: while the broker is
 * unreachable the API keeps serving, events wait in the outbox, and this keeps trying.
 * No database connection is ever held while waiting for the broker (see outbox-relay.ts).
 */
export function startMessaging(
  config: Config,
  deps: {
    orm: MikroORM;
    useCases: UseCaseDeps;
    logger: Logger;
    /** Rung by the use cases when they committed events. */
    outbox?: OutboxSignal;
  },
): Messaging {
  const { orm, useCases, logger } = deps;
  const brokers = config.kafka.brokers;
  const relayOptions = {
    orm,
    logger,
    source: config.kafka.eventSource,
    batchSize: config.outbox.batchSize,
    pollIntervalMs: config.outbox.pollIntervalMs,
    leaseMs: config.outbox.leaseMs,
  };
  if (!brokers) {
    logger.info(
      'KAFKA_BROKERS is not set: events are kept in the outbox until a broker is configured, and appointment events are not consumed',
    );
    const outboxOnly = createOutboxRelay({
      ...relayOptions,
      publisher: {
        publish: async () => {
          throw new Error('no broker configured');
        },
      },
      topicFor: (type) => type,
    });
    return {
      enabled: false,
      connected: () => false,
      backlog: () => outboxOnly.backlog(),
      stop: async () => {},
    };
  }

  const kafka = createKafka(config.kafka, brokers, logger);
  const topicFor = (type: string) => topicName(config.kafka.topicPrefix, type);
  const monitor = createBrokerMonitor(
    createKafka(config.kafka, brokers, logger, { quiet: true }),
    config.kafka.healthIntervalMs,
    logger,
  );
  const publisher = createKafkaPublisher(kafka);
  const relay = createOutboxRelay({
    ...relayOptions,
    publisher,
    topicFor,
    broker: monitor,
    onPublished: () => monitor.reachable(),
    signal: deps.outbox,
  });
  const consumer = createAppointmentConsumer({
    kafka,
    producer: publisher.producer,
    useCases,
    logger,
    groupId: config.kafka.consumerGroup,
    topicFor,
    maxAttempts: config.kafka.consumerMaxAttempts,
    concurrency: config.kafka.consumerConcurrency,
  });
  monitor.start();

  const stopping = new AbortController();
  const connecting = (async () => {
    for (let attempt = 1; !stopping.signal.aborted; attempt++) {
      try {
        await withTimeout(
          'creating topics',
          ensureTopics(
            kafka,
            [
              ...EVENT_TYPES.map(topicFor),
              ...consumer.topics,
              ...consumer.topics.map((topic) => `${topic}.dlq`),
            ],
            config.kafka,
          ),
        );
        await withTimeout('connecting the producer', publisher.connect());
        monitor.reachable();
        if (stopping.signal.aborted) return;
        relay.start();
        // Resolves once kafkajs runs the consumer; the group join is kafkajs's from there
        // (a slow join is never retried from here, so it cannot loop).
        await withTimeout('starting the consumer', consumer.start());
        logger.info({ brokers }, 'kafka connected: relaying events, consuming appointment events');
        return;
      } catch (error) {
        if (stopping.signal.aborted) return;
        logger.warn(
          { err: error, attempt },
          'kafka unreachable: events wait in the outbox; retrying',
        );
        // A stop ends the wait early (the abort rejects, which is the point).
        await delay(RECONNECT_MS, undefined, { signal: stopping.signal }).catch(() => {});
      }
    }
  })();

  /** Each shutdown step is bounded: a broker that hangs must not hang the shutdown. */
  const bounded = (step: string, promise: Promise<unknown>, ms: number) =>
    withTimeout(step, promise, ms).catch((error: unknown) => {
      logger.warn({ err: error }, `kafka shutdown: ${step} did not finish`);
    });

  return {
    enabled: true,
    connected: () => monitor.connected(),
    backlog: () => relay.backlog(),
    async stop() {
      stopping.abort();
      // Always, whatever the consumer's state: connecting, joining, running or crashed.
      await bounded('disconnecting the consumer', consumer.stop(), DISCONNECT_MS);
      // A publish in flight may finish, and what committed before the stop leaves with
      // this copy if the broker is there; otherwise the events wait for the next start.
      await relay.stop(FLUSH_MS);
      await bounded('disconnecting the producer', publisher.disconnect(), DISCONNECT_MS);
      await monitor.stop();
      await bounded('connecting', connecting, DISCONNECT_MS);
    },
  };
}
