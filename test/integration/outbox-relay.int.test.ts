import { randomUUID } from 'node:crypto';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import type { KafkaRecord } from '../../src/messaging/cloudevents.js';
import {
  type BrokerState,
  createOutboxRelay,
  type EventPublisher,
  type OutboxRelay,
} from '../../src/messaging/outbox-relay.js';
import { type Database, openDatabase } from '../../src/persistence/database.js';
import { createTestDatabase, serverForSeveralCopies } from '../support/database.js';

/**
 * The relay of several copies on one database (PostgreSQL only: the embedded engine
 * belongs to one process). Publishers here record what they are handed, with delays, so
 * the test sees the order across copies, and check on the database that no transaction
 * is open while a publish waits for the broker.
 */
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
}, 60_000);

const logger = createLogger('silent');

async function setUp() {
  const testDatabase = await createTestDatabase();
  cleanups.push(() => testDatabase.drop());
  const config = loadConfig({ NODE_ENV: 'test', ...testDatabase.env });
  const open = async () => {
    const database = await openDatabase(config, logger);
    let stopped: Promise<void> | undefined;
    const stop = () => {
      stopped ??= database.stop();
      return stopped;
    };
    cleanups.push(stop);
    return { orm: database.orm, migrate: () => database.migrate(), stop };
  };
  const first = await open();
  await first.migrate();
  const observer = new pg.Client({ connectionString: config.database.url });
  await observer.connect();
  cleanups.push(() => observer.end());
  return { open, first, observer };
}

/** `keys` appointments with `perKey` events each, committed interleaved (as real traffic is). */
async function insertEvents(db: pg.Client, keys: string[], perKey: number) {
  const ids = new Map<string, string[]>(keys.map((key) => [key, []]));
  for (let n = 0; n < perKey; n++) {
    for (const key of keys) {
      const id = randomUUID();
      ids.get(key)!.push(id);
      await db.query(
        `insert into outbox_message (id, type, key, subject, clinic_id, payload, created_at)
         values ($1, 'video.token.generated', $2, $3, 'clinic-1', $4, now())`,
        [id, key, randomUUID(), JSON.stringify({ n })],
      );
    }
  }
  return ids;
}

interface Published {
  readonly copy: string;
  readonly id: string;
  readonly key: string;
}

/**
 * A publisher standing in for Kafka: takes `delay()` ms to acknowledge, meanwhile asks the
 * database whether any session sits in an open transaction, and records what it published.
 */
function recordingPublisher(
  copy: string,
  shared: {
    published: Published[];
    inFlight: Map<string, string>;
    overlaps: string[];
    openTransactions: number[];
  },
  observer: pg.Client,
  delay: () => number,
): EventPublisher {
  return {
    async publish(batch: readonly { topic: string; record: KafkaRecord }[]) {
      const keys = new Set(batch.map((entry) => entry.record.key));
      for (const key of keys) {
        const other = shared.inFlight.get(key);
        if (other) shared.overlaps.push(`${key}: ${copy} while ${other}`);
        shared.inFlight.set(key, copy);
      }
      try {
        const { rows } = await observer.query<{ open: string }>(
          `select count(*) as open from pg_stat_activity
            where datname = current_database() and state like 'idle in transaction%'`,
        );
        shared.openTransactions.push(Number(rows[0]?.open ?? 0));
        await new Promise((resolve) => setTimeout(resolve, delay()));
        for (const { record } of batch) {
          shared.published.push({ copy, id: record.headers.ce_id ?? '', key: record.key });
        }
      } finally {
        for (const key of keys) shared.inFlight.delete(key);
      }
    },
  };
}

function relayOf(
  database: Pick<Database, 'orm'>,
  publisher: EventPublisher,
  leaseMs: number,
): OutboxRelay {
  return createOutboxRelay({
    orm: database.orm,
    publisher,
    logger,
    topicFor: (type) => type,
    source: '/video-service',
    batchSize: 7,
    pollIntervalMs: 10,
    leaseMs,
  });
}

async function pendingCount(observer: pg.Client): Promise<number> {
  const { rows } = await observer.query<{ n: string }>(
    'select count(*) as n from outbox_message where sent_at is null',
  );
  return Number(rows[0]?.n);
}

