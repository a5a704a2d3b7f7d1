import type { TestProject } from 'vitest/node';
import { ensureKafka } from './kafka.js';

/**
 * One Kafka broker for the whole integration run: KAFKA_BROKERS when set, else a local
 * single-node broker started here and stopped when the run ends. Test files read the
 * address with `inject('kafkaBrokers')`.
 */
export default async function setup(project: TestProject) {
  const kafka = await ensureKafka();
  project.provide('kafkaBrokers', kafka.brokers.join(','));
  return () => kafka.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
  }
}
