import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { EVENT_TYPES } from '../video/events.js';
import type { VideoService } from '../video/video-service.js';
import { createAppointmentConsumer } from './appointment-consumer.js';
import { createKafka, createKafkaPublisher, ensureTopics, topicName } from './kafka.js';
import { createOutboxRelay, type OutboxBacklog } from './outbox-relay.js';

export interface Messaging {
  /** Whether a broker is configured (else events wait in the outbox). */
  readonly enabled: boolean;
  backlog(): Promise<OutboxBacklog>;
  stop(): Promise<void>;
}

const RECONNECT_MS = 5_000;
/** A connect step the broker stops answering mid-way is abandoned and retried. */
const STEP_TIMEOUT_MS = 30_000;

function withTimeout<T>(step: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${step} timed out`)), STEP_TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Kafka, both ways: the outbox relay publishes committed events, the consumer applies
 * appointment events. Connecting never blocks the service: while the broker is
 * unreachable the API keeps serving, events wait in the outbox, and this keeps trying.
 */
export function startMessaging(
  config: Config,
  deps: { orm: MikroORM; video: VideoService; logger: Logger },
): Messaging {
  const { orm, video, logger } = deps;
  const brokers = config.kafka.brokers;
  const outboxOnly = createOutboxRelay({
    orm,
    logger,
    publisher: {
      publish: async () => {
        throw new Error('no broker configured');
      },
    },
    topicFor: (type) => type,
    source: config.kafka.eventSource,
    batchSize: config.outbox.batchSize,
    pollIntervalMs: config.outbox.pollIntervalMs,
  });
  if (!brokers) {
    logger.info(
      'KAFKA_BROKERS is not set: events are kept in the outbox until a broker is configured, and appointment events are not consumed',
    );
    return { enabled: false, backlog: () => outboxOnly.backlog(), stop: async () => {} };
  }

  const kafka = createKafka(config.kafka, brokers, logger);
  const topicFor = (type: string) => topicName(config.kafka.topicPrefix, type);
  const publisher = createKafkaPublisher(kafka);
  const relay = createOutboxRelay({
    orm,
    logger,
    publisher,
    topicFor,
    source: config.kafka.eventSource,
    batchSize: config.outbox.batchSize,
    pollIntervalMs: config.outbox.pollIntervalMs,
  });
  const consumer = createAppointmentConsumer({
    kafka,
    producer: publisher.producer,
    video,
    logger,
    groupId: config.kafka.consumerGroup,
    topicFor,
    maxAttempts: config.kafka.consumerMaxAttempts,
    concurrency: config.kafka.consumerConcurrency,
  });

  let stopped = false;
  let consuming = false;
  const connecting = (async () => {
    for (let attempt = 1; !stopped; attempt++) {
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
        if (stopped) return;
        relay.start();
        await withTimeout('starting the consumer', consumer.start());
        consuming = true;
        logger.info(
          { brokers },
          'kafka connected: relaying events and consuming appointment events',
        );
        return;
      } catch (error) {
        logger.warn(
          { err: error, attempt },
          'kafka unreachable: events wait in the outbox; retrying',
        );
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
      }
    }
  })();

  return {
    enabled: true,
    backlog: () => relay.backlog(),
    async stop() {
      stopped = true;
      await Promise.race([connecting, new Promise((resolve) => setTimeout(resolve, 1_000))]);
      if (consuming) await consumer.stop();
      await relay.stop();
      // One last flush, so what committed before the stop leaves with this copy.
      await relay.relayOnce().catch((error: unknown) => {
        logger.warn({ err: error }, 'final outbox flush failed: events wait for the next start');
      });
      await publisher.disconnect();
    },
  };
}