async function until(done: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe.runIf(serverForSeveralCopies)('the outbox relay of two copies', () => {
  it('publishes every event once, in commit order per key, with no transaction open while publishing', async () => {
    const { open, first, observer } = await setUp();
    const second = await open();
    const keys = Array.from({ length: 12 }, (_, i) => `apt-${i}`);
    const ids = await insertEvents(observer, keys, 10);
    const shared = {
      published: [] as Published[],
      inFlight: new Map<string, string>(),
      overlaps: [] as string[],
      openTransactions: [] as number[],
    };
    // Some publishes outlast the lease (1.5 s): the claim must be renewed, not lost.
    let calls = 0;
    const delay = () => (++calls % 9 === 0 ? 2_000 : Math.floor(Math.random() * 40));
    const a = relayOf(first, recordingPublisher('a', shared, observer, delay), 1_500);
    const b = relayOf(second, recordingPublisher('b', shared, observer, delay), 1_500);
    a.start();
    b.start();
    cleanups.push(
      () => a.stop(),
      () => b.stop(),
    );
    await until(async () => (await pendingCount(observer)) === 0, 60_000, 'the outbox to drain');
    await Promise.all([a.stop(), b.stop()]);

    const byCopy = { a: 0, b: 0 } as Record<string, number>;
    for (const p of shared.published) byCopy[p.copy] = (byCopy[p.copy] ?? 0) + 1;
    const perId = new Map<string, number>();
    for (const p of shared.published) perId.set(p.id, (perId.get(p.id) ?? 0) + 1);
    console.info(
      `two copies: ${shared.published.length} published (a ${byCopy.a}, b ${byCopy.b}), ` +
        `${perId.size} distinct, ${[...perId.values()].filter((n) => n > 1).length} twice, ` +
        `${shared.overlaps.length} overlapping publishes of one key, ` +
        `open transactions seen during publishes: max ${Math.max(...shared.openTransactions)}`,
    );
    // Both copies worked; nothing was published twice or left out.
    expect(byCopy.a).toBeGreaterThan(0);
    expect(byCopy.b).toBeGreaterThan(0);
    expect(shared.published).toHaveLength(120);
    expect(perId.size).toBe(120);
    // One copy at a time per key, and each key's events in commit order.
    expect(shared.overlaps).toEqual([]);
    for (const key of keys) {
      expect(shared.published.filter((p) => p.key === key).map((p) => p.id)).toEqual(ids.get(key));
    }
    // No transaction was open anywhere while a publish waited for the broker.
    expect(Math.max(...shared.openTransactions)).toBe(0);
    const { rows } = await observer.query<{ n: string }>(
      'select count(*) as n from outbox_message where claimed_by is not null or sent_at is null',
    );
    expect(Number(rows[0]?.n)).toBe(0);
  }, 120_000);

  it('takes over the claim of a copy that died mid-publish once its lease lapses', async () => {
    const { open, first, observer } = await setUp();
    const second = await open();
    const ids = await insertEvents(observer, ['apt-crash'], 3);
    // Copy a claims, hands the events to a broker that never answers, and dies.
    let handed: () => void = () => {};
    const handedOver = new Promise<void>((resolve) => {
      handed = resolve;
    });
    const dying = countingOrm(first.orm);
    const a = relayOf(
      dying,
      {
        publish: () => {
          handed();
          return new Promise<void>(() => {});
        },
      },
      1_000,
    );
    a.start();
    cleanups.push(() => a.stop());
    await handedOver;
    dying.kill(); // from now on it can no longer renew its claim, as if it had died

    const shared = {
      published: [] as Published[],
      inFlight: new Map<string, string>(),
      overlaps: [] as string[],
      openTransactions: [] as number[],
    };
    const b = relayOf(
      second,
      recordingPublisher('b', shared, observer, () => 0),
      1_000,
    );
    const started = Date.now();
    b.start();
    cleanups.push(() => b.stop());
    await until(async () => (await pendingCount(observer)) === 0, 20_000, 'copy b to take over');
    const tookMs = Date.now() - started;
    await b.stop();
    console.info(`copy b published the dead copy's claimed events ${tookMs} ms after it started`);
    expect(shared.published.map((p) => p.id)).toEqual(ids.get('apt-crash'));
  }, 60_000);
});

/**
 * The relay's ORM, counting the statements it sends through any entity manager; once
 * `kill()`ed, every statement fails, as for a copy that died or lost its database.
 */
function countingOrm(orm: MikroORM) {
  const counter = { statements: 0, dead: false };
  const countExecute =
    <T extends { execute: (...args: never[]) => unknown }>(target: T) =>
    (...args: Parameters<T['execute']>) => {
      counter.statements++;
      if (counter.dead) return Promise.reject(new Error('connection terminated'));
      return target.execute(...args);
    };
  const counting = (em: EntityManager): EntityManager =>
    new Proxy(em, {
      get(target, property) {
        if (property === 'execute') return countExecute(target);
        if (property === 'getConnection') {
          return () => {
            const connection = target.getConnection();
            return new Proxy(connection, {
              get: (c, p) => (p === 'execute' ? countExecute(c) : bound(c, Reflect.get(c, p))),
            });
          };
        }
        if (property === 'fork') return () => counting(target.fork());
        if (property === 'transactional') {
          return (work: (em: EntityManager) => unknown) =>
            target.transactional((inner) => work(counting(inner as EntityManager)));
        }
        return bound(target, Reflect.get(target, property));
      },
    });
  const counted = { em: counting(orm.em as unknown as EntityManager) } as unknown as MikroORM;
  return {
    orm: counted,
    counter,
    kill() {
      counter.dead = true;
    },
  };
}

function bound(target: object, value: unknown): unknown {
  return typeof value === 'function' ? value.bind(target) : value;
}

/** A broker state the test switches. */
function switchableBroker() {
  let connected = true;
  const listeners = new Set<(connected: boolean) => void>();
  const state: BrokerState = {
    connected: () => connected,
    onChange(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
  return {
    state,
    set(value: boolean) {
      connected = value;
      for (const listener of listeners) listener(value);
    },
  };
}

/** Resolves with the time `promise` took, or with Infinity when it took longer than `ms`. */
async function timedWithin(promise: Promise<unknown>, ms: number): Promise<number> {
  const started = performance.now();
  const answered = await Promise.race([
    promise.then(() => true),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), ms)),
  ]);
  return answered ? performance.now() - started : Number.POSITIVE_INFINITY;
}

