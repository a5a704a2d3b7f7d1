import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * A database of its own for one test file: a fresh PostgreSQL database on the server
 * that DATABASE_URL names, or, without it, a fresh data folder for the embedded engine.
 * Answers the environment to start the service with, and a function that removes it.
 */
/**
 * Whether several copies of the service can share one test database: only on a
 * PostgreSQL server. The embedded engine belongs to the one process that opened its
 * folder and is a single connection, so row locks between copies cannot be shown on it;
 * tests of several copies run when DATABASE_URL is set (as CI does).
 */
export const serverForSeveralCopies = process.env.DATABASE_URL !== undefined;

export interface TestDatabase {
  readonly env: Record<string, string>;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) {
    const dataDir = await mkdtemp(join(tmpdir(), 'video-service-test-'));
    return {
      env: { DATA_DIR: dataDir, MIGRATE_ON_START: 'true' },
      drop: () => rm(dataDir, { recursive: true, force: true }),
    };
  }
  const name = `video_test_${randomBytes(6).toString('hex')}`;
  await admin(serverUrl, `create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    env: { DATABASE_URL: url.toString(), MIGRATE_ON_START: 'true' },
    drop: () => admin(serverUrl, `drop database if exists ${name} with (force)`),
  };
}

async function admin(serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
