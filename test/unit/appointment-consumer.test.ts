import { EventEmitter } from 'node:events';
import type { ConsumerRunConfig, EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createAppointmentConsumer } from '../../src/messaging/appointment-consumer.js';
import type { UseCaseDeps } from '../../src/video/use-case.js';

/**
 * The consumer's life cycle against a stand-in for a kafkajs consumer that behaves as
 * kafkajs does where it matters: `run` resolves only once the group is joined, and
 * `subscribe` refuses while the consumer runs ("Cannot subscribe…").
 */
function fakeKafka(options: { joins: boolean }) {
  const events = { GROUP_JOIN: 'consumer.group_join', CRASH: 'consumer.crash' } as const;
  const emitter = new EventEmitter();
  const calls = { connect: 0, subscribe: 0, run: 0, disconnect: 0 };
  let runConfig: ConsumerRunConfig | undefined;
  let running = false;
  let connected = false;
  /** When set, connect() waits until releaseConnect() (a connect under way). */
  let connectGate = false;
  let releaseConnect: (() => void) | undefined;
  const consumer = {
    events,
    on: (event: string, listener: (e: unknown) => void) => emitter.on(event, listener),
    async connect() {
      calls.connect++;
      if (releaseConnect === undefined && connectGate) {
        await new Promise<void>((resolve) => {
          releaseConnect = resolve;
        });
      }
      connected = true;
    },
    async subscribe() {
      calls.subscribe++;
      if (running) throw new Error('Cannot subscribe to topic while consumer is running');
    },
    run(config: ConsumerRunConfig) {
      calls.run++;
      runConfig = config;
      running = true;
      // A join slower than anyone's patience: it never completes here.
      return options.joins ? Promise.resolve() : new Promise<void>(() => {});
    },
    async disconnect() {
      calls.disconnect++;
      running = false;
      connected = false;
    },
  };
  return {
    kafka: { consumer: () => consumer } as unknown as Kafka,
    calls,
    emit: (event: string, payload: unknown) => emitter.emit(event, { payload }),
    events,
    isConnected: () => connected,
    holdConnect() {
      connectGate = true;
    },
    releaseConnect: () => releaseConnect?.(),
    /** What the consumer gave kafkajs to handle a fetched batch with. */
    eachBatch: (payload: EachBatchPayload) => runConfig?.eachBatch?.(payload),
  };
}

function consumerOf(kafka: Kafka, producer = {} as Producer, useCases = {} as UseCaseDeps) {
  return createAppointmentConsumer({
    kafka,
    producer,
    useCases,
    logger: pino({ level: 'silent' }),
    groupId: 'group',
    topicFor: (type) => type,
    maxAttempts: 3,
    concurrency: 1,
  });
}

describe('the appointment consumer', () => {
  it('starts once: a group join that does not finish is left to kafkajs, not started again', async () => {
    const fake = fakeKafka({ joins: false });
    const consumer = consumerOf(fake.kafka);
    // Resolves although the join does not: the caller's step timeout never fires.
    await consumer.start();
    // Called again (as a reconnect loop would): no second subscribe, no "Cannot subscribe".
    await consumer.start();
    await consumer.start();
    expect(fake.calls).toMatchObject({ connect: 1, subscribe: 1, run: 1 });
    // A crash kafkajs restarts by itself changes nothing here.
    fake.emit(fake.events.CRASH, { error: new Error('broker gone'), restart: true });
    await consumer.start();
    expect(fake.calls.run).toBe(1);
    await consumer.stop();
    expect(fake.calls.disconnect).toBe(1);
  });

  it('disconnects on stop whatever its state, also when stopped while connecting', async () => {
    const fake = fakeKafka({ joins: true });
    fake.holdConnect();
    const consumer = consumerOf(fake.kafka);
    const starting = consumer.start();
    await consumer.stop();
    expect(fake.calls.disconnect).toBe(1);
    // The connect that was under way completes after the stop: it is undone, never run.
    fake.releaseConnect();
    await starting;
    expect(fake.calls.run).toBe(0);
    expect(fake.isConnected()).toBe(false);
    // A later start (a reconnect loop that had not noticed) does nothing.
    await consumer.start();
    expect(fake.calls.connect).toBe(1);
  });
});

describe('a fetched batch', () => {
  /** A batch of unparseable appointment.created records: each can only be dead-lettered. */
  function poisonBatch(count: number, running: () => boolean) {
    const resolved: string[] = [];
    const messages = Array.from(
      { length: count },
      (_, i) =>
        ({
          offset: String(i),
          key: null,
          value: Buffer.from('{not json'),
          headers: {},
        }) as unknown as KafkaMessage,
    );
    const payload = {
      batch: { topic: 'appointment.created', partition: 0, messages },
      resolveOffset: (offset: string) => resolved.push(offset),
      heartbeat: async () => {},
      commitOffsetsIfNecessary: async () => {},
      isRunning: running,
      isStale: () => false,
    } as unknown as EachBatchPayload;
    return { payload, resolved };
  }

  async function started() {
    const fake = fakeKafka({ joins: true });
    const letters: unknown[] = [];
    const producer = {
      send: async (record: unknown) => void letters.push(record),
    } as unknown as Producer;
    // The batch's transaction: the work runs and throws before it touches the database.
    const em = {};
    const useCases = {
      orm: { em: { fork: () => ({ transactional: (work: (e: unknown) => unknown) => work(em) }) } },
    } as unknown as UseCaseDeps;
    const consumer = consumerOf(fake.kafka, producer, useCases);
    await consumer.start();
    return { fake, letters, consumer };
  }

  it('applies the events one by one when the batch fails together: each poison alone to the dead-letter topic', async () => {
    const { fake, letters, consumer } = await started();
    const { payload, resolved } = poisonBatch(3, () => true);
    await fake.eachBatch(payload);
    expect(letters).toHaveLength(3);
    expect(resolved).toEqual(['0', '1', '2']);
    await consumer.stop();
  });

  it('leaves the rest of the batch unresolved when stopped, to be fetched again', async () => {
    const { fake, letters, consumer } = await started();
    let checks = 0;
    // Running for the chunk and its first event, stopped after that.
    const { payload, resolved } = poisonBatch(3, () => ++checks <= 2);
    await fake.eachBatch(payload);
    expect(letters).toHaveLength(1);
    expect(resolved).toEqual(['0']);
    await consumer.stop();
  });
});
