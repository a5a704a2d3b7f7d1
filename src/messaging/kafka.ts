import { Kafka, logLevel, type Producer } from 'kafkajs';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { BrokerState, EventPublisher } from './outbox-relay.js';

/**
 * A kafkajs client whose own log lines go to the service's log; `quiet` for one whose
 * failures its user reports itself (the broker monitor).
 */
export function createKafka(
  config: Config['kafka'],
  brokers: readonly string[],
  logger: Logger,
  options: { quiet?: boolean } = {},
): Kafka {
  const log = logger.child({ component: 'kafka' });
  return new Kafka({
    clientId: config.clientId,
    brokers: [...brokers],
    logLevel: options.quiet ? logLevel.NOTHING : logLevel.WARN,
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

export interface BrokerMonitor extends BrokerState {
  /** A round trip with the broker just succeeded elsewhere (a connect, a publish). */
  reachable(): void;
  start(): void;
  stop(): Promise<void>;
}

/**
 * Whether the broker answers, checked for real: every `intervalMs` a metadata request
 * (kafkajs `describeCluster`, no retries) on a connection of its own. A check refused, or
 * still waiting after `intervalMs`, finds the broker unreachable unless it answered
 * within the last `intervalMs`; no second check starts while one is still waiting. A
 * publish the broker acknowledged counts as an answer too.
 *
 * An answer vouches for the broker for one interval only: the relay's last acknowledgement
 * before a freeze lands after the check that will hang has begun, and must not keep the
 * broker "reachable" for as long as that check waits (kafkajs's request timeout, 30 s).
 */
export function createBrokerMonitor(
  kafka: Kafka,
  intervalMs: number,
  logger: Logger,
): BrokerMonitor {
  const log = logger.child({ component: 'kafka' });
  const admin = kafka.admin({ retry: { retries: 0 } });
  const listeners = new Set<(connected: boolean) => void>();
  let connected = false;
  let adminConnected = false;
  /** When the check in progress started. */
  let checkingSince: number | undefined;
  /** When the broker last answered: a check, a connect or a publish. */
  let lastAnswer = 0;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  function set(value: boolean) {
    if (value === connected || stopped) return;
    connected = value;
    if (value) log.info('kafka broker reachable');
    else log.warn('kafka broker unreachable: events wait in the outbox');
    for (const listener of listeners) listener(value);
  }

  function answered() {
    lastAnswer = Date.now();
    set(true);
  }

  /** Whether the broker answered within the last interval (a check, a connect, a publish). */
  const answeredLately = () => Date.now() - lastAnswer < intervalMs;

  async function check(): Promise<void> {
    try {
      if (!adminConnected) {
        await admin.connect();
        adminConnected = true;
      }
      await admin.describeCluster();
      answered();
    } catch {
      if (!answeredLately()) set(false);
      adminConnected = false;
      await admin.disconnect().catch(() => {});
    }
  }

  function tick() {
    if (checkingSince !== undefined) {
      if (Date.now() - checkingSince >= intervalMs && !answeredLately()) set(false);
      return;
    }
    checkingSince = Date.now();
    void check().finally(() => {
      checkingSince = undefined;
    });
  }

  return {
    connected: () => connected,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    reachable: answered,
    start() {
      if (timer || stopped) return;
      tick();
      timer = setInterval(tick, intervalMs);
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      timer = undefined;
      listeners.clear();
      // A check still waiting on a hanging broker is not waited for.
      await admin.disconnect().catch(() => {});
    },
  };
}
