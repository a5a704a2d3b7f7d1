import { randomUUID } from 'node:crypto';
import {
  type Admin,
  type Consumer,
  type IHeaders,
  Kafka,
  type KafkaMessage,
  logLevel,
  Partitioners,
  type Producer,
} from 'kafkajs';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { createTopics } from '../support/kafka.js';

/**
 * The broker the other Kafka tests rely on, checked on its own: kafkajs 2.2.4 against a
 * Kafka 4.x broker, with the settings the service uses (idempotent producer, acks=all,
 * a consumer group), so a broken broker shows up here and not as a puzzling failure
 * elsewhere.
 */
const runId = randomUUID();
const topic = `kafka-broker-test-${runId}`;

let admin: Admin | undefined;
let producer: Producer | undefined;
let consumer: Consumer | undefined;
let kafka: Kafka;

beforeAll(async () => {
  kafka = new Kafka({
    clientId: `kafka-broker-test-${runId}`,
    brokers: inject('kafkaBrokers').split(','),
    logLevel: logLevel.WARN,
  });
  admin = kafka.admin();
  await admin.connect();
  // Pre-created: auto-creation on KRaft can briefly answer "does not host this partition".
  await createTopics(admin, [topic], 1);
}, 300_000);

afterAll(async () => {
  await consumer?.disconnect();
  await producer?.disconnect();
  await admin?.disconnect();
}, 60_000);

const headerStrings = (headers: IHeaders | undefined) =>
  Object.fromEntries(Object.entries(headers ?? {}).map(([name, value]) => [name, String(value)]));

describe('local Kafka broker', () => {
  it('round-trips keys, values and headers through an idempotent producer and a group', async () => {
    const sent = [1, 2, 3].map((n) => ({
      key: `consultation-${n}`,
      value: JSON.stringify({ consultationId: `consultation-${n}`, n }),
      headers: { 'ce-id': `${runId}-${n}`, 'ce-type': 'video.v1.ConsultationStarted' },
    }));

    producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: sent });

    const received: KafkaMessage[] = [];
    consumer = kafka.consumer({ groupId: `kafka-broker-test-${runId}`, maxWaitTimeInMs: 100 });
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        received.push(message);
      },
    });
    await vi.waitFor(() => expect(received).toHaveLength(sent.length), {
      timeout: 20_000,
      interval: 50,
    });

    expect(
      received.map((message) => ({
        key: message.key?.toString(),
        value: message.value?.toString(),
        headers: headerStrings(message.headers),
      })),
    ).toEqual(sent);
    expect(received.map((message) => message.offset)).toEqual(['0', '1', '2']);
  }, 30_000);
});