const AWAY_MS = 11_000;

/** A migrated database of the test's own, on either engine; closed and dropped at the end. */
async function ownDatabase(): Promise<Database> {
  const testDatabase = await createTestDatabase();
  cleanups.push(() => testDatabase.drop());
  const database = await openDatabase(
    loadConfig({ NODE_ENV: 'test', ...testDatabase.env }),
    logger,
  );
  cleanups.push(() => database.stop());
  await database.migrate();
  return database;
}

describe('the outbox relay while the broker is away (either engine)', () => {
  it('holds no connection while a publish hangs, and backs off with at most one statement per attempt', async () => {
    const database = await ownDatabase();
    const connection = database.orm.em.getConnection();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = randomUUID();
      ids.push(id);
      await connection.execute(
        `insert into outbox_message (id, type, key, subject, clinic_id, payload, created_at)
         values (?, 'video.token.generated', 'apt-away', ?, 'clinic-1', '{}', now())`,
        [id, randomUUID()],
      );
    }

    // The broker takes the first publish and never answers (frozen), then refuses.
    let behaviour: 'hang' | 'refuse' | 'accept' = 'hang';
    let attempts = 0;
    let handedOver: () => void = () => {};
    const firstHandedOver = new Promise<void>((resolve) => {
      handedOver = resolve;
    });
    let failHanging: (error: Error) => void = () => {};
    const published: string[] = [];
    let onRefusal = () => {};
    const publisher: EventPublisher = {
      publish(batch) {
        attempts++;
        if (behaviour === 'hang') {
          handedOver();
          return new Promise<void>((_, reject) => {
            failHanging = reject;
          });
        }
        if (behaviour === 'refuse') {
          onRefusal();
          return Promise.reject(new Error('connection refused'));
        }
        for (const { record } of batch) published.push(record.headers.ce_id ?? '');
        return Promise.resolve();
      },
    };
    const broker = switchableBroker();
    const { orm, counter } = countingOrm(database.orm);
    const relay = createOutboxRelay({
      orm,
      publisher,
      logger,
      topicFor: (type) => type,
      source: '/video-service',
      batchSize: 100,
      pollIntervalMs: 10,
      leaseMs: 30_000,
      broker: broker.state,
    });
    relay.start();
    cleanups.push(() => relay.stop());

    // 1. While the publish hangs, the database answers the API at once (on the embedded
    //    engine, a single connection: the relay must not be sitting on it).
    await firstHandedOver;
    const selectMs = await timedWithin(connection.execute('select 1'), 2_000);

    // 2. The broker refuses: each retry is one statement (renewing the claim) and a publish.
    //    At the fifth refusal the service notices that the broker is unreachable.
    const atRefusal = { statements: counter.statements, attempts };
    let whileAway = { statements: 0, attempts: 0 };
    let refusals = 0;
    const noticed = new Promise<void>((resolve) => {
      onRefusal = () => {
        if (++refusals !== 5) return;
        whileAway = { statements: counter.statements, attempts };
        broker.set(false);
        resolve();
      };
    });
    behaviour = 'refuse';
    failHanging(new Error('request timed out'));
    await noticed;
    const retried = {
      statements: whileAway.statements - atRefusal.statements,
      attempts: whileAway.attempts - atRefusal.attempts,
    };

    // 3. Known unreachable: no statement at all, and no publish, over more than two of the
    //    longest backoff steps (5 s).
    await new Promise((resolve) => setTimeout(resolve, AWAY_MS));
    const away = {
      statements: counter.statements - whileAway.statements,
      attempts: attempts - whileAway.attempts,
    };

    // 4. Back: the events go out at once, each once, in order.
    behaviour = 'accept';
    const backAt = performance.now();
    broker.set(true);
    await until(async () => published.length >= 5, 10_000, 'the events to be published');
    const drainedMs = performance.now() - backAt;
    await relay.stop();
    console.info(
      `relay while the broker is away: a query during the hanging publish took ${selectMs.toFixed(1)} ms; ` +
        `${retried.attempts} refused attempts cost ${retried.statements} statements; ` +
        `${AWAY_MS / 1000} s known unreachable: ${away.statements} statements, ${away.attempts} publishes; ` +
        `published ${published.length} events ${drainedMs.toFixed(0)} ms after it was back`,
    );
    expect(selectMs).toBeLessThan(500);
    expect(retried.statements).toBeLessThanOrEqual(retried.attempts + 1);
    expect(away).toEqual({ statements: 0, attempts: 0 });
    expect(published).toEqual(ids);
    expect(drainedMs).toBeLessThan(2_000);
  }, 90_000);
});

