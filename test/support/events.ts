import { randomBytes } from 'node:crypto';
import { Kafka, type KafkaMessage, logLevel } from 'kafkajs';
import { createTopics } from './kafka.js';

/** A topic prefix of its own, so test files never read each other's events. */
export const uniquePrefix = (name: string) => `test-${name}-${randomBytes(4).toString('hex')}.`;

export interface ReceivedRecord {
  readonly topic: string;
  readonly key: string;
  readonly value: unknown;
  readonly headers: Record<string, string>;
}

/**
 * A plain kafkajs consumer, as another team's service would run one: reads every record of
 * the given topics from the beginning and keeps them for the test to look at.
 */
export async function collectRecords(brokers: string, topics: string[]) {
  const kafka = new Kafka({
    clientId: 'test-reader',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await createTopics(admin, topics, 3);
  } finally {
    await admin.disconnect();
  }
  const consumer = kafka.consumer({
    groupId: `test-reader-${randomBytes(4).toString('hex')}`,
    maxWaitTimeInMs: 100,
    // Topics here are seconds old; kafkajs would otherwise keep a stale view of their
    // partitions for five minutes and never fetch the ones it missed.
    metadataMaxAge: 1_000,
  });
  const records: ReceivedRecord[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, message }) => {
      records.push(decode(topic, message));
    },
  });
  return {
    records,
    /** Waits until `predicate` holds over what arrived, or fails after `timeoutMs`. */
    async waitFor(predicate: (records: ReceivedRecord[]) => boolean, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(records)) {
        if (Date.now() > deadline) throw new Error(`timed out with ${records.length} records`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return records;
    },
    stop: () => consumer.disconnect(),
  };
}

function decode(topic: string, message: KafkaMessage): ReceivedRecord {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined) headers[name] = first.toString();
  }
  return {
    topic,
    key: message.key?.toString() ?? '',
    value: parseValue(message.value),
    headers,
  };
}

/** A producer standing in for the appointments service. */
export async function appointmentsProducer(brokers: string) {
  const kafka = new Kafka({
    clientId: 'test-appointments',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
  });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  return {
    send: (
      topic: string,
      key: string,
      value: string | object,
      headers: Record<string, string> = {},
    ) =>
      producer.send({
        topic,
        acks: -1,
        messages: [
          { key, value: typeof value === 'string' ? value : JSON.stringify(value), headers },
        ],
      }),
    stop: () => producer.disconnect(),
  };
}

/** JSON when it is JSON; dead letters may hold anything, so the raw text otherwise. */
function parseValue(value: Buffer | null): unknown {
  if (!value) return null;
  try {
    return JSON.parse(value.toString());
  } catch {
    return value.toString();
  }
}
