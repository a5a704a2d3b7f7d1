import { EventEmitter } from 'node:events';
import type { Kafka, Producer } from 'kafkajs';
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
    run() {
      calls.run++;
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
  };
}

function consumerOf(kafka: Kafka) {
  return createAppointmentConsumer({
    kafka,
    producer: {} as Producer,
    useCases: {} as UseCaseDeps,
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
