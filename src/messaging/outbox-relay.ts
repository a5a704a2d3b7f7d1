import type { MikroORM } from '@mikro-orm/postgresql';
import type { Logger } from 'pino';
import { type KafkaRecord, toKafkaRecord } from './cloudevents.js';

/** Where the relay hands events: Kafka in production, anything in tests. */
export interface EventPublisher {
  /** Publishes the records of one batch; resolves once the broker acknowledged all. */
  publish(batch: readonly { topic: string; record: KafkaRecord }[]): Promise<void>;
}

export interface OutboxRelayOptions {
  readonly orm: MikroORM;
  readonly publisher: EventPublisher;
  readonly logger: Logger;
  readonly topicFor: (type: string) => string;
  readonly source: string;
  readonly batchSize: number;
  readonly pollIntervalMs: number;
}

export interface OutboxBacklog {
  readonly pending: number;
  /** Seconds since the oldest pending event was committed; 0 when none waits. */
  readonly oldestAgeSeconds: number;
}

export interface OutboxRelay {
  start(): void;
  /** Stops after the batch in flight; pending rows stay for the next start (or copy). */
  stop(): Promise<void>;
  /** Publishes what is pending now, once (for tests and shutdown flushing). */
  relayOnce(): Promise<number>;
  backlog(): Promise<OutboxBacklog>;
}

interface OutboxRow {
  id: string;
  type: string;
  key: string;
  subject: string;
  payload: unknown;
  created_at: Date | string;
}

/** Retrying is one cheap query: back off, but resume within seconds of recovery. */
const MAX_BACKOFF_MS = 5_000;

/**
 * Publishes committed outbox rows to Kafka and marks them sent, in one transaction per
 * batch. Several copies of the service share the work: a copy takes a transaction-scoped
 * advisory lock per record key before it sends that key's rows, so one appointment's
 * events are sent by one copy at a time, in commit order, and no row twice. If Kafka is
 * down, the transaction rolls back, the rows stay pending, and the relay backs off.
 */
export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { orm, publisher, logger } = options;
  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let failures = 0;

  async function relayOnce(): Promise<number> {
    return orm.em.fork().transactional(async (em) => {
      // em.execute runs inside this transaction, so the advisory locks last until commit.
      // Two locks: the row locks (SKIP LOCKED) keep two copies from taking the same rows;
      // the per-key advisory lock, tried in the WHERE clause, keeps a key's later rows
      // waiting while another copy sends its earlier ones, which keeps per-key order.
      const rows = await em.execute<OutboxRow[]>(
        `select id, type, key, subject, payload, created_at
           from outbox_message
          where sent_at is null
            and pg_try_advisory_xact_lock(hashtextextended('outbox:' || key, 0))
          order by seq
          limit ?
            for update skip locked`,
        [options.batchSize],
      );
      if (rows.length === 0) return 0;
      await publisher.publish(
        rows.map((row) => ({
          topic: options.topicFor(row.type),
          record: toKafkaRecord(
            {
              id: row.id,
              source: options.source,
              type: row.type,
              time: new Date(row.created_at),
              subject: row.subject,
              data: row.payload,
            },
            row.key,
          ),
        })),
      );
      await em.execute(
        `update outbox_message set sent_at = now(), attempts = attempts + 1
          where id in (${rows.map(() => '?').join(', ')})`,
        rows.map((row) => row.id),
      );
      return rows.length;
    });
  }

  async function run(): Promise<void> {
    while (running) {
      let sent = 0;
      try {
        sent = await relayOnce();
        if (failures > 0) logger.info({ failures }, 'outbox relay: publishing again');
        failures = 0;
      } catch (error) {
        failures++;
        if (failures === 1 || failures % 20 === 0) {
          logger.warn({ err: error, failures }, 'outbox relay: publish failed; events wait');
        }
      }
      // A full batch means more may wait: go again at once. Otherwise poll, or back off.
      if (sent === options.batchSize && failures === 0) continue;
      const delay =
        failures > 0
          ? Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(failures, 10)) * (0.5 + Math.random() / 2)
          : options.pollIntervalMs;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    async stop() {
      running = false;
      wake?.();
      await loop;
    },
    relayOnce,
    async backlog() {
      const [row] = await orm.em
        .fork()
        .getConnection()
        .execute<{ pending: string; oldest: Date | string | null }[]>(
          'select count(*) as pending, min(created_at) as oldest from outbox_message where sent_at is null',
        );
      const oldest = row?.oldest ? new Date(row.oldest).getTime() : undefined;
      return {
        pending: Number(row?.pending ?? 0),
        oldestAgeSeconds: oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000),
      };
    },
  };
}
