import { type Admin, Kafka, logLevel } from 'kafkajs';
import { repositoryScript, runScript } from './scripts.js';

const startScript = repositoryScript('kafka/start-kafka.sh');
const stopScript = repositoryScript('kafka/stop-kafka.sh');

/** The first run downloads the broker's jars from Maven Central; later starts take seconds. */
const START_TIMEOUT_MS = 10 * 60_000;
const STOP_TIMEOUT_MS = 60_000;

export interface TestKafka {
  readonly brokers: string[];
  stop: () => Promise<void>;
}

/**
 * A Kafka broker for integration tests. KAFKA_BROKERS (comma-separated) names one that
 * is already running, e.g. in CI, and is left alone. Otherwise a local single-node broker
 * is started with scripts/kafka/start-kafka.sh, and `stop` stops it again, unless that
 * script found one of its brokers already running, which then stays up for whoever
 * started it. Either way the broker's group and transaction coordinators are loaded
 * before this returns.
 */
export async function ensureKafka(): Promise<TestKafka> {
  const configured = process.env.KAFKA_BROKERS?.split(',')
    .map((broker) => broker.trim())
    .filter((broker) => broker !== '');
  if (configured && configured.length > 0) {
    await warmUp(configured);
    return { brokers: configured, stop: async () => {} };
  }

  const output = await runScript(startScript, START_TIMEOUT_MS);
  const brokers = output.KAFKA_BROKERS?.split(',');
  if (!brokers) {
    throw new Error(`start-kafka.sh printed no KAFKA_BROKERS line:\n${JSON.stringify(output)}`);
  }
  let stopped: Promise<unknown> | undefined;
  const stop =
    output.KAFKA_REUSED === '1'
      ? async () => {}
      : async () => {
          stopped ??= runScript(stopScript, STOP_TIMEOUT_MS);
          await stopped;
        };
  try {
    await warmUp(brokers);
  } catch (error) {
    await stop();
    throw error;
  }
  return { brokers, stop };
}

/**
 * A fresh broker creates __consumer_offsets and __transaction_state on first use, and
 * until they are loaded kafkajs logs every retry as an ERROR, consumer "crashes"
 * included. One group lookup and one idempotent producer keep that out of the tests.
 */
async function warmUp(brokers: string[]): Promise<void> {
  const kafka = new Kafka({ clientId: 'ensure-kafka', brokers, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  try {
    await admin.connect();
    await admin.describeGroups(['ensure-kafka-warm-up']);
    await producer.connect();
  } finally {
    await producer.disconnect();
    await admin.disconnect();
  }
}

/**
 * Creates the topics (any that exist are left as they are) and waits until every one of
 * their partitions has a leader. kafkajs's own `waitForLeaders` waits out "leader not
 * available" only: a KRaft broker can also answer, for a moment after creating a topic,
 * that it does not host it (UNKNOWN_TOPIC_OR_PARTITION), and kafkajs then fails the
 * creation that succeeded. Both answers are waited out here.
 */
export async function createTopics(
  admin: Admin,
  topics: readonly string[],
  numPartitions: number,
  timeoutMs = 30_000,
): Promise<void> {
  await admin.createTopics({
    waitForLeaders: false,
    topics: topics.map((topic) => ({ topic, numPartitions, replicationFactor: 1 })),
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const { topics: found } = await admin.fetchTopicMetadata({ topics: [...topics] });
      const led = found.every(
        (t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0),
      );
      if (found.length === topics.length && led) return;
    } catch (error) {
      if (!TOPIC_NOT_READY.has(kafkaErrorType(error) ?? '')) throw error;
    }
    if (Date.now() > deadline) {
      throw new Error(`topics without a leader after ${timeoutMs} ms: ${topics.join(', ')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const TOPIC_NOT_READY = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE']);

/** The protocol error's type, of the error or of what it wraps (kafkajs's retries do). */
function kafkaErrorType(error: unknown): string | undefined {
  for (let e = error as { type?: string; cause?: unknown } | undefined; e; ) {
    if (typeof e.type === 'string') return e.type;
    e = e.cause as typeof e;
  }
  return undefined;
}
