import { Kafka, logLevel } from 'kafkajs';
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
