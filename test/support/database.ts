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
  if (serverUrl && process.env.TEST_DATABASE_ROLES === 'separate') {
    return createLeastPrivilegeDatabase();
  }
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

/**
 * A database as production should run it: owned by a migration role of its own (not a
 * superuser), used by the service through a least-privilege role that the migrations
 * grant (DATABASE_URL of the service role, DATABASE_MIGRATION_URL of the owner).
 * `TEST_DATABASE_ROLES=separate` gives every test database this shape; tests that poke
 * the database directly as its owner (audit.int.test.ts) expect the plain one.
 */
export async function createLeastPrivilegeDatabase(): Promise<
  TestDatabase & { readonly owner: string; readonly service: string; readonly ownerUrl: string }
> {
  const serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) throw new Error('a least-privilege database needs DATABASE_URL');
  const suffix = randomBytes(6).toString('hex');
  const name = `video_test_${suffix}`;
  const owner = `video_owner_${suffix}`;
  const service = `video_service_${suffix}`;
  // Roles belong to the whole cluster: unique names, dropped with the database.
  await admin(serverUrl, `create role ${owner} login nosuperuser`);
  await admin(serverUrl, `create role ${service} login nosuperuser`);
  await admin(serverUrl, `create database ${name} owner ${owner}`);
  const urlAs = (role: string) => {
    const url = new URL(serverUrl);
    url.username = role;
    url.password = '';
    url.pathname = `/${name}`;
    return url.toString();
  };
  return {
    owner,
    service,
    ownerUrl: urlAs(owner),
    env: {
      DATABASE_URL: urlAs(service),
      DATABASE_MIGRATION_URL: urlAs(owner),
      MIGRATE_ON_START: 'true',
    },
    async drop() {
      await admin(serverUrl, `drop database if exists ${name} with (force)`);
      await admin(serverUrl, `drop role if exists ${service}`);
      await admin(serverUrl, `drop role if exists ${owner}`);
    },
  };
}

/** Runs one statement on `url`'s database in a connection of its own. */
export async function admin(serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
