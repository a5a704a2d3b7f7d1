import { Kafka, logLevel, type Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { EventPublisher } from './outbox-relay.js';

/** A kafkajs client whose own log lines go to the service's log. */
export function createKafka(
  config: Config['kafka'],
  brokers: readonly string[],
  logger: Logger,
): Kafka {
  const log = logger.child({ component: 'kafka' });
  return new Kafka({
    clientId: config.clientId,
    brokers: [...brokers],
    logLevel: logLevel.WARN,
    retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 5_000 },
    logCreator:
      () =>
      ({ level, log: entry }) => {
        const { message, ...rest } = entry;
        if (level <= logLevel.ERROR) log.error(rest, message);
        else log.warn(rest, message);
      },
  });
}

/** The topic of an event type: the type itself, with the configured prefix. */
export const topicName = (prefix: string, type: string) => `${prefix}${type}`;

/** Creates the topics that do not exist yet (configured partitions and replication). */
export async function ensureTopics(
  kafka: Kafka,
  topics: readonly string[],
  config: Config['kafka'],
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((topic) => !existing.has(topic));
    if (missing.length === 0) return;
    await admin.createTopics({
      waitForLeaders: true,
      topics: missing.map((topic) => ({
        topic,
        numPartitions: config.topicPartitions,
        replicationFactor: config.replicationFactor,
      })),
    });
  } finally {
    await admin.disconnect();
  }
}

/**
 * Publishes with the idempotent producer (acks from all in-sync replicas, one request in
 * flight), so a retried send neither duplicates nor reorders a partition's records.
 */
export function createKafkaPublisher(kafka: Kafka): EventPublisher & {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  producer: Producer;
} {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  return {
    producer,
    connect: () => producer.connect(),
    disconnect: () => producer.disconnect(),
    async publish(batch) {
      const byTopic = new Map<
        string,
        { key: string; value: string; headers: Record<string, string> }[]
      >();
      for (const { topic, record } of batch) {
        const messages = byTopic.get(topic) ?? [];
        messages.push({ key: record.key, value: record.value, headers: record.headers });
        byTopic.set(topic, messages);
      }
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      });
    },
  };
}