describe('an event published again (either engine)', () => {
  it('carries the same ce_id and record when the broker acknowledged but the relay died before marking it sent', async () => {
    const database = await ownDatabase();
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = randomUUID();
      ids.push(id);
      await database.orm.em.getConnection().execute(
        `insert into outbox_message (id, type, key, subject, clinic_id, payload, created_at)
         values (?, 'video.token.generated', 'apt-again', ?, 'clinic-1', ?, now())`,
        [id, randomUUID(), JSON.stringify({ n: i })],
      );
    }

    // Copy a: the broker acknowledges, and the copy dies before it can mark the events sent.
    const dying = countingOrm(database.orm);
    const firstSend: KafkaRecord[] = [];
    let acknowledged: () => void = () => {};
    const acknowledgedOnce = new Promise<void>((resolve) => {
      acknowledged = resolve;
    });
    const a = relayOf(
      dying,
      {
        async publish(batch) {
          firstSend.push(...batch.map((entry) => entry.record));
          dying.kill();
          acknowledged();
        },
      },
      500,
    );
    a.start();
    cleanups.push(() => a.stop());
    await acknowledgedOnce;
    await a.stop();

    // Copy b takes the lapsed claim over and sends the same events again.
    const secondSend: KafkaRecord[] = [];
    const b = relayOf(
      database,
      {
        async publish(batch) {
          secondSend.push(...batch.map((entry) => entry.record));
        },
      },
      500,
    );
    b.start();
    cleanups.push(() => b.stop());
    await until(async () => secondSend.length >= 3, 20_000, 'the events to be sent again');
    await b.stop();

    expect(firstSend.map((record) => record.headers.ce_id)).toEqual(ids);
    // The same events, byte for byte: a consumer's inbox drops the second copy by ce_id.
    expect(secondSend).toEqual(firstSend);
    const [row] = await database.orm.em
      .getConnection()
      .execute<{ n: string | number }[]>(
        'select count(*) as n from outbox_message where sent_at is null',
      );
    expect(Number(row?.n)).toBe(0);
  }, 60_000);
});
