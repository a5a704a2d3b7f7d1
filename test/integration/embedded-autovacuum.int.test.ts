import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { outboxClaims } from '../../src/messaging/outbox-claims.js';
import { type Database, openDatabase } from '../../src/persistence/database.js';

/**
 * The embedded engine has no autovacuum of its own; the service runs its rules on it
 * (src/persistence/autovacuum.ts). Without them the outbox relay's claim over a backlog ran on a
 * plan made for a one-row table, reading every pending event once per pending event, on
 * the service's own event loop: a Kafka outage's backlog stalled every call.
 */
const root = await mkdtemp(join(tmpdir(), 'embedded-autovacuum-'));
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await rm(root, { recursive: true, force: true });
});

/** A Kafka outage's worth of events: four for each of 300 consultations, none sent. */
const KEYS = 300;
const EVENTS_PER_KEY = 4;
/** The claim on never-analyzed tables read about 750,000 buffers over this backlog. */
const MOST_BUFFERS_PER_CLAIM = 30_000;

async function openEmbedded(): Promise<Database> {
  const config = loadConfig({ DATA_DIR: join(root, 'data'), MIGRATE_ON_START: 'true' });
  const database = await openDatabase(config, createLogger('silent'));
  cleanups.push(() => database.stop());
  await database.migrate();
  return database;
}

async function one<T>(database: Database, sql: string): Promise<T> {
  const { rows } = await database.pool().query(sql);
  return rows[0] as T;
}

/** Buffers the outbox table and its indexes have been read from, as the engine counts them. */
async function outboxBuffers(database: Database): Promise<number> {
  // The engine publishes its counters when a session has been idle for a second.
  await one(database, 'select pg_stat_force_next_flush()');
  await new Promise((resolve) => setTimeout(resolve, 1_100));
  await one(database, 'select 1');
  const row = await one<{ hits: string }>(
    database,
    `select coalesce(heap_blks_hit, 0) + coalesce(heap_blks_read, 0)
          + coalesce(idx_blks_hit, 0) + coalesce(idx_blks_read, 0) as hits
       from pg_statio_user_tables where relname = 'outbox_message'`,
  );
  return Number(row.hits);
}

describe('the embedded engine is vacuumed and analyzed as autovacuum would', () => {
  it('analyzes the outbox after a backlog builds, and the claim over it reads few buffers', async () => {
    const database = await openEmbedded();
    await database.pool().query(
      `insert into outbox_message (id, type, key, subject, clinic_id, payload, created_at)
       select gen_random_uuid(), 'consultation.started', 'key-' || (n % ${KEYS}),
              'consultation', 'clinic-1', '{}', now()
         from generate_series(1, ${KEYS * EVENTS_PER_KEY}) n`,
    );

    const deadline = Date.now() + 30_000;
    let analyzed:
      | { last_analyze: Date | null; last_vacuum: Date | null; reltuples: number }
      | undefined;
    while (Date.now() < deadline) {
      analyzed = await one(
        database,
        `select s.last_analyze, s.last_vacuum, c.reltuples from pg_stat_user_tables s
           join pg_class c on c.oid = s.relid where s.relname = 'outbox_message'`,
      );
      if (analyzed?.last_analyze) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(analyzed?.last_analyze, 'the outbox was analyzed').toBeTruthy();
    // 1,200 rows inserted pass the daemon's insert threshold (1,000) too.
    expect(analyzed?.last_vacuum, 'the outbox was vacuumed').toBeTruthy();
    expect(analyzed?.reltuples).toBe(KEYS * EVENTS_PER_KEY);

    const before = await outboxBuffers(database);
    const claim = await outboxClaims(database.orm, { batchSize: 200, leaseMs: 30_000 }).claim();
    const read = (await outboxBuffers(database)) - before;
    expect(claim?.rows).toHaveLength(200);
    expect(read).toBeLessThan(MOST_BUFFERS_PER_CLAIM);
  }, 60_000);
});
